// The chain evaluator, with nftables semantics:
// - within a chain, rules in order; a rule matches when all its matches do; its statements run in
//   order (counter, log, NAT, vmap lookup, verdict);
// - jump pushes a return point, goto replaces the current chain, return (or the end of a regular
//   chain) pops; return or the end of a base chain applies the base chain's policy;
// - a vmap without a matching element falls through to the next rule;
// - accept ends the current base chain only: the next base chain of the same hook still runs
//   (nf_hook_slow continues on NF_ACCEPT); drop and reject end the packet (NF_DROP is final);
// - NAT statements are terminal (they return NF_ACCEPT), and only in nat chains.
import type { Family, Hook, IrRule, Origin, RejectWith, Ruleset, Table } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { matchesAt, OP_WIDTH } from './opcodes.js';
import { CT_BIT, type Packet, type Pkt, setDaddr, setSaddr, toPkt } from './packet.js';
import { hookIndex, natSlot, type PBase, type PChain, prepare, type PreparedRuleset, type PRule, type PStmt, type PVerdict, SimLoadError } from './prepare.js';

/** Points at one rule, with the origin a user can read ("work rule 3"). */
export interface RuleRef {
  family: Family;
  table: string;
  chain: string;
  /** 0-based position in its chain. */
  index: number;
  origin: Origin;
}

export type NatDecision = { kind: 'dnat'; addr: string; port?: number; by: RuleRef } | { kind: 'masquerade'; by: RuleRef };

export type FinalVerdict = 'accept' | 'drop' | 'reject';

/** One base chain's run inside a hook. */
export interface ChainStep {
  hook: Hook;
  family: Family;
  table: string;
  chain: string;
  type: 'filter' | 'nat';
  priority: number;
  /** 'skipped': a nat chain the packet does not traverse (not the first packet of its flow, or NAT already bound). */
  verdict: FinalVerdict | 'skipped';
  /** The rule that decided; absent when the policy did. */
  by?: RuleRef;
  policy?: boolean;
  reject?: RejectWith;
  nat?: NatDecision;
  /** Chains entered: the base chain, then every jump/goto target. Only with tracing. */
  path?: string[];
  logs?: string[];
  rulesEvaluated: number;
  note?: string;
}

export interface HookResult {
  verdict: FinalVerdict;
  reject?: RejectWith;
  /** The deciding rule when the packet was dropped or rejected. */
  by?: RuleRef;
  /** NAT set up by this hook's nat chains (first packet of a flow only). */
  nat?: NatDecision;
  steps: ChainStep[];
  rulesEvaluated: number;
}

/** Per-rule packet counters (the `counter` statement). */
export type Counters = Map<IrRule, number>;

const JUMP_STACK = 16; // NFT_JUMP_STACK_SIZE: deeper nesting is refused at load time.
const chainStack: PChain[] = new Array<PChain>(JUMP_STACK);
const indexStack: number[] = new Array<number>(JUMP_STACK).fill(0);

interface Env {
  counters: Counters | undefined;
  counted: { rule: RuleRef; packets: number }[] | undefined;
  trace: boolean;
  natChain: boolean;
  rules: number;
}

/** The outcome of running one chain (and everything it jumps to). Mutable and reused by callers. */
interface Outcome {
  kind: 'accept' | 'drop' | 'reject' | 'end';
  rule: PRule | undefined;
  reject: RejectWith | undefined;
  nat: Extract<PStmt, { k: 'dnat' } | { k: 'masquerade' }> | undefined;
  path: string[] | undefined;
  logs: string[] | undefined;
}

const newOutcome = (): Outcome => ({ kind: 'end', rule: undefined, reject: undefined, nat: undefined, path: undefined, logs: undefined });

