// Routing over the NetPlan, prepared once per plan: local addresses per node, routes as numeric
// intervals sorted longest prefix first (the kernel's FIB picks the longest matching prefix; metrics
// are not modelled), and for the world node which uplink leads to which qube.
import type { Iface, NetNode, NetPlan } from '../model/netplan.js';
import { type AddrNum, parseAddr, prefixRange } from './addr.js';

export interface PRoute {
  lo: AddrNum;
  hi: AddrNum;
  len: number;
  dev: Iface;
  via: string | undefined;
  text: string;
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
  local: { 4: Set<AddrNum>; 6: Set<AddrNum> };
  routes: { 4: PRoute[]; 6: PRoute[] };
  levels: { 4: RouteLevel[]; 6: RouteLevel[] };
}

export interface PPlan {
  plan: NetPlan;
  nodes: Map<string, PNode>;
  world: PNode | undefined;
  /** Every address of a qube node (not the world), to the node that holds it. */
  owner: { 4: Map<AddrNum, string>; 6: Map<AddrNum, string> };
  /** For each qube node: the world interface its traffic from the outside enters through. */
  entry: Map<string, Iface>;
}

export type RouteResult =
  | { kind: 'local' }
  | { kind: 'out'; iface: Iface; route: PRoute }
  /** The world delivers to a stand-in internet host. */
  | { kind: 'outside' }
  | { kind: 'none'; why: string };

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
    const pn: PNode = { node: n, name: n.name, world: n.kind === 'world', ifaces: new Map(), local: { 4: new Set(), 6: new Set() }, routes: { 4: [], 6: [] }, levels: { 4: [], 6: [] } };
    for (const i of n.ifaces) {
      pn.ifaces.set(i.name, i);
      for (const a of i.addrs) {
        const fam = a.addr.includes(':') ? 6 : 4;
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
  return { plan, nodes, world, owner, entry };
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
  pn.routes[fam].push({ lo, hi, len, dev, via, text: `${dst}${via ? ` via ${via}` : ''} dev ${dev.name}` });
}

// 127.0.0.0/8 and ::1 are local on every node (the kernel's local table).
const isLoopback = (a: AddrNum, fam: 4 | 6) => (fam === 4 ? Math.floor((a as number) / 0x1000000) === 127 : a === 1n);

/**
 * The routing decision for `da` at `pn`. `fromOutside`: the packet was created by the world node
 * (a host on the internet), which reaches qube addresses only through the netvm that owns them.
 */
export function route(pp: PPlan, pn: PNode, da: AddrNum, fam: 4 | 6, originated: boolean): RouteResult {
  if (pn.local[fam].has(da) || isLoopback(da, fam)) return { kind: 'local' };
  for (const l of pn.levels[fam]) {
    const net = typeof da === 'number' ? da - (da % l.size) : da & l.mask;
    const r = l.byNet.get(net);
    if (r) return { kind: 'out', iface: r.dev, route: r };
  }
  if (!pn.world) return { kind: 'none', why: `no route to host at ${pn.name}` };
  const owner = pp.owner[fam].get(da);
  if (owner === undefined) return { kind: 'outside' };
  const up = originated ? pp.entry.get(owner) : undefined;
  if (up) {
    const r: PRoute = { lo: da, hi: da, len: fam === 4 ? 32 : 128, dev: up, via: undefined, text: `towards ${owner} dev ${up.name}` };
    return { kind: 'out', iface: up, route: r };
  }
  // A qube's private address is not routable on the internet: what leaves a netvm for it is lost.
  return { kind: 'none', why: `the outside has no route to ${owner}'s address` };
}
