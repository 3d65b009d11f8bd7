// A Ruleset turned, once, into what the evaluator walks: chains with resolved jump targets, rules
// with compiled matchers, sets interned, and per hook the base chains in the order the kernel runs
// them. Cached per Ruleset object: rulesets are treated as immutable (replace, don't mutate).
import type { BaseChainSpec, Chain, Family, Hook, IrRule, RejectWith, Ruleset, Statement, Table, Verdict } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { parseAddr } from './addr.js';
import type { NatDecision, RuleRef } from './evaluate.js';
import { compileMatch, type Matcher, SetCache } from './match.js';
import { encodeMatch, OP } from './opcodes.js';
import type { Pkt } from './packet.js';

export type PVerdict =
  | { k: 'accept' }
  | { k: 'drop' }
  | { k: 'reject'; with: RejectWith | undefined }
  | { k: 'return' }
  | { k: 'continue' }
  | { k: 'jump'; to: PChain }
  | { k: 'goto'; to: PChain };

export type PStmt =
  | { k: 'counter' }
  | { k: 'log'; prefix: string | undefined }
  | { k: 'limit' }
  | { k: 'dnat'; family: 4 | 6 | undefined; addr: string; port: number | undefined; decision: NatDecision | undefined }
  | { k: 'masquerade'; decision: NatDecision | undefined }
  | { k: 'vmap'; map: string; lookup: (p: Pkt) => PVerdict | undefined }
  | { k: 'verdict'; v: PVerdict };

export interface PRule {
  ir: IrRule;
  index: number;
  chain: PChain;
  /** ruleRef(this), made on first use and shared by every result that names this rule. */
  ref: RuleRef | undefined;
  /** Offset of this rule's encoded matches in chain.code (see opcodes.ts). */
  pc: number;
  stmts: PStmt[];
}

export interface PChain {
  name: string;
  table: PTable;
  base: BaseChainSpec | undefined;
  rules: PRule[];
  /** Every rule's matches, encoded back to back. */
  code: Float64Array;
  /** Closures for matches the encoding cannot hold (CALL operands index this). */
  calls: Matcher[];
}

export interface PTable {
  ir: Table;
  family: Family;
  name: string;
  index: number;
  chains: Map<string, PChain>;
}

export interface PBase {
  chain: PChain;
  spec: BaseChainSpec;
  /** Where it runs in the hook: its priority, or the NAT core's slot for nat chains. */
  order: number;
  nat: boolean;
}

export interface PreparedRuleset {
  ir: Ruleset;
  tables: PTable[];
  /** Base chains per hook and IP family, in run order: lists[hookIndex(hook) * 2 + (family === 6 ? 1 : 0)]. */
  lists: PBase[][];
  /** Does the family register the NAT core (any nat chain of that family, any hook)? */
  nat4: boolean;
  nat6: boolean;
}

/** A hook's position in PreparedRuleset.lists (a switch on interned strings, no property lookup by name). */
export function hookIndex(hook: Hook): number {
  switch (hook) {
    case 'prerouting':
      return 0;
    case 'input':
      return 1;
    case 'forward':
      return 2;
    case 'output':
      return 3;
    case 'postrouting':
      return 4;
    default:
      return assertNever(hook, 'hook');
  }
}

/** A ruleset the kernel would refuse to load (dangling jump, unknown set, bad value). */
export class SimLoadError extends Error {
  override name = 'SimLoadError';
}

// The NAT core hooks at fixed priorities (NF_IP_PRI_NAT_DST = -100 in prerouting/output,
// NF_IP_PRI_NAT_SRC = 100 in input/postrouting); nft nat chains run inside it, ordered among
// themselves by their own priority (nf_nat_register_fn in net/netfilter/nf_nat_core.c).
export function natSlot(hook: Hook): number {
  switch (hook) {
    case 'prerouting':
    case 'output':
      return -100;
    case 'input':
    case 'postrouting':
      return 100;
    case 'forward':
      return 0;
    default:
      return assertNever(hook, 'hook');
  }
}

const HOOKS: Hook[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];
/** The list of a hook without base chains, in every PreparedRuleset (never mutated). */
const NO_BASES: PBase[] = [];
const cache = new WeakMap<Ruleset, PreparedRuleset>();

