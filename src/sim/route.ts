// Routing over the NetPlan, prepared once per plan: local addresses per node, routes as numeric
// intervals sorted longest prefix first (the kernel's FIB picks the longest matching prefix; metrics
// are not modelled), and for the world node which uplink leads to which qube.
import type { Iface, NetNode, NetPlan } from '../model/netplan.js';
import { type AddrNum, cidrMatch, parseAddr, prefixRange } from './addr.js';

export interface PRoute {
  lo: AddrNum;
  hi: AddrNum;
  len: number;
  dev: Iface;
  via: string | undefined;
  text: string;
}

export interface PNode {
  node: NetNode;
  name: string;
  world: boolean;
  ifaces: Map<string, Iface>;
  local: { 4: Set<AddrNum>; 6: Set<AddrNum> };
  routes: { 4: PRoute[]; 6: PRoute[] };
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
    const pn: PNode = { node: n, name: n.name, world: n.kind === 'world', ifaces: new Map(), local: { 4: new Set(), 6: new Set() }, routes: { 4: [], 6: [] } };
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
    pn.routes[4].sort((a, b) => b.len - a.len);
    pn.routes[6].sort((a, b) => b.len - a.len);
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

const isLoopback = (a: AddrNum, fam: 4 | 6) => (fam === 4 ? cidrMatch('127.0.0.0/8', a, 4) >= 0 : a === 1n);

/**
 * The routing decision for `da` at `pn`. `fromOutside`: the packet was created by the world node
 * (a host on the internet), which reaches qube addresses only through the netvm that owns them.
 */
export function route(pp: PPlan, pn: PNode, da: AddrNum, fam: 4 | 6, originated: boolean): RouteResult {
  if (pn.local[fam].has(da) || isLoopback(da, fam)) return { kind: 'local' };
  for (const r of pn.routes[fam]) if (r.lo <= da && da <= r.hi) return { kind: 'out', iface: r.dev, route: r };
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
