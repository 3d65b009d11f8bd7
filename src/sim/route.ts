// Routing over the NetPlan, prepared once per plan: local addresses per node, routes as numeric
// intervals sorted longest prefix first (the kernel's FIB picks the longest matching prefix; metrics
// are not modelled), and for the world node which uplink leads to which qube.
import type { Ruleset } from '../ir/types.js';
import type { Iface, NetNode, NetPlan } from '../model/netplan.js';
import type { PBase } from './prepare.js';
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
  /** Where `dev` leads (pp.links.get(dev)), resolved once with the plan. */
  link: PLink | undefined;
  /** `dev`'s first addresses (the node's ifAddrs.get(dev)), resolved once with the plan. */
  devAddrs: IfAddrs | undefined;
  /** The first addresses of the node's interface named like `dev` (ifAddrs.get(ifaces.get(dev.name))). */
  oifAddrs: IfAddrs | undefined;
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
  /** The network mask: as an int32 for IPv4 (`addr & mask4`), as a bigint for IPv6. */
  mask4: number;
  mask6: bigint;
  /** By network address, as addrKey() gives it. */
  byNet: Map<AddrNum, PRoute>;
  /** The same as two short arrays when there are few (a scan beats hashing): keys and routes. */
  fewNets: AddrNum[] | undefined;
  fewRoutes: PRoute[];
}

const FEW = 4;
const NO_LEVELS: RouteLevel[] = [];

/** One family's addresses and routes at a node. */
export interface PFamily {
  /** The node's own addresses, as addrKey() gives them; also as an array when there are few. */
  local: Set<AddrNum>;
  fewLocal: AddrNum[] | undefined;
  routes: PRoute[];
  levels: RouteLevel[];
}

/**
 * An address as a hash key: IPv4 as a signed 32-bit integer (`a | 0`, one-to-one on 0..2^32-1),
 * which V8 hashes as a small integer; an unsigned address above 2^31 would be a boxed double.
 */
export const addrKey = (a: AddrNum): AddrNum => (typeof a === 'number' ? a | 0 : a);

