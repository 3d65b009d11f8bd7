// The network walk: a probe leaves its source node (output, postrouting), crosses veths to peers
// (prerouting, routing, input or forward, postrouting) until it is delivered to a local address of
// some node, or dropped or rejected. Hook order per node is Linux's (ip_rcv → PREROUTING →
// ip_route_input → LOCAL_IN | FORWARD → POST_ROUTING; ip_local_out → LOCAL_OUT → POST_ROUTING),
// with conntrack per node and NAT from its tuples. A delivered probe is answered by its
// destination, and the reply walks back as established traffic.
import type { Hook, RejectWith, Ruleset } from '../ir/types.js';
import type { Iface, NetPlan } from '../model/netplan.js';
import { type AddrNum, formatV4Memo, formatV6, parseAddr, parseV4, parseV6 } from './addr.js';
import { bindDnat, bindSnat, type ConnTable, ctConfirm, ctFresh, ctLookup, ctStatus, type CtView, manipDst, manipSrc, newSimState, scratchView, type SimState } from './conntrack.js';
import { type ChainStep, type Counters, type HookContext, type HookRun, type NatDecision, type NatSlotHandler, newHookRun, type RuleRef, ruleRef, runBases } from './evaluate.js';
import { CT_BIT, isIcmp, type Pkt, type Probe, PROTO, probeL4 } from './packet.js';
import { hookIndex, prepare } from './prepare.js';
import { type IfAddr, isLocal, type PNode, type PPlan, type PRoute, preparePlan, route } from './route.js';
import { describeOrigin } from '../model/origin.js';

export interface World {
  plan: NetPlan;
  rulesets: ReadonlyMap<string, Ruleset>;
}

export interface SimOptions {
  /**
   * Record the walk (default true): hops with their chains, paths, logs, NAT and counter moves.
   * Off, `hops` is empty; the verdict, node, reason, deciding rule and rule count are the same.
   */
  trace?: boolean;
  /** Send the destination's answer back and report it as `reply` (default true). */
  reply?: boolean;
}

/** A packet as shown in an explanation. */
export interface PacketView {
  saddr: string;
  daddr: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | string;
  sport?: number;
  dport?: number;
  icmpType?: number;
}

export interface NatNote {
  hook: Hook;
  /** dnat/masquerade: set up now; 'ct': rewritten from an existing conntrack binding. */
  kind: 'dnat' | 'masquerade' | 'ct';
  field: 'daddr' | 'saddr';
  from: string;
  to: string;
  by?: RuleRef;
}

export interface Hop {
  node: string;
  /** Interface the packet came in on (absent where it was created). */
  in?: string;
  /** Interface it left through (absent where it was delivered or stopped). */
  out?: string;
  packet: PacketView;
  ct: 'new' | 'established';
  /** Base chains run, hook by hook, in order. */
  steps: ChainStep[];
  route?: string;
  nat: NatNote[];
  rulesEvaluated: number;
  /** Rules whose `counter` moved on this hop, with the new totals. */
  counted: { rule: RuleRef; packets: number }[];
  outcome: 'sent' | 'forwarded' | 'delivered' | 'dropped' | 'rejected';
}

export interface SimResult {
  probe: Probe;
  direction: 'original' | 'reply';
  /** accept = delivered. */
  verdict: 'accept' | 'drop' | 'reject';
  /** Where it was delivered, or where it was stopped. */
  node: string;
  /** The destination as delivered (after DNAT); present when accepted. */
  deliveredTo?: string;
  reject?: RejectWith;
  /** The rule that dropped or rejected it (absent for a policy or a routing drop). */
  by?: RuleRef;
  reason: string;
  hops: Hop[];
  rulesEvaluated: number;
  /** The destination's answer, when the probe was delivered and replies were asked for. */
  reply?: SimResult;
}

const EMPTY: Ruleset = { tables: [] };
const TTL = 64;
export const OUTSIDE = 'outside';
/** Where probes from the outside come from by default (203.0.113.0/24, 2001:db8::/32 are documentation ranges). */
export const OUTSIDE_HOST = { 4: '203.0.113.10', 6: '2001:db8:1::10' } as const;
const DEFAULT_SPORT = 49152;

