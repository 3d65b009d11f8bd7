// Checks a Ruleset before anything reaches a kernel, in the spirit of knftables' validate() and its
// Fake's checkRuleRefs (EXAMPLES.md Examples 1 and 6): every jump/goto and @set/@map resolves, names
// are ones nft's scanner accepts, a verdict is the last statement, element keys fit their set.
// Each problem says table, chain and rule index. The compiler is meant to produce none, so a problem
// is a bug in qnet, not something a user did: it has a check name for tests, not a QNET code, and
// assertValidRuleset turns problems into a BugError.
import { assertNever, BugError } from '../model/result.js';
import { MAX_COMMENT_BYTES } from './render.js';
import type { Chain, Field, IrRule, Key, MapElement, NamedMap, NamedSet, Ruleset, SetKeyType, Table, Value } from './types.js';

/** What a check found; `check` names the rule broken, so tests need not match the prose. */
export type IrCheck =
  | 'bad-name' | 'verdict-not-last' | 'comment-too-long' | 'key-arity' | 'interval-without-flag'
  | 'declared-twice' | 'user-chain-not-empty' | 'nat-misplaced' | 'map-element-without-verdict'
  | 'duplicate-key' | 'missing-set' | 'missing-map' | 'set-map-mixup' | 'key-type' | 'missing-chain'
  | 'jump-to-base' | 'jump-loop' | 'limit-with-verdict';

export interface IrProblem {
  check: IrCheck;
  message: string;
  /** A comment nft will cut is worth knowing, but the ruleset still loads. */
  severity: 'error' | 'warning';
}

const problem = (check: IrCheck, message: string, severity: 'error' | 'warning' = 'error'): IrProblem => ({ check, message, severity });

/**
 * nft's scanner (scanner.l `string`): a letter, `_` or `.` first, then letters, digits, `/-_.`.
 * The kernel keeps names up to NFT_NAME_MAXLEN = 256 bytes including the NUL, so 255.
 */
const NAME_RE = /^[A-Za-z_.][A-Za-z0-9/_.-]*$/;
export const MAX_NAME_BYTES = 255;

export function checkName(what: string, name: string): IrProblem | undefined {
  if (!NAME_RE.test(name)) return problem('bad-name', `bad ${what} name '${name}': nft accepts a letter, _ or . first, then letters, digits, / - _ .`);
  if (name.length > MAX_NAME_BYTES) return problem('bad-name', `${what} name '${name.slice(0, 40)}…' is longer than ${MAX_NAME_BYTES} bytes`);
  return undefined;
}

/** Problems inside one rule that need no context: verdict placement, comment length. */
export function checkRule(r: IrRule, where: string): IrProblem[] {
  const out: IrProblem[] = [];
  r.stmts.forEach((s, i) => {
    // A verdict ends evaluation of the rule, and so does a verdict-map lookup that hits.
    if ((s.kind === 'verdict' || s.kind === 'vmap') && i !== r.stmts.length - 1)
      out.push(problem('verdict-not-last', `${where}: a verdict (${s.kind === 'vmap' ? 'vmap' : s.verdict.kind}) must be the last statement`));
  });
  // Over its rate a limit skips the rest of its rule: a verdict after it would then not be taken.
  const lim = r.stmts.findIndex((s) => s.kind === 'limit');
  if (lim >= 0 && r.stmts.slice(lim).some((s) => s.kind === 'verdict' || s.kind === 'vmap' || s.kind === 'dnat' || s.kind === 'masquerade'))
    out.push(problem('limit-with-verdict', `${where}: a limit would skip the verdict after it whenever the rate is exceeded`));
  if (r.comment !== undefined && Buffer.byteLength(r.comment) > MAX_COMMENT_BYTES)
    out.push(problem('comment-too-long', `${where}: comment longer than ${MAX_COMMENT_BYTES} bytes (it would be cut)`, 'warning'));
  return out;
}

