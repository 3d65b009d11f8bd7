// Sets and verdict maps, interned once into lookup structures: exact keys in a hash map (O(1)),
// prefixes and ranges as sorted disjoint intervals (binary search, O(log n)), interface wildcards and
// bitmasks scanned (they are few). Concatenations (`ip daddr . tcp dport`) hash the joined key when
// every element is exact, else bucket on a component that is exact in every element.
import type { AddrNum } from './addr.js';
import { type Atom, atomMatches, type Scalar } from './values.js';

export interface Entry<V> {
  atoms: Atom[];
  value: V;
}

/** One-component index. For sets V is `true`; for verdict maps, the verdict. */
export class AtomIndex<V> {
  private readonly points = new Map<Scalar, V>();
  private lo: AddrNum[] = [];
  private hi: AddrNum[] = [];
  private vals: V[] = [];
  /** Overlapping map intervals (nft refuses them in maps; kept correct, not fast). */
  private linear: Entry<V>[] = [];
  private readonly prefixes: { s: string; v: V }[] = [];
  private readonly masks: { m: number; v: V }[] = [];
  readonly size: number;

  constructor(entries: readonly { atom: Atom; value: V }[], isSet: boolean) {
    this.size = entries.length;
    const ivs: { lo: AddrNum; hi: AddrNum; v: V }[] = [];
    for (const { atom: a, value } of entries) {
      switch (a.a) {
        case 'point':
          // First element wins, like a first-match scan would (duplicates are a load error in maps).
          if (!this.points.has(a.v)) this.points.set(a.v, value);
          break;
        case 'interval':
          ivs.push({ lo: a.lo, hi: a.hi, v: value });
          break;
        case 'prefix':
          this.prefixes.push({ s: a.s, v: value });
          break;
        case 'mask':
          this.masks.push({ m: a.m, v: value });
          break;
      }
    }
    ivs.sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : 0));
    for (const iv of ivs) {
      const n = this.hi.length;
      if (n > 0 && iv.lo <= this.hi[n - 1]!) {
        if (isSet) {
          // nft merges overlapping elements of interval sets (auto-merge); membership is the union.
          if (iv.hi > this.hi[n - 1]!) this.hi[n - 1] = iv.hi;
          continue;
        }
        this.linear = ivs.map((x) => ({ atoms: [{ a: 'interval', lo: x.lo, hi: x.hi }], value: x.v }));
        this.lo = [];
        this.hi = [];
        this.vals = [];
        break;
      }
      this.lo.push(iv.lo);
      this.hi.push(iv.hi);
      this.vals.push(iv.v);
    }
  }

  get(x: Scalar): V | undefined {
    const p = this.points.get(x);
    if (p !== undefined) return p;
    const lo = this.lo;
    if (lo.length > 0 && typeof x !== 'string') {
      let a = 0;
      let b = lo.length - 1;
      // Last interval whose lo <= x.
      while (a < b) {
        const m = (a + b + 1) >> 1;
        if (lo[m]! <= x) a = m;
        else b = m - 1;
      }
      if (lo[a]! <= x && x <= this.hi[a]!) return this.vals[a];
    }
    for (const e of this.linear) if (atomMatches(e.atoms[0]!, x)) return e.value;
    if (typeof x === 'string') for (const e of this.prefixes) if (x.startsWith(e.s)) return e.v;
    if (typeof x === 'number') for (const e of this.masks) if ((x & e.m) !== 0) return e.v;
    return undefined;
  }
}

const keyOf = (xs: readonly Scalar[]) => (xs.length === 1 ? String(xs[0]) : xs.join('\u0000'));

/** Concatenated keys. */
export class ConcatIndex<V> {
  private exact: Map<string, V> | undefined;
  private bucket: { comp: number; map: Map<Scalar, Entry<V>[]>; rest: Entry<V>[] } | undefined;
  private linear: Entry<V>[] = [];
  readonly size: number;

  constructor(entries: readonly Entry<V>[]) {
    this.size = entries.length;
    const width = entries[0]?.atoms.length ?? 0;
    if (entries.every((e) => e.atoms.every((a) => a.a === 'point'))) {
      this.exact = new Map();
      for (const e of entries) {
        const k = keyOf(e.atoms.map((a) => (a as { v: Scalar }).v));
        if (!this.exact.has(k)) this.exact.set(k, e.value);
      }
      return;
    }
    for (let c = 0; c < width; c++) {
      if (!entries.every((e) => e.atoms[c]?.a === 'point')) continue;
      const map = new Map<Scalar, Entry<V>[]>();
      for (const e of entries) {
        const v = (e.atoms[c] as { v: Scalar }).v;
        let list = map.get(v);
        if (!list) map.set(v, (list = []));
        list.push(e);
      }
      this.bucket = { comp: c, map, rest: [] };
      return;
    }
    this.linear = [...entries];
  }

  get(xs: readonly Scalar[]): V | undefined {
    if (this.exact) return this.exact.get(keyOf(xs));
    const list = this.bucket ? this.bucket.map.get(xs[this.bucket.comp]!) : this.linear;
    if (!list) return undefined;
    outer: for (const e of list) {
      for (let i = 0; i < e.atoms.length; i++) if (!atomMatches(e.atoms[i]!, xs[i]!)) continue outer;
      return e.value;
    }
    return undefined;
  }
}