const NO_FLOWS: ConnTable = new Map();

// A walk that neither traces nor keeps its flows (a verdict-only probe) allocates no hop, no
// conntrack entry and no hook result: it writes into these, one set for the process (simulate()
// is synchronous and never re-entered).
const SCRATCH_HOP: Hop = { node: '', packet: { saddr: '', daddr: '', proto: '' }, ct: 'new', steps: [], nat: [], rulesEvaluated: 0, counted: [], outcome: 'dropped' };
const SCRATCH_VIEW = scratchView();
const NO_STATE: SimState = { conntrack: new Map(), counters: new Map() };
// Every hook of every walk runs with these two (walks run one at a time, hooks one after another).
const HOOK_RUN: HookRun = newHookRun();
const HOOK_CTX: HookContext = { counters: undefined, counted: undefined, trace: false, ctState: 0, ctStatus: 0, natAllowed: false, nat: undefined };

class Walk implements NatSlotHandler {
  /** Hops as recorded with tracing; empty without. */
  readonly hops: Hop[] = [];
  rules = 0;
  // The hook being evaluated, for atNatSlot (one handler object per walk, no closure per hook).
  private pn!: PNode;
  private hookName: Hook = 'prerouting';
  private view!: CtView;
  private hop!: Hop;
  /** The route the packet leaves by (set with p.oif by setOut; undefined for lo): masquerade's addresses without a lookup. */
  out: PRoute | undefined;
  constructor(
    readonly pp: PPlan,
    readonly rulesets: ReadonlyMap<string, Ruleset>,
    readonly state: SimState,
    /** Record hops, chain paths, logs and counter moves. */
    readonly trace: boolean,
    /** Keep flows and counters: a caller's state, or a reply leg to follow. Otherwise nobody reads them. */
    readonly keep: boolean,
  ) {}

  /** A walk that keeps no flows still needs the one it sends to itself over lo (see loopback()). */
  private loop: { node: string; table: ConnTable } | undefined;

  table(node: string): ConnTable {
    if (!this.keep) return this.loop !== undefined && this.loop.node === node ? this.loop.table : NO_FLOWS;
    let t = this.state.conntrack.get(node);
    if (!t) this.state.conntrack.set(node, (t = new Map()));
    return t;
  }

  /** nf_conntrack_in: the packet's flow at this node (a throwaway one when flows are not kept). */
  lookup(ct: ConnTable, p: Pkt): CtView {
    return this.keep || ct !== NO_FLOWS ? ctLookup(ct, p) : ctFresh(SCRATCH_VIEW, p);
  }

  /**
   * A packet sent to the node itself keeps its conntrack entry when it comes back in on lo (the
   * kernel does not look it up again), as a kept walk finds it in the node's table. A walk that
   * keeps no flows gets a table for that node alone, holding a copy of this one flow.
   */
  loopback(pn: PNode, v: CtView): void {
    if (this.keep) return;
    const c = v.conn;
    const conn = { ...c, orig: { ...c.orig }, reply: { ...c.reply } };
    const table: ConnTable = new Map();
    ctConfirm(table, { conn, dir: v.dir, state: v.state }, true);
    this.loop = { node: pn.name, table };
  }

  /**
   * Bring the node's prepared ruleset up to date with the world's (looked up once per visit;
   * prepare() caches per Ruleset object): hook() reads it from the node.
   */
  prepared(pn: PNode): void {
    const rs = this.rulesets.get(pn.name) ?? EMPTY;
    if (pn.rs === rs) return;
    const prep = prepare(rs);
    pn.rs = rs;
    pn.lists = prep.lists;
    pn.nat4 = prep.nat4;
    pn.nat6 = prep.nat6;
  }

