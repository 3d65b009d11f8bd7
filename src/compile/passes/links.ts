// Pass: connections and port forwards, compiled into every hop of their path (reference
// qubes-networking-and-users.md §1.5, §1.7; the base ruleset and masquerade of qubes-firewall.md
// §4.6, §5.2). Read from the model on every compile, so an address, a netvm or a running state that
// changes re-renders them; a path with a node that is not running gives nothing (inactive).
//
// Connection A → B, path A ↑ up… ↑ X ↓ down… ↓ B (model/connection.ts connectionPath):
//   up hops      `qubes forward`: accept A's flow out of the uplink, then drop any other new flow to B
//                out of it — past this hop the source is masqueraded to the hop's address, and the
//                next hop's accept must not let the hop's other clients through with it.
//   X, down hops `qubes forward`: accept (source as the hop sees it → B) before `oifgroup 2 drop`.
//   B            `qubes input`: accept from the source as B sees it.
// A's own outbound rules still judge the flow first in its netvm (`qubes-firewall`, §4.6).
//
// Forward to Q, path top … N1 Q: every hop DNATs (prerouting, dstnat) to the next one down — the
// top from its uplink (or --on interfaces), the others what arrives from their uplink for their own
// address — and accepts the DNATed flow in `qubes forward`; Q accepts it in `qubes input`. No hop
// masquerades downwards (postrouting `oifgroup 2 accept`), so Q and --from see the real source.
//
// Every rule counts (`counter`): `qnet connections -v` / `forward list -v` sum them per hop. They
// sit after `established,related accept` (and nat sees a flow once), so they count new flows.
import type { Chain, IrRule, Match, NamedMap, Value } from '../../ir/types.js';
import { qubeIp, qubeIp6 } from '../../model/addressing.js';
import { connectionPath, connectionsOf, describeConnection, forwardPath, forwardsOf, type Connection, type PortForward } from '../../model/connection.js';
import { diag } from '../../model/diagnostics.js';
import { vifName } from '../../model/topology.js';
import type { Origin } from '../../model/origin.js';
import type { Qube } from '../../model/qube.js';
import { canonicalAddr, formatAddr, toPrefix } from '../addr.js';
import type { CompileContext, IpFamily } from '../context.js';
import { accept, addr, counter, drop, int, is, rule, sym } from './build.js';
import { flatten } from './flat-links.js';

/** What connections and forwards add to one node, per family. */
export interface NodeLinks {
  /** Chain `links-down`: accepts for new flows into a client (the base chain jumps for oifgroup 2). */
  down: IrRule[];
  /** Forwards' accepts into a client, after the connections' (joined to `down` at the end). */
  downFwd: IrRule[];
  /** Chain `links-up`: upward hops' accepts, then their guards (jumped for `upDests` only). */
  up: IrRule[];
  upGuard: IrRule[];
  /** The flat layout's verdict maps and the chains their elements jump to (flat-links.ts). */
  maps: NamedMap[];
  chains: Chain[];
  upDests: string[];
  /** `l4proto . port` pairs the DNAT chain handles (its set `forward-ports`). */
  ports: [string, number][];
  /** `qubes input`, at the place for inbound accepts. */
  input: IrRule[];
  /** Forwards' accepts in `qubes input`, after the connections' (joined to `input` at the end). */
  inputFwd: IrRule[];
  /** A nat prerouting (dstnat) chain of its own: the forwards' DNAT. */
  dnat: IrRule[];
  /**
   * More (vif, source) pairs for antispoof's @allowed: B's replies come up through X and the hops
   * below it unmasqueraded, from a qube that is not their client. New flows from such a source find
   * no dispatch element in `qubes-firewall` and hit its drop policy, so only replies pass.
   */
  allowed: { vif: string; addr: string; qube: string }[];
}

/** Keys already in `upDests`, `allowed` and `ports` of a node: a scan each was quadratic in links. */
const added = new WeakMap<NodeLinks, Set<string>>();
/** Whether `key` is new for `n` (and now recorded). */
function once(n: NodeLinks, key: string): boolean {
  let s = added.get(n);
  if (!s) added.set(n, (s = new Set()));
  if (s.has(key)) return false;
  s.add(key);
  return true;
}
const empty = (): NodeLinks => ({ down: [], downFwd: [], up: [], upGuard: [], maps: [], chains: [], upDests: [], ports: [], input: [], inputFwd: [], dnat: [], allowed: [] });
const cache = new WeakMap<CompileContext, Map<string, NodeLinks>>();