function runChain(start: PChain, p: Pkt, env: Env, out: Outcome): void {
  out.kind = 'end';
  out.rule = undefined;
  out.reject = undefined;
  out.nat = undefined;
  out.path = env.trace ? [start.name] : undefined;
  out.logs = undefined;
  let cur = start;
  let i = 0;
  // Walk the chain's encoded matches by offset: a rule's object is read only when it matches
  // (with 10^5 rules, touching every rule object is what costs; see opcodes.ts).
  let pc = 0;
  let sp = 0;
  for (;;) {
    const n = cur.rules.length;
    if (i >= n) {
      if (sp === 0) return; // end of the entry chain: the policy (base) or the caller's next rule
      sp--;
      cur = chainStack[sp]!;
      i = indexStack[sp]!;
      pc = i < cur.rules.length ? cur.rules[i]!.pc : 0;
      continue;
    }
    const code = cur.code;
    const at = pc;
    pc += 1 + code[pc]! * OP_WIDTH;
    i++;
    env.rules++;
    if (!matchesAt(code, at, cur.calls, p)) continue;
    const r = cur.rules[i - 1]!;
    const st = r.stmts;
    let j: number;
    let v: PVerdict | undefined;
    for (j = 0; j < st.length && v === undefined; j++) {
      const s = st[j]!;
      switch (s.k) {
        case 'counter':
          if (env.counters) {
            const n = (env.counters.get(r.ir) ?? 0) + 1;
            env.counters.set(r.ir, n);
            env.counted?.push({ rule: ruleRef(r), packets: n });
          }
          break;
        case 'limit':
          break;
        case 'log':
          if (env.trace) (out.logs ??= []).push(s.prefix ?? `${cur.table.name} ${cur.name} rule ${r.index}`);
          break;
        case 'dnat':
        case 'masquerade':
          if (!env.natChain) throw new SimLoadError(`${s.k} in chain ${cur.table.name} ${cur.name}, which is not reached from a nat chain`);
          out.kind = 'accept';
          out.rule = r;
          out.nat = s;
          return;
        case 'vmap':
          v = s.lookup(p);
          if (v === undefined) j = st.length + 1; // no element: the rule ends, evaluation goes on
          break;
        case 'verdict':
          v = s.v;
          break;
        default:
          assertNever(s, 'statement');
      }
    }
    if (v === undefined) continue;
    switch (v.k) {
      case 'accept':
      case 'drop':
        out.kind = v.k;
        out.rule = r;
        return;
      case 'reject':
        out.kind = 'reject';
        out.rule = r;
        out.reject = v.with;
        return;
      case 'continue':
        continue;
      case 'return':
        if (sp === 0) return;
        sp--;
        cur = chainStack[sp]!;
        i = indexStack[sp]!;
        pc = i < cur.rules.length ? cur.rules[i]!.pc : 0;
        continue;
      case 'jump':
        if (sp >= JUMP_STACK) throw new SimLoadError(`jump stack deeper than ${JUMP_STACK} at ${cur.table.name} ${cur.name}`);
        chainStack[sp] = cur;
        indexStack[sp] = i;
        sp++;
        cur = v.to;
        i = 0;
        pc = 0;
        out.path?.push(cur.name);
        continue;
      case 'goto':
        cur = v.to;
        i = 0;
        pc = 0;
        out.path?.push(cur.name);
        continue;
      default:
        assertNever(v, 'verdict');
    }
  }
}

/** The rule as results name it; made once per prepared rule and shared (treat as read-only). */
export function ruleRef(r: PRule): RuleRef {
  return (r.ref ??= { family: r.chain.table.family, table: r.chain.table.name, chain: r.chain.name, index: r.index, origin: r.ir.origin });
}

function natDecision(o: Outcome): NatDecision | undefined {
  if (!o.nat || !o.rule) return undefined;
  const n = o.nat;
  if (n.decision) return n.decision;
  const by = ruleRef(o.rule);
  return (n.decision = n.k === 'dnat' ? { kind: 'dnat', addr: n.addr, ...(n.port !== undefined ? { port: n.port } : {}), by } : { kind: 'masquerade', by });
}

/** What the hook needs to know about conntrack and NAT for this packet (supplied by the walk). */
export interface HookContext {
  /** Totals, incremented by `counter` statements. */
  counters?: Counters;
  /** Receives each counter that moved, with its new total (for explanations). */
  counted?: { rule: RuleRef; packets: number }[];
  /** Record chain paths and logs (the deciding rule and verdicts are always recorded). */
  trace?: boolean;
  /** ct state bit (CT_BIT) chains see from the conntrack hook (-200) on. */
  ctState: number;
  /** ct status bits (CT_STATUS_BIT). */
  ctStatus: number;
  /** The first packet of a flow without a NAT binding at this hook yet: nat chains run. */
  natAllowed: boolean;
  /** Called once at the NAT core's position if the family has nat chains: apply the binding. */
  nat?: NatSlotHandler;
}

/** An object, not a closure: the walk reuses one per probe instead of allocating per hook. */
export interface NatSlotHandler {
  atNatSlot(p: Pkt, decided: NatDecision | undefined): void;
}

// Conntrack attaches at NF_IP_PRI_CONNTRACK (-200). Chains before it (raw, -300) see no entry:
// nft_ct_get_eval reports state `invalid` and breaks on other ct keys.
const CONNTRACK_PRIORITY = -200;

/**
 * A hook's outcome as runHook writes it into a caller's object (the walk reuses one per walk;
 * evalHookPkt turns it into a HookResult).
 */