/** Which set key type a field produces, to check lookups against set declarations. */
function fieldType(f: Field): SetKeyType | undefined {
  switch (f) {
    case 'ip saddr':
    case 'ip daddr':
      return 'ipv4_addr';
    case 'ip6 saddr':
    case 'ip6 daddr':
      return 'ipv6_addr';
    case 'ip protocol':
    case 'ip6 nexthdr':
    case 'meta l4proto':
      return 'inet_proto';
    case 'tcp dport':
    case 'udp dport':
    case 'th dport':
    case 'tcp sport':
    case 'udp sport':
      return 'inet_service';
    case 'iifname':
    case 'oifname':
      return 'ifname';
    default:
      return undefined; // no SetKeyType for it (icmp type, groups, ct): never valid in a named lookup
  }
}

const isIntervalValue = (v: Value): boolean =>
  (v.kind === 'addr' && v.len !== undefined && v.len !== (v.addr.includes(':') ? 128 : 32)) ||
  (v.kind === 'range' && v.lo !== v.hi);

function checkKey(key: Key, s: NamedSet | NamedMap, where: string, out: IrProblem[]): void {
  const parts = Array.isArray(key) ? key : [key];
  if (parts.length !== s.keyType.length)
    out.push(problem('key-arity', `${where}: element has ${parts.length} part(s), the ${s.kind} '${s.name}' has ${s.keyType.length}`));
  if (!s.interval && parts.some(isIntervalValue))
    out.push(problem('interval-without-flag', `${where}: prefix or range element in ${s.kind} '${s.name}', which has no interval flag`));
}

/** Throws a BugError naming every error-level problem: the compiler (or a test) built a bad ruleset. */
export function assertValidRuleset(rs: Ruleset, what = 'ruleset'): void {
  const errors = validateRuleset(rs).filter((p) => p.severity === 'error');
  if (errors.length) throw new BugError(`invalid ${what}: ${errors.map((p) => `${p.message} [${p.check}]`).join('; ')}`);
}

/** Every problem in a ruleset. An empty list means nft should accept it (modulo overlapping intervals). */
export function validateRuleset(rs: Ruleset): IrProblem[] {
  const out: IrProblem[] = [];
  const tables = new Set<string>();
  for (const t of rs.tables) {
    const tn = `${t.family} ${t.name}`;
    const bad = checkName('table', t.name);
    if (bad) out.push(bad);
    if (tables.has(tn)) out.push(problem('declared-twice', `table ${tn} is declared twice`));
    tables.add(tn);
    validateTable(t, out);
  }
  return out;
}

function validateTable(t: Table, out: IrProblem[]): void {
  const tn = `table ${t.family} ${t.name}`;
  const chains = new Map<string, Chain>();
  const sets = new Map<string, NamedSet | NamedMap>();
  for (const c of t.chains) {
    const bad = checkName('chain', c.name);
    if (bad) out.push({ ...bad, message: `${tn}: ${bad.message}` });
    if (chains.has(c.name)) out.push(problem('declared-twice', `${tn}: chain '${c.name}' is declared twice`));
    chains.set(c.name, c);
    if (c.userOwned && (c.rules.length > 0 || c.base))
      out.push(problem('user-chain-not-empty', `${tn}: user-owned chain '${c.name}' must be declared empty and regular; its rules belong to the user`));
    if (c.base && t.family !== 'inet' && c.base.type === 'nat' && !['prerouting', 'postrouting', 'output', 'input'].includes(c.base.hook))
      out.push(problem('nat-misplaced', `${tn}: nat chain '${c.name}' on hook ${c.base.hook}`));
  }
  for (const s of t.sets) {
    const bad = checkName(s.kind, s.name);
    if (bad) out.push({ ...bad, message: `${tn}: ${bad.message}` });
    if (sets.has(s.name)) out.push(problem('declared-twice', `${tn}: set/map '${s.name}' is declared twice`));
    sets.set(s.name, s);
    const seen = new Set<string>();
    s.elements.forEach((e, i) => {
      const where = `${tn} ${s.kind} ${s.name} element ${i}`;
      checkKey(e.key, s, where, out);
      if (s.kind === 'map') {
        const v = (e as MapElement).verdict;
        if (!v) out.push(problem('map-element-without-verdict', `${where}: map element without a verdict`));
        else if (v.kind === 'jump' || v.kind === 'goto') checkTarget(v.chain, chains, t, where, out);
      }
      const k = JSON.stringify(e.key);
      if (seen.has(k)) out.push(problem('duplicate-key', `${where}: duplicate key`));
      seen.add(k);
    });
  }
  for (const c of t.chains) {
    c.rules.forEach((r, i) => {
      const where = `${tn} chain ${c.name} rule ${i}`;
      out.push(...checkRule(r, where));
      for (const m of r.matches) {
        switch (m.kind) {
          case 'cmp':
          case 'in-anon':
            break;
          case 'in-set': {
            const s = sets.get(m.set);
            if (!s) out.push(problem('missing-set', `${where}: @${m.set} does not exist`));
            else if (s.kind !== 'set') out.push(problem('set-map-mixup', `${where}: @${m.set} is a map, used as a set`));
            else checkFields(m.fields, s, where, out);
            break;
          }
          default:
            assertNever(m, 'match kind');
        }
      }
      for (const s of r.stmts) {
        switch (s.kind) {
          case 'counter':
          case 'log':
          case 'limit':
            break;
          case 'dnat':
          case 'masquerade':
            if (c.base?.type !== 'nat' && !isNatReachable(c, t))
              out.push(problem('nat-misplaced', `${where}: ${s.kind} outside a nat chain`));
            break;
          case 'vmap': {
            const mp = sets.get(s.map);
            if (!mp) out.push(problem('missing-map', `${where}: verdict map @${s.map} does not exist`));
            else if (mp.kind !== 'map') out.push(problem('set-map-mixup', `${where}: @${s.map} is a set, used as a verdict map`));
            else checkFields(s.fields, mp, where, out);
            break;
          }
          case 'verdict':
            if (s.verdict.kind === 'jump' || s.verdict.kind === 'goto') checkTarget(s.verdict.chain, chains, t, where, out);
            break;
          default:
            assertNever(s, 'statement kind');
        }
      }
    });
  }
  checkLoops(t, out);
}