/** The node's share of every connection and forward (computed once per compile). */
export function linksOf(ctx: CompileContext, node: string, f: IpFamily): NodeLinks {
  let all = cache.get(ctx);
  if (!all) cache.set(ctx, (all = compileLinks(ctx)));
  return all.get(`${f} ${node}`) ?? empty();
}

/**
 * Which links to compile, for a patch (compile/link-patch.ts): these connections and forwards, and
 * of them only the rules keyed by a destination in `dests` (connections) or by a `proto port` in
 * `ports` (forwards). Every rule of a key comes from links towards its destination or on its
 * port, so given all of those, each key's chain and elements come out as the full compile's.
 */
export interface LinkScope {
  connections: readonly Connection[];
  forwards: readonly PortForward[];
  dests: ReadonlySet<string>;
  ports: ReadonlySet<string>;
}

/** Per `family node`, its share of every connection and forward (or of `scope`'s, see LinkScope). */
export function compileLinks(ctx: CompileContext, scope?: LinkScope): Map<string, NodeLinks> {
  const out = new Map<string, NodeLinks>();
  const at = (node: string, f: IpFamily) => {
    let n = out.get(`${f} ${node}`);
    if (!n) out.set(`${f} ${node}`, (n = empty()));
    return n;
  };
  const inPlan = new Set(ctx.plan.nodes.filter((n) => n.kind === 'qube').map((n) => n.name));
  for (const f of FAMILIES) {
    const guards: Guard[] = [];
    for (const c of scope?.connections ?? connectionsOf(ctx.model))
      for (const [from, to] of c.bothWays ? [[c.from, c.to]!, [c.to, c.from]!] : [[c.from, c.to]!])
        if (!scope || scope.dests.has(to!)) connection(ctx, f, c, from!, to!, inPlan, at, guards);
    // After every accept of the hop: other new flows to B leave no masqueraded hop (see the header).
    const seen = new Set<string>();
    for (const g of guards) {
      const k = `${g.node} ${g.ipB} ${JSON.stringify(g.l4)}`;
      if (seen.has(k)) continue;
      seen.add(k);
      at(g.node, f).upGuard.push(rule(g.origin, [is(fields(f).daddr, addr(g.ipB)), ...g.l4, is('oifgroup', int(1))], counter, drop));
    }
    for (const fw of scope?.forwards ?? forwardsOf(ctx.model)) forward(ctx, f, fw, inPlan, at, scope?.ports);
  }
  for (const [k, n] of out) {
    if (ctx.layout === 'qubes-linear') {
      // The rule lists: the baseline the flat layout is measured against.
      n.down = [...n.down, ...n.downFwd];
      n.up = [...n.up, ...n.upGuard];
      n.input = [...n.input, ...n.inputFwd];
    } else {
      const flat = flatten(k.startsWith('ip6 ') ? 'ip6' : 'ip', { downConn: n.down, downFwd: n.downFwd, upAccept: n.up, upGuard: n.upGuard, dnat: n.dnat, inputConn: n.input, inputFwd: n.inputFwd });
      Object.assign(n, { down: flat.down, up: flat.up, dnat: flat.dnat, input: flat.input, maps: flat.maps, chains: flat.chains });
    }
    n.downFwd = [];
    n.upGuard = [];
    n.inputFwd = [];
  }
  return out;
}

const FAMILIES: readonly IpFamily[] = ['ip', 'ip6'];
/** Only what the connection admits: other traffic to B keeps its Qubes fate (e.g. pings to a netvm). */
type Guard = { node: string; ipB: string; l4: Match[]; origin: Origin };

const fields = (f: IpFamily) =>
  f === 'ip' ? ({ saddr: 'ip saddr', daddr: 'ip daddr' } as const) : ({ saddr: 'ip6 saddr', daddr: 'ip6 daddr' } as const);