export interface HookRun {
  verdict: FinalVerdict;
  reject: RejectWith | undefined;
  /** The rule that dropped or rejected the packet (undefined for a policy). */
  rule: PRule | undefined;
  /** The base chain that stopped the packet, and whether its policy did. */
  base: PBase | undefined;
  policy: boolean;
  /** NAT set up by this hook's nat chains (first packet of a flow only). */
  nat: NatDecision | undefined;
  rulesEvaluated: number;
}

export const newHookRun = (): HookRun => ({ verdict: 'accept', reject: undefined, rule: undefined, base: undefined, policy: false, nat: undefined, rulesEvaluated: 0 });

// One environment for every hook run: evaluation is synchronous and never re-enters itself (the
// NAT slot handler runs between chains and does not evaluate rules).
const hookEnv: Env = { counters: undefined, counted: undefined, trace: false, natChain: false, rules: 0 };

/**
 * Run every base chain of `hook` that sees this packet's family, in kernel order. Mutates `p` (NAT).
 * `steps` receives the chains run: all of them (skipped nat chains too) with `ctx.trace`, else only
 * the one that stopped the packet or set up NAT; pass undefined to record none.
 */
export function runHook(prep: PreparedRuleset, hook: Hook, p: Pkt, ctx: HookContext, steps: ChainStep[] | undefined, res: HookRun): void {
  runBases(prep.lists[hookIndex(hook) * 2 + (p.family === 6 ? 1 : 0)]!, p.family === 4 ? prep.nat4 : prep.nat6, hook, p, ctx, steps, res);
}

/**
 * runHook on the hook's base chains for the packet's family (`list`, from PreparedRuleset.lists),
 * `nat` telling whether that family registers the NAT core (PreparedRuleset.nat4/nat6).
 */
export function runBases(list: PBase[], nat: boolean, hook: Hook, p: Pkt, ctx: HookContext, steps: ChainStep[] | undefined, res: HookRun): void {
  res.verdict = 'accept';
  res.reject = undefined;
  res.rule = undefined;
  res.base = undefined;
  res.policy = false;
  res.nat = undefined;
  const trace = ctx.trace ?? false;
  const env = hookEnv;
  env.counters = ctx.counters;
  env.counted = ctx.counted;
  env.trace = trace;
  env.natChain = false;
  env.rules = 0;
  const slot = natSlot(hook);
  let natPending = hook !== 'forward' && nat;
  let ctAttached = false;
  p.ct = CT_BIT.invalid;
  p.ctStatus = -1;
  const out = scratch;
  for (let k = 0; k < list.length; k++) {
    const b = list[k]!;
    if (!ctAttached && b.order >= CONNTRACK_PRIORITY) {
      p.ct = ctx.ctState;
      p.ctStatus = ctx.ctStatus;
      ctAttached = true;
    }
    if (natPending && (b.order > slot || (b.order === slot && !b.nat))) {
      natPending = false;
      ctx.nat?.atNatSlot(p, res.nat);
    }
    if (b.nat && (!ctx.natAllowed || res.nat)) {
      // nf_nat_inet_fn runs nat chains only for a flow's first packet, and stops at the first binding.
      if (trace && steps) steps.push({ ...newStep(hook, b), verdict: 'skipped', note: res.nat ? 'NAT already bound by an earlier nat chain' : 'not the first packet of its flow: NAT comes from conntrack' });
      continue;
    }
    env.natChain = b.nat;
    const before = env.rules;
    runChain(b.chain, p, env, out);
    const verdict: FinalVerdict = out.kind === 'end' ? b.spec.policy : out.kind;
    const nat = out.nat ? natDecision(out) : undefined;
    // Without tracing, only a step that stops the packet or sets up NAT is worth an object.
    if (steps && (trace || verdict !== 'accept' || nat)) {
      const step = newStep(hook, b);
      steps.push(step);
      step.rulesEvaluated = env.rules - before;
      if (out.path) step.path = out.path;
      if (out.logs) step.logs = out.logs;
      if (out.rule) step.by = ruleRef(out.rule);
      if (out.kind === 'end') step.policy = true;
      step.verdict = verdict;
      if (out.kind === 'reject') step.reject = out.reject;
      if (nat) step.nat = nat;
    }
    if (nat) res.nat = nat;
    if (verdict !== 'accept') {
      res.verdict = verdict;
      res.rule = out.rule;
      if (out.kind === 'reject') res.reject = out.reject;
      res.base = b;
      res.policy = out.kind === 'end';
      res.rulesEvaluated = env.rules;
      return;
    }
  }
  if (!ctAttached) {
    p.ct = ctx.ctState;
    p.ctStatus = ctx.ctStatus;
  }
  if (natPending) ctx.nat?.atNatSlot(p, res.nat);
  res.rulesEvaluated = env.rules;
}