export interface PNode {
  node: NetNode;
  name: string;
  /** Where the outside begins: the stand-in world, or the host (veth-host), which routes on beyond the plan. */
  world: boolean;
  ifaces: Map<string, Iface>;
  /** Per interface of this node: its first address of each family. */
  ifAddrs: Map<Iface, IfAddrs>;
  /** The node's first address of each family over all interfaces, in interface order. */
  firstAddr: IfAddrs;
  v4: PFamily;
  v6: PFamily;
  /**
   * v4 local addresses and routes in one flat array, when every part of them is a short list (a
   * qube's few addresses and routes): [nLocal, local..., nLevels, (mask, nNets, net...)...], longest
   * prefix first, `fast4Results` holding each net's decision in the same order. A lookup reads one
   * array instead of a chain of small objects.
   */
  fast4: Int32Array | undefined;
  fast4Results: RouteResult[];
  /**
   * The walk's one-entry cache of this node's prepared ruleset (valid while `rs` is the ruleset
   * object the world holds), with what every hook reads copied onto the node: a walk from a random
   * qube then touches the node, its hook lists and nothing else of the prepared ruleset.
   */
  rs: Ruleset | undefined;
  /** Its prepared ruleset's lists, nat4, nat6. */
  lists: PBase[][];
  nat4: boolean;
  nat6: boolean;
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
  /** Every address of a qube node (not the world, by addrKey()), to the node that holds it. */
  owner: Map<AddrNum, string>;
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
  const owner: PPlan['owner'] = new Map();
  for (const n of plan.nodes) {
    const pn: PNode = {
      node: n, name: n.name, world: n.kind === 'world' || n.kind === 'host', ifaces: new Map(), ifAddrs: new Map(), firstAddr: { 4: undefined, 6: undefined },
      v4: { local: new Set(), fewLocal: undefined, routes: [], levels: [] }, v6: { local: new Set(), fewLocal: undefined, routes: [], levels: [] }, fast4: undefined, fast4Results: [], rs: undefined, lists: [], nat4: false, nat6: false,
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
        (fam === 4 ? pn.v4 : pn.v6).local.add(addrKey(num));
        // Families cannot collide: IPv4 keys are numbers, IPv6 keys bigints.
        if (!pn.world) owner.set(addrKey(num), n.name);
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
      const pf = fam === 4 ? pn.v4 : pn.v6;
      // Stable sort: among equal prefixes the first route listed wins (metrics are not modelled).
      pf.routes.sort((a, b) => b.len - a.len);
      for (const r of pf.routes) {
        let lvl = pf.levels.find((l) => l.len === r.len);
        if (!lvl) {
          const hostBits = (fam === 4 ? 32 : 128) - r.len;
          lvl = { len: r.len, mask4: fam === 4 && r.len > 0 ? -1 << hostBits : 0, mask6: fam === 6 ? ~((1n << BigInt(hostBits)) - 1n) & ((1n << 128n) - 1n) : 0n, byNet: new Map(), fewNets: undefined, fewRoutes: [] };
          pf.levels.push(lvl);
        }
        const k = addrKey(r.lo);
        if (!lvl.byNet.has(k)) lvl.byNet.set(k, r);
      }
      for (const l of pf.levels) {
        if (l.byNet.size > FEW) continue;
        l.fewNets = [...l.byNet.keys()];
        l.fewRoutes = [...l.byNet.values()];
      }
      if (pf.local.size <= FEW) pf.fewLocal = [...pf.local];
    }
    flatten4(pn);
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
  const pp: PPlan = { plan, nodes, world, owner, entry, links, towards: { 4: new Map(), 6: new Map() } };
  for (const pn of nodes.values()) for (const r of [...pn.v4.routes, ...pn.v6.routes]) resolveRoute(pp, pn, r);
  return pp;
}

/** Fill in what a walk needs next after taking route `r` at `pn`, so that it needs no map lookups. */
function resolveRoute(pp: PPlan, pn: PNode, r: PRoute): void {
  r.link = pp.links.get(r.dev);
  r.devAddrs = pn.ifAddrs.get(r.dev);
  const named = pn.ifaces.get(r.dev.name);
  r.oifAddrs = named ? pn.ifAddrs.get(named) : undefined;
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
  const r: PRoute = { lo, hi, len, dev, via, text: `${dst}${via ? ` via ${via}` : ''} dev ${dev.name}`, result: NONE, link: undefined, devAddrs: undefined, oifAddrs: undefined };
  r.result = { kind: 'out', iface: dev, route: r };
  (fam === 4 ? pn.v4 : pn.v6).routes.push(r);
}

function flatten4(pn: PNode): void {
  const pf = pn.v4;
  if (!pf.fewLocal || !pf.levels.every((l) => l.fewNets)) return;
  const words: number[] = [pf.fewLocal.length, ...(pf.fewLocal as number[]), pf.levels.length];
  const results: RouteResult[] = [];
  for (const l of pf.levels) {
    words.push(l.mask4, l.fewNets!.length, ...(l.fewNets as number[]));
    for (const r of l.fewRoutes) results.push(r.result);
  }
  pn.fast4 = Int32Array.from(words);
  pn.fast4Results = results;
}

/** route() on a flattened node (see PNode.fast4): a decision, or undefined when no route matches. */
function route4(f: Int32Array, results: RouteResult[], k: number): RouteResult | undefined {
  const nl = f[0]!;
  for (let i = 1; i <= nl; i++) if (f[i] === k) return LOCAL;
  let at = nl + 1;
  const levels = f[at++]!;
  let ri = 0;
  for (let l = 0; l < levels; l++) {
    const net = k & f[at]!;
    const n = f[at + 1]!;
    at += 2;
    for (let j = 0; j < n; j++) if (f[at + j] === net) return results[ri + j];
    at += n;
    ri += n;
  }
  return undefined;
}

/** Is `da` one of the node's own addresses (not counting loopback)? */
export function isLocal(pn: PNode, da: AddrNum, fam: 4 | 6): boolean {
  return has(fam === 4 ? pn.v4 : pn.v6, addrKey(da));
}

function has(pf: PFamily, k: AddrNum): boolean {
  const few = pf.fewLocal;
  if (!few) return pf.local.has(k);
  for (let i = 0; i < few.length; i++) if (few[i] === k) return true;
  return false;
}

/**
 * The routing decision for `da` at `pn`. `originated`: the packet was created by this node (for the
 * world, a host on the internet, which reaches qube addresses only through the netvm that owns them).
 */
export function route(pp: PPlan, pn: PNode, da: AddrNum, fam: 4 | 6, originated: boolean): RouteResult {
  if (fam === 4) {
    // 127.0.0.0/8 is local on every node (the kernel's local table).
    const k = (da as number) | 0;
    if ((da as number) >>> 24 === 127) return LOCAL;
    const f = pn.fast4;
    if (f !== undefined) {
      const r = route4(f, pn.fast4Results, k);
      if (r !== undefined) return r;
    } else if (has(pn.v4, k)) return LOCAL;
    const levels = f === undefined ? pn.v4.levels : NO_LEVELS;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      const net = k & l.mask4;
      const few = l.fewNets;
      if (few) {
        for (let j = 0; j < few.length; j++) if (few[j] === net) return l.fewRoutes[j]!.result;
        continue;
      }
      const r = l.byNet.get(net);
      if (r) return r.result;
    }
  } else {
    if (has(pn.v6, da) || da === 1n) return LOCAL;
    const levels = pn.v6.levels;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      const r = l.byNet.get((da as bigint) & l.mask6);
      if (r) return r.result;
    }
  }
  if (!pn.world) return { kind: 'none', why: `no route to host at ${pn.name}` };
  const owner = pp.owner.get(addrKey(da));
  if (owner === undefined) return OUTSIDE_HOST_ROUTE;
  const up = originated ? pp.entry.get(owner) : undefined;
  if (up) {
    let rt = pp.towards[fam].get(da);
    if (!rt) {
      const r: PRoute = { lo: da, hi: da, len: fam === 4 ? 32 : 128, dev: up, via: undefined, text: `towards ${owner} dev ${up.name}`, result: NONE, link: undefined, devAddrs: undefined, oifAddrs: undefined };
      resolveRoute(pp, pn, r);
      pp.towards[fam].set(da, (rt = r.result = { kind: 'out', iface: up, route: r }));
    }
    return rt;
  }
  // A qube's private address is not routable on the internet: what leaves a netvm for it is lost.
  return { kind: 'none', why: `the outside has no route to ${owner}'s address` };
}