/** `tcp dport 22-23`, `ip protocol icmp` (`meta l4proto icmpv6` in ip6), or nothing (any protocol). */
function l4(f: IpFamily, c: Connection): Match[] {
  if (c.proto === undefined) return [];
  if (c.proto === 'icmp') return [f === 'ip' ? is('ip protocol', sym('icmp')) : is('meta l4proto', sym('icmpv6'))];
  const ports = c.ports;
  if (!ports) return [is(f === 'ip' ? 'ip protocol' : 'meta l4proto', sym(c.proto))];
  const v: Value = ports.start === ports.end ? int(ports.start) : { kind: 'range', lo: ports.start, hi: ports.end };
  return [is(c.proto === 'tcp' ? 'tcp dport' : 'udp dport', v)];
}

/** The qube's address in the family (IPv6 only where the qube has it). */
const addrOf = (ctx: CompileContext, f: IpFamily, q: Qube): string | null => {
  const a = f === 'ip' ? qubeIp(ctx.model, q) : qubeIp6(ctx.model, q);
  return a === null ? null : canonicalAddr(a);
};

function connection(
  ctx: CompileContext,
  f: IpFamily,
  c: Connection,
  from: string,
  to: string,
  inPlan: ReadonlySet<string>,
  at: (node: string, f: IpFamily) => NodeLinks,
  guards: Guard[],
): void {
  const origin: Origin = { kind: 'connection', id: c.id };
  const p = connectionPath(ctx.model, from, to);
  if (!p) {
    if (f === 'ip' && ctx.model.qubes.has(from) && ctx.model.qubes.has(to))
      ctx.report(diag('QNET4006', `connection ${c.id} (${describeConnection(c)}): ${from} and ${to} share no netvm, so no path joins them`, { hint: 'give them a common netvm' }));
    return;
  }
  const nodes = [p.a, ...p.up, p.x, ...p.down, p.b];
  if (!nodes.every((q) => inPlan.has(q.name))) return; // something on the way is not running
  const ipA = addrOf(ctx, f, p.a);
  const ipB = addrOf(ctx, f, p.b);
  if (ipA === null || ipB === null) return;
  const m = l4(f, c);
  const { saddr, daddr } = fields(f);
  // Masqueraded out of each upward hop's uplink: in IPv6 only where every such hop has an address.
  if (!p.up.every((h) => addrOf(ctx, f, h) !== null)) return;
  // Up: each hop sees the previous one's address (masquerade), A's own at the first.
  let src = ipA;
  for (const hop of p.up) {
    const own = addrOf(ctx, f, hop)!;
    const n = at(hop.name, f);
    n.up.push(rule(origin, [is(saddr, addr(src)), is(daddr, addr(ipB)), ...m, is('oifgroup', int(1))], counter, accept));
    if (once(n, `up ${ipB}`)) n.upDests.push(ipB);
    guards.push({ node: hop.name, ipB, l4: m, origin });
    src = own;
  }
  // X and down: sent to a client (group 2), which the base chain refuses unless accepted here.
  const downHops = [p.x, ...p.down];
  downHops.forEach((hop, i) => {
    if (hop === p.b) return; // B receives in input
    if (hop !== p.a) at(hop.name, f).down.push(rule(origin, [is(saddr, addr(src)), is(daddr, addr(ipB)), ...m], counter, accept));
    const next = downHops[i + 1];
    if (next === undefined) return; // B's own netvm knows B's vif already
    const n = at(hop.name, f);
    if (once(n, `allowed ${ipB}`)) n.allowed.push({ vif: vifName(next), addr: ipB, qube: p.b.name });
  });
  at(p.b.name, f).input.push(rule(origin, [is(saddr, addr(src)), ...m], counter, accept));
}

