// nft's JSON schema (libnftables-json(5), schema version 1): `{ nftables: [ {add: {table: …}}, … ] }`,
// loadable with `nft -j -f -`. It carries the same operations as the text emitter (the full
// transaction from diff.ts), so both load the same state. Shapes were checked against
// `nft -j list ruleset` of nft 1.0.6.
import { assertNever } from '../model/result.js';
import { fullTransaction } from './diff.js';
import { sanitizeComment } from './render.js';
import type { Op, Transaction } from './transaction.js';
import type { Field, IrRule, Key, MapElement, Match, Ruleset, SetElement, Statement, Value, Verdict } from './types.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function emitJson(rs: Ruleset): { nftables: Json[] } {
  return transactionJson(fullTransaction(rs));
}

export function transactionJson(tx: Transaction): { nftables: Json[] } {
  return { nftables: [{ metainfo: { json_schema_version: 1 } }, ...tx.ops.map(opJson)] };
}

const withComment = (o: { [k: string]: Json }, c: string | undefined) => (c === undefined ? o : { ...o, comment: sanitizeComment(c) });

function opJson(o: Op): Json {
  const t = { family: o.t.family, table: o.t.table };
  switch (o.op) {
    case 'add-table':
      return { add: { table: withComment({ family: o.t.family, name: o.t.table }, o.comment) } };
    case 'delete-table':
      return { delete: { table: { family: o.t.family, name: o.t.table } } };
    case 'add-chain': {
      const c = o.chain;
      const base: { [k: string]: Json } = c.base ? { type: c.base.type, hook: c.base.hook, prio: c.base.priority, policy: c.base.policy } : {};
      return { add: { chain: withComment({ ...t, name: c.name, ...base }, c.comment) } };
    }
    case 'flush-chain':
      return { flush: { chain: { ...t, name: o.name } } };
    case 'delete-chain':
      return { delete: { chain: { ...t, name: o.name } } };
    case 'add-set': {
      const s = o.set;
      const type: Json = s.keyType.length === 1 ? s.keyType[0]! : [...s.keyType];
      const body: { [k: string]: Json } = { ...t, name: s.name, type };
      if (s.kind === 'map') body['map'] = s.valueType;
      if (s.interval) body['flags'] = ['interval'];
      if (o.elements?.length) body['elem'] = o.elements.map((e) => elementJson(e, s.kind === 'map'));
      return { add: { [s.kind]: withComment(body, s.comment) } };
    }
    case 'flush-set':
      return { flush: { [o.map ? 'map' : 'set']: { ...t, name: o.name } } };
    case 'delete-set':
      return { delete: { [o.map ? 'map' : 'set']: { ...t, name: o.name } } };
    case 'add-element':
    case 'delete-element': {
      const verb = o.op === 'add-element' ? 'add' : 'delete';
      const elem = o.elements.map((e) => (verb === 'add' ? elementJson(e, o.map) : keyJson(e.key)));
      return { [verb]: { element: { ...t, name: o.set, elem } } };
    }
    case 'add-rule':
      return { add: { rule: ruleJson(o.t.family, o.t.table, o.chain, o.rule) } };
    case 'insert-rule':
      return { insert: { rule: ruleJson(o.t.family, o.t.table, o.chain, o.rule) } };
    default:
      return assertNever(o, 'transaction op');
  }
}

function elementJson(e: SetElement | MapElement, map: boolean): Json {
  const key = e.comment === undefined ? keyJson(e.key) : { elem: { val: keyJson(e.key), comment: sanitizeComment(e.comment) } };
  const v = (e as MapElement).verdict;
  return map && v ? [key, verdictJson(v)] : key;
}

export function ruleJson(family: string, table: string, chain: string, r: IrRule): Json {
  const expr: Json[] = [...r.matches.map(matchJson), ...r.stmts.map(stmtJson)];
  if (expr.length === 0) expr.push({ continue: null });
  return withComment({ family, table, chain, expr }, r.comment);
}

function fieldJson(f: Field): Json {
  const [a, b] = f.split(' ') as [string, string | undefined];
  if (b === undefined) return { meta: { key: a } }; // iifname, oifname, iifgroup, oifgroup
  if (a === 'meta') return { meta: { key: b } };
  if (a === 'ct') return { ct: { key: b } };
  return { payload: { protocol: a, field: b } };
}

const fieldsJson = (fs: Field[]): Json => (fs.length === 1 ? fieldJson(fs[0]!) : { concat: fs.map(fieldJson) });

function valueJson(v: Value): Json {
  switch (v.kind) {
    case 'int':
      return v.n;
    case 'sym':
      return v.s;
    case 'addr':
      return v.len === undefined ? v.addr : { prefix: { addr: v.addr, len: v.len } };
    case 'range':
      return v.lo === v.hi ? v.lo : { range: [v.lo, v.hi] };
    case 'str':
      return v.s;
    case 'wildcard':
      return `${v.prefix}*`;
    case 'ct':
      return v.states.length === 1 ? v.states[0]! : [...v.states];
    default:
      return assertNever(v, 'value kind');
  }
}

const keyJson = (k: Key): Json => (Array.isArray(k) ? { concat: k.map(valueJson) } : valueJson(k));

function matchJson(m: Match): Json {
  switch (m.kind) {
    case 'cmp': {
      // ct state is a bit mask: nft expresses "one of these states" with op "in".
      const op = m.value.kind === 'ct' && m.op === '==' ? 'in' : m.op;
      return { match: { op, left: fieldJson(m.field), right: valueJson(m.value) } };
    }
    case 'in-anon':
      return { match: { op: m.op, left: fieldJson(m.field), right: { set: m.values.map(valueJson) } } };
    case 'in-set':
      return { match: { op: m.op, left: fieldsJson(m.fields), right: `@${m.set}` } };
    default:
      return assertNever(m, 'match kind');
  }
}

function verdictJson(v: Verdict): Json {
  switch (v.kind) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      return { [v.kind]: null };
    case 'jump':
    case 'goto':
      return { [v.kind]: { target: v.chain } };
    case 'reject':
      if (!v.with) return { reject: null };
      if (v.with.type === 'tcp reset') return { reject: { type: 'tcp reset' } };
      return { reject: { type: v.with.type, expr: v.with.code } };
    default:
      return assertNever(v, 'verdict kind');
  }
}

function stmtJson(s: Statement): Json {
  switch (s.kind) {
    case 'counter':
      return { counter: null };
    case 'log':
      return s.prefix === undefined && s.group === undefined
        ? { log: null }
        : { log: { ...(s.prefix === undefined ? {} : { prefix: sanitizeComment(s.prefix) }), ...(s.group === undefined ? {} : { group: s.group }), ...(s.queueThreshold === undefined ? {} : { 'queue-threshold': s.queueThreshold }) } };
    case 'limit':
      return { limit: { rate: s.rate, per: s.per, burst: s.burst } };
    case 'dnat': {
      const d: { [k: string]: Json } = { addr: s.addr };
      if (s.port !== undefined) d['port'] = s.port;
      if (s.family) d['family'] = s.family;
      return { dnat: d };
    }
    case 'masquerade':
      return { masquerade: null };
    case 'vmap':
      return { vmap: { key: fieldsJson(s.fields), data: `@${s.map}` } };
    case 'verdict':
      return verdictJson(s.verdict);
    default:
      return assertNever(s, 'statement kind');
  }
}