export function prepare(rs: Ruleset): PreparedRuleset {
  let p = cache.get(rs);
  if (!p) cache.set(rs, (p = build(rs)));
  return p;
}

function build(rs: Ruleset): PreparedRuleset {
  const tables: PTable[] = rs.tables.map((t, index) => {
    const pt: PTable = { ir: t, family: t.family, name: t.name, index, chains: new Map() };
    for (const c of t.chains) {
      if (pt.chains.has(c.name)) throw new SimLoadError(`table ${t.family} ${t.name}: chain '${c.name}' defined twice`);
      pt.chains.set(c.name, { name: c.name, table: pt, base: c.base, rules: [], code: new Float64Array(0), calls: [] });
    }
    return pt;
  });
  for (const pt of tables) {
    const sets = new SetCache(pt.ir);
    for (const c of pt.ir.chains) {
      const pc = pt.chains.get(c.name)!;
      try {
        const code: number[] = [];
        pc.rules = c.rules.map((r, index) => prepareRule(r, index, pc, sets, code));
        pc.code = Float64Array.from(code);
      } catch (e) {
        if (e instanceof SimLoadError) throw e;
        throw new SimLoadError(`table ${pt.family} ${pt.name} chain ${c.name}: ${(e as Error).message}`);
      }
    }
  }
  const hooks = Object.fromEntries(HOOKS.map((h) => [h, { 4: [] as PBase[], 6: [] as PBase[] }])) as Record<Hook, { 4: PBase[]; 6: PBase[] }>;
  const all: (PBase & { t: number; c: number })[] = [];
  for (const pt of tables)
    pt.ir.chains.forEach((c: Chain, ci) => {
      if (!c.base) return;
      const nat = c.base.type === 'nat';
      all.push({ chain: pt.chains.get(c.name)!, spec: c.base, order: nat ? natSlot(c.base.hook) : c.base.priority, nat, t: pt.index, c: ci });
    });
  // Equal priorities: the kernel runs the hook registered LAST first (nf_hook_entries_grow inserts a
  // new hook before existing ones of the same priority; the differential test against the kernel
  // showed it), and one `nft -f` registers chains in the order they appear. So the Ruleset's later
  // table, then later chain, runs first. (qnet's compiler gives its own base chains distinct
  // priorities, so its behaviour never depends on this; users' own chains may.)
  all.sort((a, b) => a.order - b.order || a.spec.priority - b.spec.priority || b.t - a.t || b.c - a.c);
  for (const b of all) {
    const fam = b.chain.table.family;
    const entry = { chain: b.chain, spec: b.spec, order: b.order, nat: b.nat };
    if (fam === 'ip' || fam === 'inet') hooks[b.spec.hook][4].push(entry);
    if (fam === 'ip6' || fam === 'inet') hooks[b.spec.hook][6].push(entry);
  }
  const nat = { 4: false, 6: false };
  for (const h of HOOKS) {
    if (hooks[h][4].some((b) => b.nat)) nat[4] = true;
    if (hooks[h][6].some((b) => b.nat)) nat[6] = true;
  }
  // An empty hook shares one empty list (a walk through many nodes reads hot memory for it).
  const lists: PBase[][] = [];
  for (const h of HOOKS) {
    lists[hookIndex(h) * 2] = hooks[h][4].length ? hooks[h][4] : NO_BASES;
    lists[hookIndex(h) * 2 + 1] = hooks[h][6].length ? hooks[h][6] : NO_BASES;
  }
  return { ir: rs, tables, lists, nat4: nat[4], nat6: nat[6] };
}

function prepareRule(r: IrRule, index: number, chain: PChain, sets: SetCache, code: number[]): PRule {
  let stmts = r.stmts.map((s) => prepareStmt(s, chain.table, sets));
  // A list of stateless statements only (`counter accept`) is shared too: one per kind sequence.
  if (stmts.every((s) => STATELESS.has(s))) {
    const key = stmts.map((s) => (s.k === 'verdict' ? s.v.k : s.k)).join(' ');
    const hit = sharedLists.get(key);
    if (hit) stmts = hit;
    else sharedLists.set(key, stmts);
  }
  const pc = code.length;
  code.push(r.matches.length);
  for (const m of r.matches) {
    const enc = encodeMatch(m);
    if (enc) code.push(...enc);
    else {
      code.push(OP.CALL, 0, chain.calls.length, 0);
      chain.calls.push(compileMatch(m, sets));
    }
  }
  return { ir: r, index, chain, ref: undefined, pc, stmts };
}

