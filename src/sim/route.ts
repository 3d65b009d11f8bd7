// Routing over the NetPlan, prepared once per plan: local addresses per node, routes as numeric
// intervals sorted longest prefix first (the kernel's FIB picks the longest matching prefix; metrics
// are not modelled), and for the world node which uplink leads to which qube.
import type { Ruleset } from '../ir/types.js';
import type { Iface, NetNode, NetPlan } from '../model/netplan.js';
import type { PreparedRuleset } from './prepare.js';
import { type AddrNum, formatV4, formatV6, parseAddr, prefixRange } from './addr.js';

export interface PRoute {
  lo: AddrNum;
  hi: AddrNum;
  len: number;
  dev: Iface;
  via: string | undefined;
  text: string;
  /** This route as a routing decision, made once (lookups return it instead of allocating). */
  result: RouteResult;
}

/** An interface's first address of each family, parsed and in canonical text (for masquerade and source selection). */
export interface IfAddrs {
  4: IfAddr | undefined;
  6: IfAddr | undefined;
}

export interface IfAddr {
  /** As written in the plan. */
  text: string;
  /** Parsed (undefined when it does not parse), and formatted back canonically. */
  num: AddrNum | undefined;
  canon: string | undefined;
}

function ifAddr(text: string, fam: 4 | 6): IfAddr {
  const num = parseAddr(text, fam);
  return { text, num, canon: num === undefined ? undefined : fam === 4 ? formatV4(num as number) : formatV6(num as bigint) };
}

/** Routes of one prefix length, by network address: a lookup is one hash probe per distinct length. */
interface RouteLevel {
  len: number;
  /** 2^(32-len) for IPv4, the host mask for IPv6. */
  size: number;
  mask: bigint;
  byNet: Map<AddrNum, PRoute>;
}

export interface PNode {
  node: NetNode;
  name: string;
  world: boolean;
  ifaces: Map<string, Iface>;
  /** Per interface of this node: its first address of each family. */
  ifAddrs: Map<Iface, IfAddrs>;
  /** The node's first address of each family over all interfaces, in interface order. */
  firstAddr: IfAddrs;
  local: { 4: Set<AddrNum>; 6: Set<AddrNum> };
  routes: { 4: PRoute[]; 6: PRoute[] };
  levels: { 4: RouteLevel[]; 6: RouteLevel[] };
  /** The walk's one-entry cache of this node's prepared ruleset (valid while the ruleset object is the same). */
  prepared: { rs: Ruleset; prep: PreparedRuleset } | undefined;
}

/** Where a veth leads: the peer node and its end of the link (undefined when not in the plan). */
export interface PLink {
  node: PNode | undefined;
  iface: Iface | undefined;
}

export interface PPlan {
  plan: NetPlan;
  nodes: Map<string, PNode>;
  world: PNode | undefined;
  /** Every address of a qube node (not the world), to the node that holds it. */
  owner: { 4: Map<AddrNum, string>; 6: Map<AddrNum, string> };
  /** For each qube node: the world interface its traffic from the outside enters through. */
  entry: Map<string, Iface>;
  /** Every interface with a peer, to the node and interface at the other end. */
  links: Map<Iface, PLink>;
  /** The world's routes towards qube addresses, made on first use. */
  towards: { 4: Map<AddrNum, RouteResult>; 6: Map<AddrNum, RouteResult> };
}

export type RouteResult =
  | { kind: 'local' }
  | { kind: 'out'; iface: Iface; route: PRoute }
  /** The world delivers to a stand-in internet host. */
  | { kind: 'outside' }
  | { kind: 'none'; why: string };

// Routing decisions are shared, read-only objects: a lookup allocates only for 'none'.
const LOCAL: RouteResult = Object.freeze({ kind: 'local' });
const OUTSIDE_HOST_ROUTE: RouteResult = Object.freeze({ kind: 'outside' });
const NONE: RouteResult = Object.freeze({ kind: 'none', why: '' });

const cache = new WeakMap<NetPlan, PPlan>();

export function preparePlan(plan: NetPlan): PPlan {
  let p = cache.get(plan);
  if (!p) cache.set(plan, (p = build(plan)));
  return p;
}

