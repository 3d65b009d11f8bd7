// The netvm graph: who forwards for whom, checks that keep it a forest, and the NetPlan that both
// executors build from (namespaces, veths, addresses, routes).
import { gateway, gateway6, netvmName, qubeIp, qubeIp6 } from './addressing.js';
import { connectionPath, connectionsOf, type Connection } from './connection.js';
import { diag, type Diagnostic } from './diagnostics.js';
import type { Iface, NetNode, NetPlan, Route, UplinkKind } from './netplan.js';
import { HOST_NODE, VIRTUAL_DNS, WORLD_NODE } from './netplan.js';
import type { Model, Qube } from './qube.js';
import { err, ok, QnetError, type Result } from './result.js';

/** Qubes' name rule: a letter first, then letters, digits, `_.-`; at most 31 characters. */
export const QUBE_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;
/**
 * Names qnet uses itself (the stand-in outside world, the host's namespace in the network plan,
 * `outside` in checks) or Qubes reserves.
 */
const RESERVED = new Set(['dom0', 'none', 'default', 'outside', WORLD_NODE, HOST_NODE]);

export function validateQubeName(name: string): Result<string> {
  if (!QUBE_NAME_RE.test(name))
    return err(
      diag('QNET2001', `invalid qube name '${name}'`, {
        hint: 'a letter first, then letters, digits, _ . -; at most 31 characters',
      }),
    );
  if (RESERVED.has(name)) return err(diag('QNET2002', `'${name}' is a reserved name`));
  return ok(name);
}

/** How top netvms reach the outside: none, world (a stand-in namespace), veth-host, move:DEV. */
export function isUplink(u: string): boolean {
  return /^(none|world|veth-host|move:[A-Za-z0-9_.-]{1,15})$/.test(u);
}

/** The netvm chain upwards: [netvm, its netvm, …]. Stops at a cycle (validateNetvm prevents them). */
export function netvmChain(model: Model, q: Qube): Qube[] {
  const chain: Qube[] = [];
  const seen = new Set([q.name]);
  let cur: Qube | undefined = q;
  for (;;) {
    const nv: string | null = netvmName(model, cur);
    if (nv === null || seen.has(nv)) return chain;
    cur = model.qubes.get(nv);
    if (!cur) return chain;
    seen.add(nv);
    chain.push(cur);
  }
}

/** Qubes whose (resolved) netvm is `name`, in qid order. */
export function clientsOf(model: Model, name: string): Qube[] {
  return [...model.qubes.values()].filter((c) => netvmName(model, c) === name).sort((a, b) => a.qid - b.qid);
}

/** Would `client` with netvm `candidate` be valid? (Qubes: must provide network; no loops.) */
export function validateNetvm(model: Model, client: Qube, candidate: string | null): Result<null> {
  if (candidate === null) return ok(null);
  const nv = model.qubes.get(candidate);
  if (!nv) return err(diag('QNET2003', `no such qube '${candidate}'`, { qube: client.name }));
  if (!nv.provides_network)
    return err(
      diag('QNET2004', `'${candidate}' does not provide network`, {
        qube: client.name,
        hint: `qnet prefs ${candidate} provides_network True`,
      }),
    );
  if (candidate === client.name || netvmChain(model, nv).some((x) => x.name === client.name))
    return err(diag('QNET2005', `loops in network are unsupported: ${candidate} already routes through ${client.name}`, { qube: client.name }));
  return ok(null);
}

/** Every problem with the graph as a whole (after an import or hand-edited file). */
export function checkTopology(model: Model): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const q of model.qubes.values()) {
    const r = validateNetvm(model, q, netvmName(model, q));
    if (!r.ok) out.push(r.error);
  }
  return out;
}

// ---- The network plan ------------------------------------------------------------------------

/** The stand-in outside world's side of each top netvm's uplink (documentation ranges only). */
export const WORLD_LINK = {
  v4: { world: '198.51.100.1', base: '198.51.100.' },
  v6: { world: '2001:db8:ffff::1', base: '2001:db8:ffff::' },
  dns: ['192.0.2.53'],
} as const;

/** Interface names (≤ 15 characters): client side `eth0`, netvm side `vif<qid>.0` as in Qubes. */
export const vifName = (client: Qube) => `vif${client.qid}.0`;
export const UPLINK_IFACE = 'eth0';
export const worldIfaceName = (netvm: Qube) => `up${netvm.qid}`;

