// Matches compiled once into closures over the flat Pkt. A field that is absent for this packet fails
// the match for both `==` and `!=`: nft evaluates the implicit dependency (or the meta expression
// breaks) before the comparison, so `ip saddr != 10.0.0.1` does not match an IPv6 packet.
import type { Field, Match, NamedMap, NamedSet, Table, Value } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import type { Pkt } from './packet.js';
import { AtomIndex, ConcatIndex, type U32TupleTable } from './setindex.js';
import { atom, atomMatches, fieldKind, getter, type FieldKind, type Getter, type Scalar } from './values.js';

export type Matcher = (p: Pkt) => boolean;

/** Interned set/map lookups shared by every rule of a table that references them. */
export class SetCache {
  private readonly cache = new Map<string, Lookup<unknown>>();
  constructor(private readonly table: Table) {}

  named(name: string): NamedSet | NamedMap {
    const s = this.table.sets.find((x) => x.name === name);
    if (!s) throw new Error(`table ${this.table.family} ${this.table.name}: no set or map '@${name}'`);
    return s;
  }

  /** A lookup of `fields` in set/map `name`, values converted once by `value`. */
  lookup<V>(fields: readonly Field[], name: string, value: (raw: unknown) => V): (p: Pkt) => V | undefined {
    return this.index(fields, name, value).get;
  }

  /**
   * `fields @name` as a matcher (a set's membership): for a table of exact integer tuples, one
   * closure that reads the fields and probes the table, without the lookup's layers in between.
   */
  member(fields: readonly Field[], name: string): Matcher {
    const l = this.index(fields, name, () => true);
    const t = l.table;
    if (!t) {
      const get = l.get;
      return (p) => get(p) !== undefined;
    }
    const getters = fields.map(getter);
    const xs: Scalar[] = new Array<Scalar>(getters.length);
    return (p) => {
      for (let i = 0; i < getters.length; i++) {
        const x = getters[i]!(p);
        if (x === undefined) return false;
        xs[i] = x;
      }
      return t.has(xs);
    };
  }

  private index<V>(fields: readonly Field[], name: string, value: (raw: unknown) => V): Lookup<V> {
    const key = `${name}\u0000${fields.join('.')}`;
    const hit = this.cache.get(key);
    if (hit) return hit as Lookup<V>;
    const s = this.named(name);
    if (s.keyType.length !== fields.length)
      throw new Error(`table ${this.table.family} ${this.table.name}: @${name} has ${s.keyType.length}-part keys, matched with ${fields.length} field(s)`);
    const kinds = fields.map(fieldKind);
    const raw = s.kind === 'set' ? s.elements.map((e) => ({ key: e.key, v: true as unknown })) : s.elements.map((e) => ({ key: e.key, v: e.verdict as unknown }));
    const l = buildLookup(kinds, fields.map(getter), raw.map((e) => ({ key: e.key, value: value(e.v) })), s.kind === 'set');
    this.cache.set(key, l);
    return l;
  }
}

interface Lookup<V> {
  get: (p: Pkt) => V | undefined;
  /** The index's flat table, when it is one (every element an exact tuple of unsigned 32-bit integers). */
  table: U32TupleTable<V> | undefined;
}

function keyParts(key: Value | Value[]): Value[] {
  return Array.isArray(key) ? key : [key];
}

function buildLookup<V>(kinds: FieldKind[], getters: Getter[], elems: { key: Value | Value[]; value: V }[], isSet: boolean): Lookup<V> {
  const entries = elems.map((e) => {
    const parts = keyParts(e.key);
    if (parts.length !== kinds.length) throw new Error(`element ${JSON.stringify(e.key)} has ${parts.length} part(s), the key has ${kinds.length}`);
    return { atoms: parts.map((v, i) => atom(kinds[i]!, v)), value: e.value };
  });
  if (kinds.length === 1) {
    const idx = new AtomIndex(entries.map((e) => ({ atom: e.atoms[0]!, value: e.value })), isSet);
    const g = getters[0]!;
    return {
      get: (p) => {
        const x = g(p);
        return x === undefined ? undefined : idx.get(x);
      },
      table: undefined,
    };
  }
  const idx = new ConcatIndex(entries);
  // One scratch array per lookup site: evaluation is synchronous and a lookup never re-enters itself.
  const xs: Scalar[] = new Array<Scalar>(kinds.length);
  return {
    get: (p) => {
      for (let i = 0; i < getters.length; i++) {
        const x = getters[i]!(p);
        if (x === undefined) return undefined;
        xs[i] = x;
      }
      return idx.get(xs);
    },
    table: idx.table,
  };
}

export function compileMatch(m: Match, sets: SetCache): Matcher {
  const eq = m.op === '==';
  switch (m.kind) {
    case 'cmp': {
      const g = getter(m.field);
      const at = atom(fieldKind(m.field), m.value);
      if (at.a === 'point') {
        const v = at.v;
        return eq ? (p) => g(p) === v : (p) => { const x = g(p); return x !== undefined && x !== v; };
      }
      return (p) => {
        const x = g(p);
        return x !== undefined && atomMatches(at, x) === eq;
      };
    }
    case 'in-anon': {
      const kind = fieldKind(m.field);
      const g = getter(m.field);
      const idx = new AtomIndex(m.values.map((v) => ({ atom: atom(kind, v), value: true })), true);
      return (p) => {
        const x = g(p);
        return x !== undefined && (idx.get(x) !== undefined) === eq;
      };
    }
    case 'in-set': {
      const s = sets.named(m.set);
      if (s.kind !== 'set') throw new Error(`@${m.set} is a map, matched as a set`);
      // An absent field makes the lookup fail before the membership test, for == and != alike.
      if (eq) return sets.member(m.fields, m.set);
      const lookup = sets.lookup(m.fields, m.set, () => true);
      const getters = m.fields.map(getter);
      return (p) => {
        for (const g of getters) if (g(p) === undefined) return false;
        return lookup(p) === undefined;
      };
    }
    default:
      return assertNever(m, 'match');
  }
}