  /** Run one hook at `pn` (prepared() first) with conntrack view `v`, recording steps, NAT and counters on `hop` when tracing. */
  hook(pn: PNode, hook: Hook, p: Pkt, v: CtView, hop: Hop): HookRun {
    const dst = hook === 'prerouting' || hook === 'output';
    const c = v.conn;
    const bound = dst ? c.dstBound : c.srcBound;
    let counters: Counters | undefined;
    if (this.keep || this.trace) {
      counters = this.state.counters.get(pn.name);
      if (!counters) this.state.counters.set(pn.name, (counters = new Map()));
    }
    this.pn = pn;
    this.hookName = hook;
    this.view = v;
    this.hop = hop;
    const ctx = HOOK_CTX;
    ctx.nat = this;
    ctx.trace = this.trace;
    ctx.counters = counters;
    ctx.counted = this.trace ? hop.counted : undefined;
    ctx.ctState = v.state;
    ctx.ctStatus = ctStatus(c);
    ctx.natAllowed = v.dir === 0 && !bound;
    const r = HOOK_RUN;
    const six = p.family === 6;
    runBases(pn.lists[hookIndex(hook) * 2 + (six ? 1 : 0)]!, six ? pn.nat6 : pn.nat4, hook, p, ctx, this.trace ? hop.steps : undefined, r);
    if (this.trace) hop.rulesEvaluated += r.rulesEvaluated;
    this.rules += r.rulesEvaluated;
    return r;
  }

  atNatSlot(p: Pkt, nat: NatDecision | undefined): void {
    const { pn, hookName: hook, view: v } = this;
    const c = v.conn;
    const dst = hook === 'prerouting' || hook === 'output';
    const before = dst ? p.daddr : p.saddr;
    if (v.dir === 0 && !(dst ? c.dstBound : c.srcBound)) {
      if (nat?.kind === 'dnat' && dst) {
        const fam = nat.addr.includes(':') ? 6 : 4;
        // parseAddr succeeds: prepare() refused a ruleset whose dnat address does not parse.
        if (fam === p.family) bindDnat(c, nat.addr, parseAddr(nat.addr, fam)!, nat.port);
      } else if (nat?.kind === 'masquerade' && !dst) {
        // The outgoing interface's first address of the packet's family.
        const out = this.out;
        let a: IfAddr | undefined;
        if (out !== undefined && p.oif === out.dev.name) a = out.oifAddrs?.[p.family];
        else {
          const oif = p.oif === null ? undefined : pn.ifaces.get(p.oif);
          a = oif ? pn.ifAddrs.get(oif)?.[p.family] : undefined;
        }
        if (a) {
          // num is undefined exactly when the plan's address does not parse.
          if (a.num === undefined) throw new Error(`not an IPv${p.family} address: ${a.text}`);
          bindSnat(c, a.text, a.num);
        }
      }
      // Without a decision the kernel binds a null mapping: later nat chains never see this flow.
      if (dst) c.dstBound = true;
      else c.srcBound = true;
    }
    if (dst) manipDst(v, p);
    else manipSrc(v, p);
    p.ctStatus = ctStatus(c);
    if (!this.trace) return;
    const after = dst ? p.daddr : p.saddr;
    if (after !== before) this.hop.nat.push({ hook, kind: nat ? nat.kind : 'ct', field: dst ? 'daddr' : 'saddr', from: before, to: after, ...(nat ? { by: nat.by } : {}) });
  }

  newHop(pn: PNode, p: Pkt, inIface: string | undefined, v: CtView): Hop {
    if (!this.trace) return SCRATCH_HOP;
    const hop: Hop = { node: pn.name, packet: view(p), ct: v.state === CT_BIT.new ? 'new' : 'established', steps: [], nat: [], rulesEvaluated: 0, counted: [], outcome: 'dropped' };
    if (inIface !== undefined) hop.in = inIface;
    this.hops.push(hop);
    return hop;
  }
}

function view(p: Pkt): PacketView {
  const proto = p.l4 === PROTO.tcp ? 'tcp' : p.l4 === PROTO.udp ? 'udp' : p.l4 === PROTO.icmp ? 'icmp' : p.l4 === PROTO.icmpv6 ? 'icmpv6' : String(p.l4);
  const v: PacketView = { saddr: p.saddr, daddr: p.daddr, proto };
  if (p.sport >= 0) v.sport = p.sport;
  if (p.dport >= 0) v.dport = p.dport;
  if (isIcmp(p.l4)) v.icmpType = p.icmpType;
  return v;
}

type Stop = { verdict: 'drop' | 'reject'; node: string; reason: string; by?: RuleRef; reject?: RejectWith };
type Done = { verdict: 'accept'; node: string; reason: string; deliveredTo: string };