/**
 * The `veth-host` link of the top netvm with qid q: the netvm's eth0 is 100.100.q.2/32, the host's
 * end 100.100.q.1/32. 100.100.0.0/16 is inside the RFC 6598 shared address space (100.64.0.0/10),
 * which is meant for carrier-grade NAT between an ISP and its customers' routers: a host's own LAN,
 * VPN or container networks practically never use it (Docker, libvirt and home routers use RFC 1918
 * space; Qubes itself uses 10.137-139), and the host masquerades it, so it never leaves the machine.
 * Per qid (not per position among running netvms) so a netvm keeps its address across restarts.
 */
export const HOST_LINK = { range: '100.100.0.0/16', base: '100.100.', hostSide: 1, netvmSide: 2, maxQid: 254 } as const;

export function hostLinkAddrs(netvm: Qube): { host: string; netvm: string } {
  if (!Number.isInteger(netvm.qid) || netvm.qid < 0 || netvm.qid > HOST_LINK.maxQid)
    throw new QnetError(
      diag('QNET2020', `uplink veth-host: ${netvm.name}'s qid ${netvm.qid} does not fit the host link range ${HOST_LINK.range}`, {
        qube: netvm.name,
        hint: `top netvms need a qid of at most ${HOST_LINK.maxQid} (as in Qubes)`,
      }),
    );
  const b = `${HOST_LINK.base}${netvm.qid}.`;
  return { host: `${b}${HOST_LINK.hostSide}`, netvm: `${b}${HOST_LINK.netvmSide}` };
}

/**
 * A short, stable tag for a namespace prefix (5 base-36 characters of its FNV-1a hash), so two qnet
 * instances with different prefixes never pick the same host interface or host nft table.
 */
export function hostLinkTag(prefix: string): string {
  let h = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(prefix)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  return (h % 36 ** 5).toString(36).padStart(5, '0');
}

/** The tag of qnet's default namespace prefix `qnet-` (what analysis plans use). */
export const DEFAULT_HOST_TAG = hostLinkTag('qnet-');

/** The host's end of a top netvm's `veth-host` link: `qnh<tag>-<qid>` (≤ 15 characters). */
export const hostIfaceName = (tag: string, netvm: Qube) => `qnh${tag}-${netvm.qid}`;

export interface PlanOptions {
  uplink: UplinkKind;
  /** Only these qubes (e.g. the running ones); default all networked qubes. */
  only?: ReadonlySet<string>;
  /**
   * The top netvm's upstream resolvers for a real uplink (`veth-host`, `move`): the host's, read by
   * the composition root (never loopback). The world's are fixed; `none` has none.
   */
  upstreamDns?: readonly string[];
  /** `veth-host`: the tag in the host's interface names (hostLinkTag of the namespace prefix). */
  hostTag?: string;
  /** `move`: the physical interface moved into the top netvm (`move:DEV`). */
  moveDev?: string;
}

/**
 * Qubes' layout (§5.1): a client has ip/32 on eth0, an on-link /32 route to its gateway and a default
 * route via it; its netvm puts its own address /32 on vif<qid>.0 (group 2) with a /32 route to the
 * client. Every eth0 of a netvm is its uplink (group 1). IPv6 mirrors it when enabled.
 */
