// Small constructors for IR rules, so the base layout reads like the nft files it mirrors.
import type { CtState, Field, IrRule, Match, Origin, RejectWith, Statement, Value } from '../../ir/types.js';
import { formatOrigin } from '../../model/origin.js';

export const sym = (s: string): Value => ({ kind: 'sym', s });
export const int = (n: number): Value => ({ kind: 'int', n });
export const str = (s: string): Value => ({ kind: 'str', s });
export const addr = (a: string): Value => ({ kind: 'addr', addr: a });

export const is = (field: Field, value: Value): Match => ({ kind: 'cmp', field, op: '==', value });
export const isNot = (field: Field, value: Value): Match => ({ kind: 'cmp', field, op: '!=', value });
export const ct = (...states: CtState[]): Match => is('ct state', { kind: 'ct', states });
export const inSet = (fields: Field[], set: string): Match => ({ kind: 'in-set', fields, op: '==', set });

export const accept: Statement = { kind: 'verdict', verdict: { kind: 'accept' } };
export const drop: Statement = { kind: 'verdict', verdict: { kind: 'drop' } };
export const counter: Statement = { kind: 'counter' };
export const jump = (chain: string): Statement => ({ kind: 'verdict', verdict: { kind: 'jump', chain } });
export const goto = (chain: string): Statement => ({ kind: 'verdict', verdict: { kind: 'goto', chain } });
export const reject = (w: RejectWith): Statement => ({ kind: 'verdict', verdict: { kind: 'reject', with: w } });

/**
 * A rule whose comment is its origin, so `nft list` and counters map back to where it came from. A
 * string is a part of the fixed layout (`drop-invalid`: comment `base=drop-invalid`).
 */
export function rule(origin: Origin | string, matches: Match[], ...stmts: Statement[]): IrRule {
  const o: Origin = typeof origin === 'string' ? { kind: 'base', part: origin } : origin;
  return { matches, stmts, origin: o, comment: formatOrigin(o) };
}