function stopped(hop: Hop, pn: PNode, hook: Hook, r: HookRun): Stop {
  const rejected = r.verdict === 'reject';
  hop.outcome = rejected ? 'rejected' : 'dropped';
  const b = r.base;
  const where = b ? `${hook} ${b.chain.table.family} ${b.chain.table.name} ${b.chain.name}` : hook;
  const what = r.rule ? `by ${describeOrigin(r.rule.ir.origin)}` : b && r.policy ? `by the policy (${r.verdict})` : '';
  const s: Stop = { verdict: rejected ? 'reject' : 'drop', node: pn.name, reason: `${rejected ? 'rejected' : 'dropped'} at ${pn.name}: ${where} ${what}`.trimEnd() };
  if (r.rule) s.by = ruleRef(r.rule);
  if (r.reject) s.reject = r.reject;
  return s;
}

function drop(hop: Hop, node: string, reason: string): Stop {
  hop.outcome = 'dropped';
  return { verdict: 'drop', node, reason: `dropped at ${node}: ${reason}` };
}

function setOut(w: Walk, p: Pkt, r: PRoute | null): void {
  const i = r ? r.dev : null;
  w.out = r ?? undefined;
  p.oif = i ? i.name : 'lo';
  p.oifgroup = i ? i.group : 0;
}

/** A packet created at `pn`: routing, output, (re-routing after DNAT), postrouting, then out. */
function sendLocal(w: Walk, pn: PNode, p: Pkt): Stop | Done {
  const ct = w.table(pn.name);
  const v = w.lookup(ct, p);
  const hop = w.newHop(pn, p, undefined, v);
  let rt = route(w.pp, pn, p.da, p.family, true);
  if (rt.kind === 'none') return drop(hop, pn.name, rt.why);
  if (rt.kind === 'outside') return deliver(w, hop, pn, p, ct, v);
  w.prepared(pn);
  p.iif = null;
  p.iifgroup = 0;
  setOut(w, p, rt.kind === 'out' ? rt.route : null);
  const daddr = p.daddr;
  let r = w.hook(pn, 'output', p, v, hop);
  if (r.verdict !== 'accept') return stopped(hop, pn, 'output', r);
  // ip_route_me_harder: a destination changed in output (by NAT) is routed again.
  if (p.daddr !== daddr) {
    rt = route(w.pp, pn, p.da, p.family, true);
    if (rt.kind === 'none') return drop(hop, pn.name, rt.why);
    if (rt.kind === 'outside') return deliver(w, hop, pn, p, ct, v);
    setOut(w, p, rt.kind === 'out' ? rt.route : null);
  }
  if (rt.kind === 'out') hop.route = rt.route.text;
  r = w.hook(pn, 'postrouting', p, v, hop);
  if (r.verdict !== 'accept') return stopped(hop, pn, 'postrouting', r);
  if (rt.kind === 'local') w.loopback(pn, v);
  ctConfirm(ct, v, w.keep);
  if (rt.kind === 'local') {
    hop.route = 'local (lo)';
    hop.out = 'lo';
    hop.outcome = 'sent';
    return receive(w, pn, 'lo', 0, p, TTL);
  }
  return transmit(w, pn, hop, rt.route, p, TTL);
}

function transmit(w: Walk, pn: PNode, hop: Hop, r: PRoute, p: Pkt, ttl: number): Stop | Done {
  const iface = r.dev;
  hop.out = iface.name;
  if (!iface.peer) return drop(hop, pn.name, iface.physical ? `left through ${iface.name}, a physical uplink: the outside beyond it is not simulated` : `${iface.name} has no peer`);
  const link = r.link;
  const next = link?.node;
  if (!next) return drop(hop, pn.name, `${iface.name}'s peer ${iface.peer.node} is not in the plan`);
  hop.outcome = hop.in === undefined ? 'sent' : 'forwarded';
  return receive(w, next, iface.peer.iface, link.iface?.group ?? 0, p, ttl);
}