export function planNetwork(model: Model, opts: PlanOptions): NetPlan {
  const include = (q: Qube) => (opts.only ? opts.only.has(q.name) : true) && qubeIp(model, q) !== null;
  const nodes = new Map<string, NetNode>();
  const node = (name: string, kind: NetNode['kind'] = 'qube'): NetNode => {
    let n = nodes.get(name);
    if (!n) nodes.set(name, (n = { name, kind, ifaces: [], routes: [], forwarding: false }));
    return n;
  };
  const qubes = [...model.qubes.values()].filter(include).sort((a, b) => a.qid - b.qid);
  let topIndex = 0;
  let moved = false;
  for (const q of qubes) {
    const me = node(q.name);
    me.forwarding = q.provides_network;
    const ip = qubeIp(model, q)!;
    const ip6 = qubeIp6(model, q);
    const nvName = netvmName(model, q);
    const nv = nvName === null ? undefined : model.qubes.get(nvName);
    if (nv && include(nv)) {
      const gw = gateway(model, q)!;
      const gw6 = gateway6(model, q);
      const eth: Iface = {
        name: UPLINK_IFACE,
        group: q.provides_network ? 1 : 0,
        addrs: [{ addr: ip, len: 32 }, ...(ip6 ? [{ addr: ip6, len: 128 }] : [])],
        peer: { node: nv.name, iface: vifName(q) },
      };
      me.ifaces.push(eth);
      me.routes.push(...hostAndDefault(gw, 4), ...(gw6 ? hostAndDefault(gw6, 6) : []));
      const up = node(nv.name);
      up.ifaces.push({
        name: vifName(q),
        group: 2,
        addrs: [{ addr: gw, len: 32 }, ...(gw6 ? [{ addr: gw6, len: 128 }] : [])],
        peer: { node: q.name, iface: UPLINK_IFACE },
      });
      up.routes.push({ dst: `${ip}/32`, dev: vifName(q), family: 4 });
      if (ip6 && gw6) up.routes.push({ dst: `${ip6}/128`, dev: vifName(q), family: 6 });
    } else if (q.provides_network && nvName === null && opts.uplink === 'world') {
      // A top netvm: its uplink goes to the stand-in world.
      const i = topIndex++;
      const mine = `${WORLD_LINK.v4.base}${2 + i}`;
      const mine6 = `${WORLD_LINK.v6.base}${(2 + i).toString(16)}`;
      me.ifaces.push({
        name: UPLINK_IFACE,
        group: 1,
        addrs: [{ addr: mine, len: 32 }, { addr: mine6, len: 128 }],
        peer: { node: WORLD_NODE, iface: worldIfaceName(q) },
      });
      me.routes.push(...hostAndDefault(WORLD_LINK.v4.world, 4), ...hostAndDefault(WORLD_LINK.v6.world, 6));
      const w = node(WORLD_NODE, 'world');
      w.forwarding = true;
      w.ifaces.push({
        name: worldIfaceName(q),
        group: 0,
        addrs: [{ addr: WORLD_LINK.v4.world, len: 32 }, { addr: WORLD_LINK.v6.world, len: 128 }],
        peer: { node: q.name, iface: UPLINK_IFACE },
      });
      w.routes.push({ dst: `${mine}/32`, dev: worldIfaceName(q), family: 4 });
      w.routes.push({ dst: `${mine6}/128`, dev: worldIfaceName(q), family: 6 });
    } else if (q.provides_network && nvName === null && opts.uplink === 'veth-host') {
      // A top netvm with a veth into the host's own namespace, which NATs it (IPv4 only).
      const a = hostLinkAddrs(q);
      const hostIf = hostIfaceName(opts.hostTag ?? DEFAULT_HOST_TAG, q);
      me.ifaces.push({ name: UPLINK_IFACE, group: 1, addrs: [{ addr: a.netvm, len: 32 }], peer: { node: HOST_NODE, iface: hostIf } });
      me.routes.push(...hostAndDefault(a.host, 4));
      const h = node(HOST_NODE, 'host');
      h.forwarding = true;
      h.ifaces.push({ name: hostIf, group: 0, addrs: [{ addr: a.host, len: 32 }], peer: { node: q.name, iface: UPLINK_IFACE } });
      h.routes.push({ dst: `${a.netvm}/32`, dev: hostIf, family: 4 });
    } else if (q.provides_network && nvName === null && opts.uplink === 'move' && !moved) {
      // The physical interface itself, moved in from the host: one top netvm only (the first by qid;
      // the backend refuses to move it into a second). Addresses and routes come from DHCP inside.
      moved = true;
      const dev = opts.moveDev ?? UPLINK_IFACE;
      me.ifaces.push({ name: dev, group: 1, addrs: [], physical: true });
      me.routes.push({ dst: 'default', dev, family: 4, dynamic: true });
    }
  }
  connectionRoutes(model, nodes);
  const real = opts.uplink === 'veth-host' || opts.uplink === 'move';
  return {
    nodes: [...nodes.values()],
    virtualDns: VIRTUAL_DNS,
    upstreamDns: opts.uplink === 'world' ? [...WORLD_LINK.dns] : real ? [...(opts.upstreamDns ?? [])] : [],
    uplink: opts.uplink,
  };
}

/**
 * A netvm routes only to its own clients (§5.1); a connection whose path turns down at X into
 * another branch needs, in X and each netvm below it on the way, a /32 route to B via the next
 * netvm down (its address is on-link through its vif), in each family B has.
 */
function connectionRoutes(model: Model, nodes: Map<string, NetNode>): void {
  const runs = (name: string) => nodes.has(name);
  for (const c of connectionsOf(model))
    for (const [from, to] of directions(c))
      for (const { at, route } of routesToward(model, from, to, runs)) {
        const node = nodes.get(at)!;
        if (!node.routes.some((r) => r.dst === route.dst)) node.routes.push(route);
      }
}

const directions = (c: Connection): [string, string][] => (c.bothWays ? [[c.from, c.to], [c.to, c.from]] : [[c.from, c.to]]);

