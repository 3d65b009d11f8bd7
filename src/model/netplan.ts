// The network plan: which namespaces exist, their links, addresses and routes. Derived purely from
// the model (planNetwork in topology.ts). The netns backend builds it with `ip -batch`; the simulator
// routes packets with it. One description, two executors — like the IR for nftables.

export type UplinkKind = 'none' | 'world' | 'veth-host' | 'move';

/** The kind of a model's uplink property (`move:DEV` is `move`; unset is `world`). */
export function uplinkKind(model: { uplink?: string }): UplinkKind {
  const u = model.uplink ?? 'world';
  return u.startsWith('move:') ? 'move' : (u as UplinkKind);
}

export interface Addr {
  addr: string;
  /** Prefix length: /32 and /128 for qube links, as Qubes does. */
  len: number;
}

export interface Route {
  /** CIDR (`10.137.0.7/32`) or `default`. */
  dst: string;
  dev: string;
  /** Next hop; with /32 addressing the gateway is on-link. */
  via?: string;
  family: 4 | 6;
  /**
   * Made by whoever configures the interface inside the qube (DHCP on a moved physical uplink), not
   * by qnet: the netns backend leaves it out; the simulator assumes it is there.
   */
  dynamic?: true;
  /**
   * Needed by a connection whose path turns down into another branch (topology.ts
   * connectionRoutes): the engine keeps these in step on running nodes (Backend.syncLinkRoutes).
   */
  forLink?: true;
}

export interface Iface {
  name: string;
  /** Qubes' interface groups: 1 = uplink (eth0 of a netvm), 2 = downstream (vif*), 0 = other. */
  group: 0 | 1 | 2;
  addrs: Addr[];
  /** The other end of the veth: node name and interface name. */
  peer?: { node: string; iface: string };
  /**
   * A physical interface moved in from the host's namespace (uplink `move:DEV`), not a veth: it has
   * no peer, keeps its name, and its addresses come from the user (DHCP inside the qube).
   */
  physical?: true;
}

export interface NetNode {
  /** Qube name, `world` for the stand-in outside, or `host` for the host's own namespace. */
  name: string;
  /**
   * `host` is the root namespace of the machine qnet runs on (uplink `veth-host`): always there,
   * never created or deleted by qnet; only the veth ends qnet adds to it are its own.
   */
  kind: 'qube' | 'world' | 'host';
  ifaces: Iface[];
  routes: Route[];
  /** ip_forward (network-providing qubes and the world). */
  forwarding: boolean;
}

export interface NetPlan {
  nodes: NetNode[];
  /** Qubes' virtual DNS resolvers, DNATed by every netvm to its upstream. */
  virtualDns: readonly string[];
  /** What the top netvm's uplink resolves with (the world's resolver; the host's for real uplinks). */
  upstreamDns: string[];
  uplink: UplinkKind;
}

export const VIRTUAL_DNS = ['10.139.1.1', '10.139.1.2'] as const;

/** The plan node that stands for the host's root namespace. */
export const HOST_NODE = 'host';
/** The stand-in outside world's node (uplink `world`): a namespace qnet creates, not a qube. */
export const WORLD_NODE = 'world';