function receive(w: Walk, pn: PNode, iifname: string, iifgroup: number, p: Pkt, ttl: number): Stop | Done {
  const ct = w.table(pn.name);
  p.iif = iifname;
  p.iifgroup = iifgroup;
  p.oif = null;
  p.oifgroup = 0;
  const v = w.lookup(ct, p);
  const hop = w.newHop(pn, p, iifname, v);
  w.prepared(pn);
  let r = w.hook(pn, 'prerouting', p, v, hop);
  if (r.verdict !== 'accept') return stopped(hop, pn, 'prerouting', r);
  const rt = route(w.pp, pn, p.da, p.family, false);
  if (rt.kind === 'local' || rt.kind === 'outside') {
    hop.route = rt.kind === 'local' ? 'local' : pn.node.kind === 'host' ? 'outside (via the host)' : 'outside (stand-in internet host)';
    r = w.hook(pn, 'input', p, v, hop);
    if (r.verdict !== 'accept') return stopped(hop, pn, 'input', r);
    return deliver(w, hop, pn, p, ct, v);
  }
  if (rt.kind === 'none') return drop(hop, pn.name, rt.why);
  hop.route = rt.route.text;
  if (!pn.node.forwarding) return drop(hop, pn.name, `not local and forwarding is off (${rt.route.text})`);
  if (ttl <= 1) return drop(hop, pn.name, 'TTL exceeded (routing loop)');
  setOut(w, p, rt.route);
  r = w.hook(pn, 'forward', p, v, hop);
  if (r.verdict !== 'accept') return stopped(hop, pn, 'forward', r);
  r = w.hook(pn, 'postrouting', p, v, hop);
  if (r.verdict !== 'accept') return stopped(hop, pn, 'postrouting', r);
  ctConfirm(ct, v, w.keep);
  return transmit(w, pn, hop, rt.route, p, ttl - 1);
}

function deliver(w: Walk, hop: Hop, pn: PNode, p: Pkt, ct: ConnTable, v: CtView): Done {
  ctConfirm(ct, v, w.keep);
  hop.outcome = 'delivered';
  const at = !pn.world || isLocal(pn, p.da, p.family) ? `${pn.name} (${p.daddr})` : pn.node.kind === 'host' ? `the outside via the host (${p.daddr})` : `the outside (stand-in host ${p.daddr})`;
  return { verdict: 'accept', node: pn.name, reason: `delivered to ${at}`, deliveredTo: p.daddr };
}

/** The source address the kernel picks at `pn` for `da`: the outgoing interface's, then any of the family. */
function sourceAddress(pp: PPlan, pn: PNode, da: AddrNum, fam: 4 | 6): IfAddr | 'destination' | undefined {
  const rt = route(pp, pn, da, fam, true);
  if (rt.kind === 'out') {
    const a = rt.route.devAddrs?.[fam];
    if (a) return a;
  }
  const a = pn.firstAddr[fam];
  if (a) return a;
  if (rt.kind === 'local') return 'destination';
  return undefined;
}

function makePkt(probe: Probe, fam: 4 | 6, sa: AddrNum, saddr: string, da: AddrNum, daddr: string): Pkt {
  const l4 = probeL4(probe, fam);
  const ports = l4 === PROTO.tcp || l4 === PROTO.udp;
  return {
    family: fam,
    saddr,
    daddr,
    sa,
    da,
    l4,
    sport: ports ? (probe.sport ?? DEFAULT_SPORT) : -1,
    dport: ports ? (probe.dport ?? 0) : -1,
    icmpType: isIcmp(l4) ? (probe.icmpType ?? (fam === 4 ? 8 : 128)) : -1,
    iif: null,
    oif: null,
    iifgroup: 0,
    oifgroup: 0,
    ct: CT_BIT.new,
    ctStatus: -1,
  };
}

/** The answer a destination sends back (ICMP echo → echo reply; other ICMP types get none). */
function replyPkt(p: Pkt): Pkt | undefined {
  let icmpType = -1;
  if (p.l4 === PROTO.icmp) {
    if (p.icmpType !== 8) return undefined;
    icmpType = 0;
  } else if (p.l4 === PROTO.icmpv6) {
    if (p.icmpType !== 128) return undefined;
    icmpType = 129;
  }
  return { ...p, saddr: p.daddr, daddr: p.saddr, sa: p.da, da: p.sa, sport: p.dport, dport: p.sport, icmpType, iif: null, oif: null, iifgroup: 0, oifgroup: 0, ct: CT_BIT.new, ctStatus: -1 };
}