function forward(ctx: CompileContext, f: IpFamily, fw: PortForward, inPlan: ReadonlySet<string>, at: (node: string, f: IpFamily) => NodeLinks, ports?: ReadonlySet<string>): void {
  const origin: Origin = { kind: 'forward', id: fw.id };
  /** Whether rules keyed by this port are wanted (see LinkScope). */
  const keep = (port: number) => !ports || ports.has(`${fw.proto} ${port}`);
  const q = ctx.model.qubes.get(fw.qube);
  if (!q || !inPlan.has(q.name)) return; // a halted qube: kept, inactive
  const hops = forwardPath(ctx.model, q);
  if (!hops.length || !hops.every((h) => inPlan.has(h.name))) return;
  const top = ctx.plan.nodes.find((n) => n.name === hops[0]!.name)!;
  const uplink = top.ifaces.find((i) => i.group === 1 && (i.peer || i.physical));
  if (!uplink) {
    if (f === 'ip6') return;
    ctx.report(diag('QNET4006', `forward ${fw.id} (${fw.proto}/${fw.port} to ${fw.qube}): ${top.name} has no uplink, so nothing comes in`, { qube: fw.qube, hint: 'qnet global uplink world (or veth-host, move:DEV)' }));
    return;
  }
  const ipQ = addrOf(ctx, f, q);
  if (ipQ === null) return;
  // IPv6 comes in only where the uplink has an IPv6 address and every hop down has one too.
  if (f === 'ip6' && !uplink.physical && !uplink.addrs.some((a) => a.addr.includes(':'))) return;
  // --from: the ranges of this family; given only ranges of the other, this family admits nobody.
  const fromF = fw.from.filter((x) => x.includes(':') === (f === 'ip6'));
  if (fw.from.length && !fromF.length) return;
  const src: Match[] = fromF.length ? [srcMatch(f, fromF)] : [];
  const { daddr } = fields(f);
  const dport = fw.proto === 'tcp' ? 'tcp dport' : 'udp dport';
  const toPort = fw.toPort ?? fw.port;
  hops.forEach((hop, i) => {
    const next = i + 1 < hops.length ? hops[i + 1]! : q;
    const nextIp = addrOf(ctx, f, next);
    const own = addrOf(ctx, f, hop);
    if (nextIp === null || own === null) return;
    const outPort = next === q ? toPort : fw.port;
    // The top takes what is sent to its uplink address (not what merely passes it, such as a packet
    // for a qube's internal address); one from DHCP (a moved physical device) or on --on interfaces
    // is not in the plan, so there the interface alone decides. A hop below takes what its netvm
    // DNATed to its own address.
    const upAddrs = uplink.addrs.map((x) => canonicalAddr(x.addr)).filter((x) => x.includes(':') === (f === 'ip6'));
    const iif: Match[] =
      i === 0
        ? fw.on.length
          ? [fw.on.length === 1 ? is('iifname', { kind: 'str', s: fw.on[0]! }) : { kind: 'in-anon', field: 'iifname', op: '==', values: fw.on.map((s) => ({ kind: 'str', s })) }]
          : [is('iifgroup', int(1)), ...(upAddrs.length === 1 ? [is(daddr, addr(upAddrs[0]!))] : upAddrs.length > 1 ? [{ kind: 'in-anon' as const, field: daddr, op: '==' as const, values: upAddrs.map(addr) }] : [])]
        : [is('iifgroup', int(1)), is(daddr, addr(own))];
    const n = at(hop.name, f);
    if (keep(fw.port)) {
      n.dnat.push(rule(origin, [...iif, ...src, is(dport, int(fw.port))], counter, { kind: 'dnat', ...(f === 'ip6' ? { family: 'ip6' as const } : {}), addr: nextIp, port: outPort }));
      if (once(n, `port ${fw.proto} ${fw.port}`)) n.ports.push([fw.proto, fw.port]);
    }
    if (keep(outPort)) n.downFwd.push(rule(origin, [iif[0]!, ...src, is(daddr, addr(nextIp)), is(dport, int(outPort)), is('ct status', sym('dnat'))], counter, accept));
  });
  if (keep(toPort)) at(q.name, f).inputFwd.push(rule(origin, [...src, is(dport, int(toPort))], counter, accept));
}

/** `ip saddr 192.0.2.0/24` or `ip saddr { … }`, prefixes canonical (host bits cleared). */
function srcMatch(f: IpFamily, cidrs: string[]): Match {
  const full = f === 'ip' ? 32 : 128;
  const vals: Value[] = cidrs.map((c) => {
    const [a, len] = c.split('/');
    const p = toPrefix(a!, len === undefined ? undefined : Number(len))!;
    return p.len === full ? addr(formatAddr(p)) : { kind: 'addr', addr: formatAddr(p), len: p.len };
  });
  const field = fields(f).saddr;
  return vals.length === 1 ? is(field, vals[0]!) : { kind: 'in-anon', field, op: '==', values: vals };
}
