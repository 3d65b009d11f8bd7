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

// Hash keys: a number that is an unsigned 32-bit integer (an IPv4 address, a port, a type) is
// stored as its signed 32-bit twin (`x | 0`, one-to-one on 0..2^32-1): V8 hashes that as a small
// integer, where an address above 2^31 would be a boxed double. An index whose numeric keys are not
// all such integers keeps them as they are (`norm` false).
const isU32 = (x: Scalar) => typeof x === 'number' && x >>> 0 === x;

/** The key `x` is stored under in a normalised index; undefined where no stored key can equal it. */
function normKey(x: Scalar): Scalar | undefined {
  if (typeof x !== 'number') return x;
  return x >>> 0 === x ? x | 0 : undefined;
}

/** One-component index. For sets V is `true`; for verdict maps, the verdict. */
export class AtomIndex<V> {
  private readonly points = new Map<Scalar, V>();
  private readonly norm: boolean;
  private lo: AddrNum[] = [];
  private hi: AddrNum[] = [];
  private vals: V[] = [];
  /** Overlapping map intervals (nft refuses them in maps; kept correct, not fast). */
  private linear: Entry<V>[] = [];
  private readonly prefixes: { s: string; v: V }[] = [];
  private readonly masks: { m: number; v: V }[] = [];

  constructor(entries: readonly { atom: Atom; value: V }[], isSet: boolean) {
    this.norm = entries.every(({ atom: a }) => a.a !== 'point' || typeof a.v !== 'number' || isU32(a.v));
    const ivs: { lo: AddrNum; hi: AddrNum; v: V }[] = [];
    for (const { atom: a, value } of entries) {
      switch (a.a) {
        case 'point': {
          // First element wins, like a first-match scan would (duplicates are a load error in maps).
          const k = this.norm ? normKey(a.v)! : a.v;
          if (!this.points.has(k)) this.points.set(k, value);
          break;
        }
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
    const k = this.norm ? normKey(x) : x;
    const p = k === undefined ? undefined : this.points.get(k);
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

/** Concatenated keys. */
export class ConcatIndex<V> {
  /** Every element exact and every component an unsigned 32-bit integer: one flat hash table. */
  readonly table: U32TupleTable<V> | undefined;
  /** Every element exact otherwise: one nested map per component (no key strings to build per lookup). */
  private exact: Map<Scalar, unknown> | undefined;
  private norm = false;
  private bucket: { comp: number; map: Map<Scalar, Entry<V>[]> } | undefined;
  private linear: Entry<V>[] = [];

  constructor(entries: readonly Entry<V>[]) {
    const width = entries[0]?.atoms.length ?? 0;
    if (width > 0 && entries.every((e) => e.atoms.every((a) => a.a === 'point' && isU32(a.v)))) {
      this.table = new U32TupleTable(entries.map((e) => ({ key: e.atoms.map((a) => (a as { v: number }).v), value: e.value })), width);
      return;
    }
    if (width > 0 && entries.every((e) => e.atoms.every((a) => a.a === 'point'))) {
      const norm = (this.norm = entries.every((e) => e.atoms.every((a) => typeof (a as { v: Scalar }).v !== 'number' || isU32((a as { v: Scalar }).v))));
      const root = (this.exact = new Map());
      for (const e of entries) {
        let m: Map<Scalar, unknown> = root;
        for (let i = 0; i < width; i++) {
          const v = (e.atoms[i] as { v: Scalar }).v;
          const k = norm ? normKey(v)! : v;
          if (i === width - 1) {
            // First element wins (a later duplicate is shadowed, as a first-match scan would have it).
            if (!m.has(k)) m.set(k, e.value);
            break;
          }
          let next = m.get(k) as Map<Scalar, unknown> | undefined;
          if (!next) m.set(k, (next = new Map()));
          m = next;
        }
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
      this.bucket = { comp: c, map };
      return;
    }
    this.linear = [...entries];
  }

  get(xs: readonly Scalar[]): V | undefined {
    if (this.table) return this.table.get(xs);
    if (this.exact) {
      let m = this.exact;
      const last = xs.length - 1;
      for (let i = 0; ; i++) {
        const k = this.norm ? normKey(xs[i]!) : xs[i]!;
        if (k === undefined) return undefined;
        const next = m.get(k);
        if (i === last || next === undefined) return next as V | undefined;
        m = next as Map<Scalar, unknown>;
      }
    }
    const list = this.bucket ? this.bucket.map.get(xs[this.bucket.comp]!) : this.linear;
    if (!list) return undefined;
    outer: for (const e of list) {
      for (let i = 0; i < e.atoms.length; i++) if (!atomMatches(e.atoms[i]!, xs[i]!)) continue outer;
      return e.value;
    }
    return undefined;
  }
}

/**
 * Exact tuples of unsigned 32-bit integers (`ip daddr . ip protocol . th dport`) in one open-addressing
 * table over typed arrays: a lookup hashes the packet's values and compares a few words, with no key
 * to build and no map per component. The first of equal tuples wins, as a first-match scan would.
 */
export class U32TupleTable<V> {
  /**
   * Open addressing, one row of `stride` words per slot: entry number + 1 (0 = empty), then the
   * key's words. A probe finds the slot and its key on the same cache line (no second array to read).
   */
  private readonly cells: Int32Array;
  private readonly stride: number;
  private readonly values: V[] = [];
  private readonly mask: number;

  constructor(
    entries: readonly { key: number[]; value: V }[],
    private readonly width: number,
  ) {
    let cap = 8;
    while (cap < entries.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.stride = width + 1;
    this.cells = new Int32Array(cap * this.stride);
    const scratch = new Array<number>(width);
    for (const e of entries) {
      for (let i = 0; i < width; i++) scratch[i] = e.key[i]!;
      if (this.find(scratch) >= 0) continue;
      const n = this.values.length;
      this.values.push(e.value);
      let h = this.hash(scratch) & this.mask;
      while (this.cells[h * this.stride] !== 0) h = (h + 1) & this.mask;
      const at = h * this.stride;
      this.cells[at] = n + 1;
      for (let i = 0; i < width; i++) this.cells[at + 1 + i] = e.key[i]! | 0;
    }
  }

  private hash(xs: readonly Scalar[]): number {
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < this.width; i++) {
      h = Math.imul(h ^ ((xs[i] as number) | 0), 0x01000193);
      h ^= h >>> 15;
    }
    return h;
  }

  /** The entry number holding `xs`, or -1. Every xs[i] must be an unsigned 32-bit integer. */
  private find(xs: readonly Scalar[]): number {
    const w = this.width;
    const stride = this.stride;
    const cells = this.cells;
    let h = this.hash(xs) & this.mask;
    for (;;) {
      const at = h * stride;
      const s = cells[at]!;
      if (s === 0) return -1;
      let i = 0;
      while (i < w && cells[at + 1 + i] === ((xs[i] as number) | 0)) i++;
      if (i === w) return s - 1;
      h = (h + 1) & this.mask;
    }
  }

  get(xs: readonly Scalar[]): V | undefined {
    // A value that is not an unsigned 32-bit integer cannot equal any key (they all are).
    for (let i = 0; i < this.width; i++) if (!isU32(xs[i]!)) return undefined;
    const n = this.find(xs);
    return n < 0 ? undefined : this.values[n];
  }

  /** Is `xs` a key? (get() !== undefined for a set, whose values are all present.) */
  has(xs: readonly Scalar[]): boolean {
    for (let i = 0; i < this.width; i++) if (!isU32(xs[i]!)) return false;
    return this.find(xs) >= 0;
  }
}