function build(plan: NetPlan): PPlan {
  const nodes = new Map<string, PNode>();
  const owner: PPlan['owner'] = { 4: new Map(), 6: new Map() };
  for (const n of plan.nodes) {
    const pn: PNode = {
      node: n, name: n.name, world: n.kind === 'world', ifaces: new Map(), ifAddrs: new Map(), firstAddr: { 4: undefined, 6: undefined },
      local: { 4: new Set(), 6: new Set() }, routes: { 4: [], 6: [] }, levels: { 4: [], 6: [] }, prepared: undefined,
    };
    for (const i of n.ifaces) {
      pn.ifaces.set(i.name, i);
      const ia: IfAddrs = { 4: undefined, 6: undefined };
      pn.ifAddrs.set(i, ia);
      for (const a of i.addrs) {
        const fam = a.addr.includes(':') ? 6 : 4;
        // First of the family by text (as the kernel's source selection and masquerade see the list),
        // whether or not it parses: an unparsable one is still "the" address and is reported as such.
        ia[fam] ??= ifAddr(a.addr, fam);
        pn.firstAddr[fam] ??= ia[fam];
        const num = parseAddr(a.addr, fam);
        if (num === undefined) continue;
        pn.local[fam].add(num);
        if (!pn.world) owner[fam].set(num, n.name);
        // A shorter prefix on an interface adds the connected route, as the kernel does.
        const full = fam === 4 ? 32 : 128;
        if (a.len < full) pushRoute(pn, fam, `${a.addr}/${a.len}`, i, undefined);
      }
    }
    for (const r of n.routes) {
      const dev = pn.ifaces.get(r.dev);
      if (dev) pushRoute(pn, r.family, r.dst, dev, r.via);
    }
    for (const fam of [4, 6] as const) {
      // Stable sort: among equal prefixes the first route listed wins (metrics are not modelled).
      pn.routes[fam].sort((a, b) => b.len - a.len);
      for (const r of pn.routes[fam]) {
        let lvl = pn.levels[fam].find((l) => l.len === r.len);
        if (!lvl) {
          const hostBits = (fam === 4 ? 32 : 128) - r.len;
          lvl = { len: r.len, size: fam === 4 ? 2 ** hostBits : 0, mask: fam === 6 ? ~((1n << BigInt(hostBits)) - 1n) & ((1n << 128n) - 1n) : 0n, byNet: new Map() };
          pn.levels[fam].push(lvl);
        }
        if (!lvl.byNet.has(r.lo)) lvl.byNet.set(r.lo, r);
      }
    }
    nodes.set(n.name, pn);
  }
  const world = [...nodes.values()].find((n) => n.world);
  // Walk each qube's eth0 peer upwards to the netvm whose uplink faces the world.
  const entry = new Map<string, Iface>();
  if (world) {
    for (const pn of nodes.values()) {
      if (pn.world) continue;
      let cur: PNode | undefined = pn;
      for (let hops = 0; cur && hops < 64; hops++) {
        const up: Iface | undefined = [...cur.ifaces.values()].find((i) => i.group !== 2 && i.peer);
        if (!up?.peer) break;
        if (up.peer.node === world.name) {
          const wi = world.ifaces.get(up.peer.iface);
          if (wi) entry.set(pn.name, wi);
          break;
        }
        cur = nodes.get(up.peer.node);
      }
    }
  }
  const links = new Map<Iface, PLink>();
  for (const pn of nodes.values())
    for (const i of pn.node.ifaces) {
      if (!i.peer) continue;
      const next = nodes.get(i.peer.node);
      links.set(i, { node: next, iface: next?.ifaces.get(i.peer.iface) });
    }
  return { plan, nodes, world, owner, entry, links, towards: { 4: new Map(), 6: new Map() } };
}

function pushRoute(pn: PNode, fam: 4 | 6, dst: string, dev: Iface, via: string | undefined): void {
  let lo: AddrNum;
  let hi: AddrNum;
  let len: number;
  if (dst === 'default') {
    len = 0;
    [lo, hi] = fam === 4 ? [0, 2 ** 32 - 1] : [0n, (1n << 128n) - 1n];
  } else {
    const slash = dst.indexOf('/');
    len = slash < 0 ? (fam === 4 ? 32 : 128) : Number(dst.slice(slash + 1));
    const r = prefixRange(slash < 0 ? dst : dst.slice(0, slash), len, fam);
    if (!r) return;
    [lo, hi] = r;
  }
  const r: PRoute = { lo, hi, len, dev, via, text: `${dst}${via ? ` via ${via}` : ''} dev ${dev.name}`, result: NONE };
  r.result = { kind: 'out', iface: dev, route: r };
  pn.routes[fam].push(r);
}

// 127.0.0.0/8 and ::1 are local on every node (the kernel's local table).
const isLoopback = (a: AddrNum, fam: 4 | 6) => (fam === 4 ? Math.floor((a as number) / 0x1000000) === 127 : a === 1n);

/**
 * The routing decision for `da` at `pn`. `fromOutside`: the packet was created by the world node
 * (a host on the internet), which reaches qube addresses only through the netvm that owns them.
 */
export function route(pp: PPlan, pn: PNode, da: AddrNum, fam: 4 | 6, originated: boolean): RouteResult {
  if (pn.local[fam].has(da) || isLoopback(da, fam)) return LOCAL;
  const levels = pn.levels[fam];
  for (let k = 0; k < levels.length; k++) {
    const l = levels[k]!;
    const net = typeof da === 'number' ? da - (da % l.size) : da & l.mask;
    const r = l.byNet.get(net);
    if (r) return r.result;
  }
  if (!pn.world) return { kind: 'none', why: `no route to host at ${pn.name}` };
  const owner = pp.owner[fam].get(da);
  if (owner === undefined) return OUTSIDE_HOST_ROUTE;
  const up = originated ? pp.entry.get(owner) : undefined;
  if (up) {
    let rt = pp.towards[fam].get(da);
    if (!rt) {
      const r: PRoute = { lo: da, hi: da, len: fam === 4 ? 32 : 128, dev: up, via: undefined, text: `towards ${owner} dev ${up.name}`, result: NONE };
      pp.towards[fam].set(da, (rt = r.result = { kind: 'out', iface: up, route: r }));
    }
    return rt;
  }
  // A qube's private address is not routable on the internet: what leaves a netvm for it is lost.
  return { kind: 'none', why: `the outside has no route to ${owner}'s address` };
}