function result(probe: Probe, direction: SimResult['direction'], w: Walk, end: Stop | Done): SimResult {
  const r: SimResult = { probe, direction, verdict: end.verdict, node: end.node, reason: end.reason, hops: w.hops, rulesEvaluated: w.rules };
  if (end.verdict === 'accept') r.deliveredTo = end.deliveredTo;
  else {
    if (end.by) r.by = end.by;
    if (end.reject) r.reject = end.reject;
  }
  return r;
}

function refuse(probe: Probe, node: string, reason: string): SimResult {
  return { probe, direction: 'original', verdict: 'drop', node, reason, hops: [], rulesEvaluated: 0 };
}

/**
 * Can `probe.from` reach `probe.to`? Walks the network hop by hop through every node's ruleset.
 * Pass `state` to keep conntrack and counters across probes (open a flow, change rules, probe again).
 * With `{ trace: false, reply: false }` and no state, only the verdict is worked out: the same
 * verdict, node, reason, deciding rule and rule count, with no hops, at a fraction of the cost.
 */
export function simulate(world: World, probe: Probe, state?: SimState, opts: SimOptions = {}): SimResult {
  const pp = preparePlan(world.plan);
  // The probe's family: that of its destination (IPv4 first), which an explicit family must agree with.
  let fam: 4 | 6 | undefined;
  let da: AddrNum | undefined = parseV4(probe.to);
  if (da !== undefined) fam = 4;
  else if ((da = parseV6(probe.to)) !== undefined) fam = 6;
  if (fam === undefined || da === undefined || (probe.family !== undefined && probe.family !== fam)) return refuse(probe, probe.from, `'${probe.to}' is not an IPv${probe.family ?? '4/6'} address`);
  const fromOutside = probe.from === OUTSIDE;
  const pn = fromOutside ? pp.world : pp.nodes.get(probe.from);
  if (!pn) return refuse(probe, probe.from, fromOutside ? 'the plan has no outside (uplink is not "world")' : `${probe.from} is not on any network (no netvm, or not in the plan)`);
  const daddr = canonical(da, fam);
  let saText: string;
  let sa: AddrNum | undefined;
  let saddr: string;
  if (probe.src !== undefined || fromOutside) {
    saText = probe.src ?? OUTSIDE_HOST[fam];
    sa = parseAddr(saText, fam);
    saddr = sa === undefined ? '' : canonical(sa, fam);
  } else {
    const a = sourceAddress(pp, pn, da, fam);
    if (a === undefined) return refuse(probe, pn.name, `${pn.name} has no IPv${fam} address`);
    if (a === 'destination') [saText, sa, saddr] = [probe.to, da, daddr];
    else [saText, sa, saddr] = [a.text, a.num, a.canon ?? ''];
  }
  if (sa === undefined) return refuse(probe, pn.name, `'${saText}' is not an IPv${fam} address`);
  const p = makePkt(probe, fam, sa, saddr, da, daddr);
  const trace = opts.trace ?? true;
  const wantReply = opts.reply !== false;
  const keep = state !== undefined || wantReply;
  // Without tracing or keeping, nothing reads conntrack or counters: no state to make.
  const st = state ?? (keep || trace ? newSimState() : NO_STATE);
  const w = new Walk(pp, world.rulesets, st, trace, keep);
  const end = sendLocal(w, pn, p);
  const res = result(probe, 'original', w, end);
  if (end.verdict === 'accept' && wantReply) {
    const delivered = pp.nodes.get(end.node)!;
    // `p` is the packet as delivered (after every NAT on the way): the answer swaps it.
    const q = replyPkt(p);
    if (q) {
      const rw = new Walk(pp, world.rulesets, st, trace, true);
      res.reply = result(probe, 'reply', rw, sendLocal(rw, delivered, q));
    }
  }
  return res;
}

function canonical(a: AddrNum, fam: 4 | 6): string {
  return fam === 4 ? formatV4Memo(a as number) : formatV6(a as bigint);
}