/** Run every base chain of `hook` that sees this packet's family, in kernel order. Mutates `p` (NAT). */
export function evalHookPkt(rs: Ruleset, hook: Hook, p: Pkt, ctx: HookContext): HookResult {
  const steps: ChainStep[] = [];
  const run = newHookRun();
  runHook(prepare(rs), hook, p, ctx, steps, run);
  const res: HookResult = { verdict: run.verdict, steps, rulesEvaluated: run.rulesEvaluated };
  if (run.nat) res.nat = run.nat;
  if (run.rule) res.by = ruleRef(run.rule);
  if (run.verdict === 'reject' && run.reject) res.reject = run.reject;
  return res;
}

const scratch = newOutcome();

function newStep(hook: Hook, b: PBase): ChainStep {
  const c = b.chain;
  return { hook, family: c.table.family, table: c.table.name, chain: c.name, type: b.spec.type, priority: b.spec.priority, verdict: 'accept', rulesEvaluated: 0 };
}

// ---- Pure entry points (no network, no conntrack table) ---------------------------------------

export interface EvalOptions {
  counters?: Counters;
  trace?: boolean;
  /** Source address masquerade rewrites to (the outgoing interface's address). */
  masqueradeTo?: string;
}

/** evalHook on a plain Packet: NAT decided by the hook is applied to the returned packet. */
export function evalHook(ruleset: Ruleset, hook: Hook, family: 4 | 6, packet: Packet, opts: EvalOptions = {}): HookResult & { packet: Packet } {
  if (packet.family !== family) throw new Error(`evalHook: a v${packet.family} packet on the v${family} hook`);
  const p = toPkt(packet);
  const ct = packet.ct ?? 'new';
  const r = evalHookPkt(ruleset, hook, p, {
    counters: opts.counters,
    trace: opts.trace ?? true,
    ctState: CT_BIT[ct],
    ctStatus: 0,
    natAllowed: ct === 'new',
    nat: {
      atNatSlot(q, nat) {
        if (nat?.kind === 'dnat') {
          setDaddr(q, nat.addr);
          if (nat.port !== undefined) q.dport = nat.port;
        } else if (nat?.kind === 'masquerade' && opts.masqueradeTo) setSaddr(q, opts.masqueradeTo);
      },
    },
  });
  const after: Packet = { ...packet, saddr: p.saddr, daddr: p.daddr, ...(p.dport >= 0 ? { dport: p.dport } : {}) };
  return { ...r, packet: after };
}

export interface ChainResult {
  /** 'continue': a regular chain ended or returned — the caller's next rule would run. */
  verdict: FinalVerdict | 'continue';
  /** For a base chain that ended: its policy decided. */
  policy?: boolean;
  by?: RuleRef;
  reject?: RejectWith;
  nat?: NatDecision;
  path: string[];
  rulesEvaluated: number;
}

const tableCache = new WeakMap<Table, Ruleset>();

/**
 * One chain (and what it jumps to) on one packet, outside any hook: for comparing two compilations
 * of the same policy (a set-merged chain against a linear one). Conntrack state comes from the packet.
 */
export function evalChain(table: Table, chainName: string, packet: Packet, opts: EvalOptions = {}): ChainResult {
  let rs = tableCache.get(table);
  if (!rs) tableCache.set(table, (rs = { tables: [table] }));
  const chain = prepare(rs).tables[0]!.chains.get(chainName);
  if (!chain) throw new Error(`table ${table.family} ${table.name} has no chain '${chainName}'`);
  const fam = packet.family === 4 ? 'ip' : 'ip6';
  if (table.family !== 'inet' && table.family !== fam) throw new Error(`table ${table.family} ${table.name} never sees an IPv${packet.family} packet`);
  const p = toPkt(packet);
  const env: Env = { counters: opts.counters, counted: undefined, trace: true, natChain: chain.base ? chain.base.type === 'nat' : true, rules: 0 };
  const out = newOutcome();
  runChain(chain, p, env, out);
  const res: ChainResult = { verdict: 'continue', path: out.path ?? [chain.name], rulesEvaluated: env.rules };
  if (out.rule) res.by = ruleRef(out.rule);
  if (out.kind === 'end') {
    if (chain.base) {
      res.verdict = chain.base.policy;
      res.policy = true;
    }
  } else res.verdict = out.kind;
  if (out.reject) res.reject = out.reject;
  const nat = natDecision(out);
  if (nat) res.nat = nat;
  return res;
}