/** The routes one direction of a connection needs (see connectionRoutes), all its hops running. */
function* routesToward(model: Model, from: string, to: string, runs: (name: string) => boolean): Generator<{ at: string; route: Route }> {
  const p = connectionPath(model, from, to);
  if (!p || !p.down.length) return;
  const hops = [p.x, ...p.down];
  if (![...hops, p.b].every((q) => runs(q.name))) return;
  for (const family of [4, 6] as const) {
    const addrOf = family === 4 ? qubeIp : qubeIp6;
    const ipB = addrOf(model, p.b);
    if (ipB === null) continue;
    for (let i = 0; i < hops.length - 1; i++) {
      const next = hops[i + 1]!;
      const via = addrOf(model, next);
      if (via !== null) yield { at: hops[i]!.name, route: { dst: `${ipB}/${family === 4 ? 32 : 128}`, dev: vifName(next), via, family, forLink: true } };
    }
  }
}

/**
 * Whether the connection routes `plan` holds are those `model`'s connections need, looked at only
 * for the qubes `changed` connections lead to (no other route depends on them). `plan`: one made
 * for a model that differs from `model` in its links alone, so its other routes, and which nodes
 * run, stand. Compared as sets: which connection brought a route first does not matter.
 */
export function linkRoutesHold(model: Model, plan: NetPlan, changed: readonly Connection[]): boolean {
  const dsts = new Set(changed.flatMap((c) => directions(c).map(([, to]) => to)));
  if (!dsts.size) return true;
  const nodes = new Map(plan.nodes.map((n) => [n.name, n]));
  const want = new Set<string>();
  for (const c of connectionsOf(model))
    for (const [from, to] of directions(c))
      if (dsts.has(to))
        for (const { at, route } of routesToward(model, from, to, (name) => nodes.has(name)))
          if (!nodes.get(at)!.routes.some((r) => !r.forLink && r.dst === route.dst)) want.add(JSON.stringify([at, route]));
  const toward = new Set(
    [...dsts].flatMap((name) => {
      const q = model.qubes.get(name);
      const [ip, ip6] = q ? [qubeIp(model, q), qubeIp6(model, q)] : [null, null];
      return [...(ip ? [`${ip}/32`] : []), ...(ip6 ? [`${ip6}/128`] : [])];
    }),
  );
  let held = 0;
  for (const n of plan.nodes)
    for (const r of n.routes)
      if (r.forLink && toward.has(r.dst)) {
        if (!want.has(JSON.stringify([n.name, r]))) return false;
        held++;
      }
  return held === want.size;
}

function hostAndDefault(gw: string, family: 4 | 6): Route[] {
  const len = family === 4 ? 32 : 128;
  return [
    { dst: `${gw}/${len}`, dev: UPLINK_IFACE, family },
    { dst: 'default', dev: UPLINK_IFACE, via: gw, family },
  ];
}

/**
 * The part of `model` a packet between `from` and `to` crosses, every qube of it running: the two,
 * their netvm chains, and the connections and forwards among those. A client's chain in its netvm
 * is compiled from its own rules and its netvm alone, so what `from`'s rules say of such a packet
 * is the same here as in the whole model (property-tested in ops/connections.test.ts); asked of
 * the whole model, `connect` compiled every qube to learn it (≈ 300 ms at 1,000 qubes).
 */
export function pathModel(model: Model, from: string, to: string): Model {
  const names = new Set<string>();
  for (const n of [from, to]) {
    const q = model.qubes.get(n);
    if (q) for (const x of [q, ...netvmChain(model, q)]) names.add(x.name);
  }
  const connections = (model.connections ?? []).filter((c) => names.has(c.from) && names.has(c.to));
  const forwards = (model.forwards ?? []).filter((f) => names.has(f.qube));
  const { connections: _c, forwards: _f, ...rest } = model;
  return {
    ...rest,
    qubes: new Map([...model.qubes].filter(([n]) => names.has(n)).map(([n, q]) => [n, { ...q, state: 'Running' as const }])),
    ...(connections.length ? { connections } : {}),
    ...(forwards.length ? { forwards } : {}),
  };
}

/** Qubes to start for `names`: each and its netvm chain (Qubes starts netvms recursively). */
export function startSet(model: Model, names: readonly string[]): Qube[] {
  const out = new Map<string, Qube>();
  for (const n of names) {
    const q = model.qubes.get(n);
    if (!q) continue;
    for (const x of [...netvmChain(model, q).reverse(), q]) if (x.state !== 'Running') out.set(x.name, x);
  }
  return [...out.values()];
}

/** Running clients of `name` (a netvm with such clients refuses to stop unless forced). */
export function runningClients(model: Model, name: string): Qube[] {
  return clientsOf(model, name).filter((c) => c.state === 'Running');
}
