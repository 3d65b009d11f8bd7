// The network plan: which namespaces exist, their links, addresses and routes. Derived purely from
// the model (planNetwork in topology.ts). The netns backend builds it with `ip -batch`; the simulator
// routes packets with it. One description, two executors — like the IR for nftables.

export type UplinkKind = 'none' | 'world' | 'veth-host' | 'move';

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
}

export interface Iface {
  name: string;
  /** Qubes' interface groups: 1 = uplink (eth0 of a netvm), 2 = downstream (vif*), 0 = other. */
  group: 0 | 1 | 2;
  addrs: Addr[];
  /** The other end of the veth: node name and interface name. */
  peer?: { node: string; iface: string };
}

export interface NetNode {
  /** Qube name, or `world` for the stand-in outside. */
  name: string;
  kind: 'qube' | 'world';
  ifaces: Iface[];
  routes: Route[];
  /** ip_forward (network-providing qubes and the world). */
  forwarding: boolean;
}

export interface NetPlan {
  nodes: NetNode[];
  /** Qubes' virtual DNS resolvers, DNATed by every netvm to its upstream. */
  virtualDns: readonly string[];
  /** What the top netvm's uplink resolves with (in the world namespace for `world`). */
  upstreamDns: string[];
  uplink: UplinkKind;
}

export const VIRTUAL_DNS = ['10.139.1.1', '10.139.1.2'] as const;