// Every statement (and every verdict) gets the same hidden class, all fields present in one order:
// the evaluator's `s.k` / `v.k` reads then stay monomorphic instead of going through a megamorphic
// inline cache for six object shapes.
const mono = <T extends PStmt>(s: T): T =>
  Object.assign({ k: '', prefix: undefined, family: undefined, addr: undefined, port: undefined, decision: undefined, map: undefined, lookup: undefined, v: undefined }, s) as T;
const monoVerdict = <T extends PVerdict>(v: T): T => Object.assign({ k: '', with: undefined, to: undefined }, v) as T;

// Statements that carry nothing of their rule (`counter`, and the verdicts without an operand) are
// one object each for the process: rules reached from many chains (one per qube) then read hot
// memory for them. NAT statements are never shared (they cache their rule's decision).
const SHARED_COUNTER = mono({ k: 'counter' });
const SHARED_VERDICT = {
  accept: mono({ k: 'verdict', v: monoVerdict({ k: 'accept' }) }),
  drop: mono({ k: 'verdict', v: monoVerdict({ k: 'drop' }) }),
  return: mono({ k: 'verdict', v: monoVerdict({ k: 'return' }) }),
  continue: mono({ k: 'verdict', v: monoVerdict({ k: 'continue' }) }),
};
const STATELESS = new Set<PStmt>([SHARED_COUNTER, ...Object.values(SHARED_VERDICT)]);
/** Statement lists made only of shared statements, by their kinds (never mutated). */
const sharedLists = new Map<string, PStmt[]>();

function prepareStmt(s: Statement, t: PTable, sets: SetCache): PStmt {
  switch (s.kind) {
    case 'counter':
      return SHARED_COUNTER;
    case 'log':
      return mono({ k: 'log', prefix: s.prefix });
    case 'limit':
      // No clock here: always within the rate. validate.ts keeps verdicts out of rules with a limit,
      // so the kernel skipping such a rule's rest changes no verdict the simulator gives.
      return mono({ k: 'limit' });
    case 'dnat': {
      // nft refuses a dnat to something that is not an address: refuse at load, not on the first packet.
      if (parseAddr(s.addr, s.addr.includes(':') ? 6 : 4) === undefined) throw new Error(`dnat to '${s.addr}', which is not an IP address`);
      return mono({ k: 'dnat', family: s.family === undefined ? undefined : s.family === 'ip' ? 4 : 6, addr: s.addr, port: s.port, decision: undefined });
    }
    case 'masquerade':
      return mono({ k: 'masquerade', decision: undefined });
    case 'vmap': {
      const m = sets.named(s.map);
      if (m.kind !== 'map') throw new Error(`@${s.map} is a set, used as a verdict map`);
      const lookup = sets.lookup(s.fields, s.map, (raw) => {
        if (raw === undefined) throw new Error(`map @${s.map}: element without a verdict`);
        return prepareVerdict(raw as Verdict, t);
      });
      return mono({ k: 'vmap', map: s.map, lookup });
    }
    case 'verdict': {
      const k = s.verdict.kind;
      if (k === 'accept' || k === 'drop' || k === 'return' || k === 'continue') return SHARED_VERDICT[k];
      return mono({ k: 'verdict', v: prepareVerdict(s.verdict, t) });
    }
    default:
      return assertNever(s, 'statement');
  }
}

function prepareVerdict(v: Verdict, t: PTable): PVerdict {
  switch (v.kind) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      return (SHARED_VERDICT[v.kind] as Extract<PStmt, { k: 'verdict' }>).v;
    case 'reject':
      return monoVerdict({ k: 'reject', with: v.with });
    case 'jump':
    case 'goto': {
      const to = t.chains.get(v.chain);
      // nft refuses a jump to a missing chain, and to a base chain.
      if (!to) throw new Error(`${v.kind} to missing chain '${v.chain}'`);
      if (to.base) throw new Error(`${v.kind} to base chain '${v.chain}'`);
      return monoVerdict({ k: v.kind, to });
    }
    default:
      return assertNever(v, 'verdict');
  }
}
