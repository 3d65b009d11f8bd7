// Terse IR builders for tests and benchmarks (hand-written rulesets read close to nft text).
import type { BaseChainSpec, Chain, CtState, Field, Key, Match, NamedMap, NamedSet, Origin, RejectWith, SetKeyType, Statement, Table, Value, Verdict, IrRule, Family } from '../../ir/types.js';

export const addr = (a: string, len?: number): Value => (len === undefined ? { kind: 'addr', addr: a } : { kind: 'addr', addr: a, len });
export const int = (n: number): Value => ({ kind: 'int', n });
export const sym = (s: string): Value => ({ kind: 'sym', s });
export const str = (s: string): Value => ({ kind: 'str', s });
export const range = (lo: number, hi: number): Value => ({ kind: 'range', lo, hi });
export const wild = (prefix: string): Value => ({ kind: 'wildcard', prefix });
export const ct = (...states: CtState[]): Value => ({ kind: 'ct', states });

export const eq = (field: Field, value: Value): Match => ({ kind: 'cmp', field, op: '==', value });
export const ne = (field: Field, value: Value): Match => ({ kind: 'cmp', field, op: '!=', value });
export const inAnon = (field: Field, values: Value[], op: '==' | '!=' = '=='): Match => ({ kind: 'in-anon', field, op, values });
export const inSet = (fields: Field[], set: string, op: '==' | '!=' = '=='): Match => ({ kind: 'in-set', fields, op, set });

const v = (verdict: Verdict): Statement => ({ kind: 'verdict', verdict });
export const ACCEPT = v({ kind: 'accept' });
export const DROP = v({ kind: 'drop' });
export const RETURN = v({ kind: 'return' });
export const CONTINUE = v({ kind: 'continue' });
export const reject = (w?: RejectWith): Statement => v(w ? { kind: 'reject', with: w } : { kind: 'reject' });
export const ADMIN_PROHIBITED: RejectWith = { type: 'icmp', code: 'admin-prohibited' };
export const jump = (chain: string): Statement => v({ kind: 'jump', chain });
export const goto = (chain: string): Statement => v({ kind: 'goto', chain });
export const COUNTER: Statement = { kind: 'counter' };
export const MASQUERADE: Statement = { kind: 'masquerade' };
export const dnat = (a: string, port?: number): Statement => (port === undefined ? { kind: 'dnat', addr: a } : { kind: 'dnat', addr: a, port });
export const vmap = (fields: Field[], map: string): Statement => ({ kind: 'vmap', fields, map });
export const log = (prefix: string): Statement => ({ kind: 'log', prefix });

export const rule = (origin: string | Origin, matches: Match[], ...stmts: Statement[]): IrRule => ({
  matches,
  stmts,
  // A string is free text for hand-built rulesets: describeOrigin shows an unknown part as it is.
  origin: typeof origin === 'string' ? { kind: 'base', part: origin } : origin,
});

export const base = (type: BaseChainSpec['type'], hook: BaseChainSpec['hook'], priority: number, policy: BaseChainSpec['policy'] = 'accept'): BaseChainSpec => ({ type, hook, priority, policy });
export const chain = (name: string, rules: IrRule[], spec?: BaseChainSpec): Chain => (spec ? { name, base: spec, rules } : { name, rules });
export const table = (family: Family, name: string, chains: Chain[], sets: (NamedSet | NamedMap)[] = []): Table => ({ family, name, chains, sets });
export const set = (name: string, keyType: SetKeyType[], interval: boolean, keys: Key[]): NamedSet => ({ kind: 'set', name, keyType, interval, elements: keys.map((key) => ({ key })) });
export const vmapOf = (name: string, keyType: SetKeyType[], interval: boolean, entries: [Key, Verdict][]): NamedMap => ({
  kind: 'map',
  name,
  keyType,
  interval,
  valueType: 'verdict',
  elements: entries.map(([key, verdict]) => ({ key, verdict })),
});