/** Regular chains reached from a nat base chain may hold NAT statements too. */
function isNatReachable(c: Chain, t: Table): boolean {
  return !c.base && t.chains.some((b) => b.base?.type === 'nat');
}

function checkFields(fields: Field[], s: NamedSet | NamedMap, where: string, out: IrProblem[]): void {
  const types = fields.map(fieldType);
  if (types.length !== s.keyType.length || types.some((ty, i) => ty !== s.keyType[i]))
    out.push(
      problem('key-type', `${where}: lookup key ${fields.join(' . ')} does not match ${s.kind} '${s.name}' of type ${s.keyType.join(' . ')}`),
    );
}

function checkTarget(target: string, chains: Map<string, Chain>, t: Table, where: string, out: IrProblem[]): void {
  const c = chains.get(target);
  if (!c) out.push(problem('missing-chain', `${where}: jump/goto to chain '${target}', which does not exist in table ${t.family} ${t.name}`));
  else if (c.base) out.push(problem('jump-to-base', `${where}: jump/goto to base chain '${target}' (the kernel refuses it)`));
}

/** The kernel refuses a jump graph with a cycle (ELOOP). */
function checkLoops(t: Table, out: IrProblem[]): void {
  const edges = new Map<string, string[]>();
  const add = (from: string, to: string) => {
    const l = edges.get(from) ?? [];
    l.push(to);
    edges.set(from, l);
  };
  for (const c of t.chains)
    for (const r of c.rules)
      for (const s of r.stmts) {
        if (s.kind === 'verdict' && (s.verdict.kind === 'jump' || s.verdict.kind === 'goto')) add(c.name, s.verdict.chain);
        if (s.kind === 'vmap') {
          const mp = t.sets.find((x) => x.name === s.map && x.kind === 'map') as NamedMap | undefined;
          for (const e of mp?.elements ?? [])
            if (e.verdict && (e.verdict.kind === 'jump' || e.verdict.kind === 'goto')) add(c.name, e.verdict.chain);
        }
      }
  const state = new Map<string, 1 | 2>();
  const visit = (n: string, path: string[]): void => {
    const st = state.get(n);
    if (st === 2) return;
    if (st === 1) {
      out.push(problem('jump-loop', `table ${t.family} ${t.name}: jump loop ${[...path, n].join(' → ')}`));
      return;
    }
    state.set(n, 1);
    for (const m of edges.get(n) ?? []) visit(m, [...path, n]);
    state.set(n, 2);
  };
  for (const c of t.chains) visit(c.name, []);
}
