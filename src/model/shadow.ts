// Shadowed rules: a rule that can never match because one earlier rule matches every packet it
// would (first match wins). "Covers" is judged on the rule's whole match space as the compiler
// lowers it (compile/passes/lower.ts): family and destination, specialtarget=dns (port 53, tcp and
// udp), protocol (ports without proto = tcp and udp; icmptype = icmp), ports and icmp type. A name
// is covered only by a rule without a destination or by the same name (what it resolves to
// changes); a rule that expires covers only rules that expire no later. Only one covering rule is
// looked for (two rules that cover a third between them are not reported).
// Fast for 100k rules: earlier rules are indexed by the shape of their match space (destination
// key × dns × protocol class), so each rule asks a few buckets, not every rule before it.
import { parseV4, parseV6 } from './ip.js';
import type { Rule } from './rule.js';

type ProtoClass = 'all' | 'tu' | 'tcp' | 'udp' | 'icmp';

/** A rule's match space, normalised; `null`: it matches nothing by itself (the compiler warns). */
export interface MatchSpace {
  /** '*' any destination; a network (masked; IPv4 as a number); `n:<name>`. */
  dst: string | number;
  family?: 4 | 6;
  net?: number | bigint;
  len?: number;
  dns: boolean;
  proto: ProtoClass;
  /** tcp/udp only; undefined: every port. */
  ports?: readonly [number, number];
  /** icmp only; undefined: every type. */
  icmp?: number;
  expire?: number;
}

const V4_MASKS = Array.from({ length: 33 }, (_, l) => (l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0));
const maskV4 = (n: number, len: number) => (n & V4_MASKS[len]!) >>> 0;
const ALL6 = (1n << 128n) - 1n;
const maskV6 = (n: bigint, len: number) => n & (ALL6 ^ ((1n << BigInt(128 - len)) - 1n));

/** IPv4 networks as one number (no strings on the hot path), IPv6 as text. */
const dstKey = (family: 4 | 6, net: number | bigint, len: number): string | number => (family === 4 ? (net as number) * 64 + len : `6:${net.toString(16)}/${len}`);

/** Spaces of frozen rules (the store freezes what it loads; an edit keeps the rules it left alone), so a view after an edit recomputes only the new rule's. */
const SPACES = new WeakMap<Rule, MatchSpace | null>();

export function matchSpace(r: Rule): MatchSpace | null {
  const known = SPACES.get(r);
  if (known !== undefined) return known;
  const s = computeSpace(r);
  if (Object.isFrozen(r)) SPACES.set(r, s);
  return s;
}

function computeSpace(r: Rule): MatchSpace | null {
  const out: MatchSpace = { dst: '*', dns: r.specialtarget === 'dns', proto: 'all' };
  const h = r.dsthost;
  if (h?.type === 'dst4') {
    const n = parseV4(h.addr);
    if (n === undefined || h.prefix < 0 || h.prefix > 32) return null;
    Object.assign(out, { family: 4, net: maskV4(n, h.prefix), len: h.prefix });
    out.dst = dstKey(4, out.net!, h.prefix);
  } else if (h?.type === 'dst6') {
    const n = parseV6(h.addr);
    if (n === undefined || h.prefix < 0 || h.prefix > 128) return null;
    Object.assign(out, { family: 6, net: maskV6(n, h.prefix), len: h.prefix });
    out.dst = dstKey(6, out.net!, h.prefix);
  } else if (h) out.dst = `n:${h.text}`;
  out.proto = r.proto ?? (r.icmptype !== undefined ? 'icmp' : r.dstports || out.dns ? 'tu' : 'all');
  let ports = r.dstports ? ([r.dstports.start, r.dstports.end] as const) : undefined;
  if (out.dns) {
    if (out.proto === 'icmp') return null; // QNET4004
    if (ports && (ports[0] > 53 || ports[1] < 53)) return null; // QNET4002
    ports = [53, 53];
  }
  if (out.proto === 'icmp') {
    if (r.icmptype !== undefined) out.icmp = r.icmptype;
  } else if (ports) out.ports = ports;
  if (r.expire !== undefined) out.expire = r.expire;
  return out;
}

const protoCovers = (j: ProtoClass, i: ProtoClass) => j === 'all' || j === i || (j === 'tu' && (i === 'tcp' || i === 'udp'));

/** Every packet `i` matches, `j` matches too (the definition the index below implements). */
export function covers(j: MatchSpace | null, i: MatchSpace | null): boolean {
  if (!j || !i) return false;
  if (j.expire !== undefined && (i.expire === undefined || i.expire > j.expire)) return false;
  if (j.dst !== '*' && j.dst !== i.dst) {
    if (j.family === undefined || j.family !== i.family || i.len! < j.len!) return false;
    const n = j.family === 4 ? maskV4(i.net as number, j.len!) : maskV6(i.net as bigint, j.len!);
    if (n !== j.net) return false;
  }
  if (j.dns && !i.dns) return false;
  if (!protoCovers(j.proto, i.proto)) return false;
  if (j.ports && (!i.ports || i.ports[0] < j.ports[0] || i.ports[1] > j.ports[1])) return false;
  if (j.icmp !== undefined && i.icmp !== j.icmp) return false;
  return true;
}

export interface Shadow {
  /** The rule that never matches (its number in the list). */
  index: number;
  /** An earlier rule that covers it (the earliest, except among overlapping port ranges). */
  by: number;
}

/** Which protocol classes of an earlier rule can cover a rule of class `p`. */
const PROTO_SLOT: Record<ProtoClass, number> = { all: 0, tu: 1, tcp: 2, udp: 3, icmp: 4 };
/** A bucket's key: its destination and slot (dns * 5 + PROTO_SLOT); IPv4 stays a number (< 2^43). */
const slotKey = (dst: string | number, slot: number): string | number => (typeof dst === 'number' ? dst * 16 + slot : `${dst}|${slot}`);
const COVERING: Record<ProtoClass, readonly number[]> = { all: [0], tu: [0, 1], tcp: [0, 1, 2], udp: [0, 1, 3], icmp: [0, 4] };

/** Max-end-by-start over ports 0..65535 (a Fenwick tree of prefix maxima), for many port ranges. */
class RangeIndex {
  private readonly end = new Int32Array(65537).fill(-1);
  private readonly who = new Int32Array(65537);
  add(lo: number, hi: number, idx: number): void {
    for (let k = lo + 1; k <= 65536; k += k & -k) if (hi > this.end[k]!) [this.end[k], this.who[k]] = [hi, idx];
  }
  /** A range with start ≤ lo and end ≥ hi, if any. */
  find(lo: number, hi: number): number | undefined {
    let best = -1;
    let who = 0;
    for (let k = lo + 1; k > 0; k -= k & -k) if (this.end[k]! > best) [best, who] = [this.end[k]!, this.who[k]!];
    return best >= hi ? who : undefined;
  }
}

/** Earlier rules of one shape: one destination, dns or not, one protocol class. */
class Bucket {
  /** The earliest rule of this shape with no port/type limit: it covers every later one. */
  full?: number;
  /** Earliest by exact ports (lo * 65536 + hi) or icmp type (made when first needed: most buckets hold one rule). */
  private exact?: Map<number, number>;
  private wide?: [number, number, number][];
  private index?: RangeIndex;

  add(s: MatchSpace, idx: number): void {
    const key = s.ports ? s.ports[0] * 65536 + s.ports[1] : s.icmp;
    if (key === undefined) {
      this.full ??= idx;
      return;
    }
    this.exact ??= new Map();
    if (!this.exact.has(key)) this.exact.set(key, idx);
    if (s.ports && s.ports[1] > s.ports[0]) {
      if (this.index) this.index.add(s.ports[0], s.ports[1], idx);
      else if ((this.wide ??= []).push([s.ports[0], s.ports[1], idx]) > 32) {
        this.index = new RangeIndex();
        for (const [lo, hi, j] of this.wide) this.index.add(lo, hi, j);
      }
    }
  }

  find(s: MatchSpace): number | undefined {
    let best = this.full;
    const min = (j: number | undefined) => {
      if (j !== undefined && (best === undefined || j < best)) best = j;
    };
    if (!this.exact) return best;
    if (s.ports) {
      min(this.exact.get(s.ports[0] * 65536 + s.ports[1]));
      if (this.index) min(this.index.find(s.ports[0], s.ports[1]));
      else for (const [lo, hi, j] of this.wide ?? []) if (lo <= s.ports[0] && hi >= s.ports[1]) min(j);
    } else if (s.icmp !== undefined && s.proto === 'icmp') min(this.exact.get(s.icmp));
    return best;
  }
}

/**
 * The rules of `rules` that never match, each with an earlier rule that covers it, in order.
 * Rules that match nothing by themselves (matchSpace null) are not reported here.
 */
export function shadowedRules(rules: readonly Rule[]): Shadow[] {
  /** One bucket per (destination, dns, protocol class); see slotKey. */
  const buckets = new Map<string | number, Bucket>();
  /** Prefix lengths the earlier rules use, per family: only those are looked up. */
  const lens = { 4: new Set<number>(), 6: new Set<number>() };
  /** Earlier rules that expire: few, checked one by one, and only by rules that expire too. */
  const expiring: [MatchSpace, number][] = [];
  const out: Shadow[] = [];
  for (let i = 0; i < rules.length; i++) {
    const s = matchSpace(rules[i]!);
    if (!s) continue;
    let by: number | undefined;
    const ask = (dst: string | number) => {
      for (let off = 0; off <= (s.dns ? 5 : 0); off += 5)
        for (const p of COVERING[s.proto]) {
          const j = buckets.get(slotKey(dst, off + p))?.find(s);
          if (j !== undefined && (by === undefined || j < by)) by = j;
        }
    };
    ask('*');
    if (s.family !== undefined) {
      for (const l of lens[s.family]) if (l <= s.len!) ask(s.family === 4 ? dstKey(4, maskV4(s.net as number, l), l) : dstKey(6, maskV6(s.net as bigint, l), l));
    } else if (s.dst !== '*') ask(s.dst);
    if (s.expire !== undefined)
      for (const [e, j] of expiring) {
        if (by !== undefined && j > by) break;
        if (covers(e, s)) by = j;
      }
    if (by !== undefined) out.push({ index: i, by });
    if (s.expire !== undefined) expiring.push([s, i]);
    else {
      const key = slotKey(s.dst, (s.dns ? 5 : 0) + PROTO_SLOT[s.proto]);
      let b = buckets.get(key);
      if (!b) buckets.set(key, (b = new Bucket()));
      b.add(s, i);
      if (s.family !== undefined) lens[s.family].add(s.len!);
    }
  }
  return out;
}

/** The earliest rule before `at` that covers rule `at` (one rule's check: linear, for an edit). */
export function coveringRule(rules: readonly Rule[], at: number): number | undefined {
  const s = matchSpace(rules[at]!);
  if (!s) return undefined;
  for (let j = 0; j < at; j++) if (covers(matchSpace(rules[j]!), s)) return j;
  return undefined;
}

/** The words of a shadow, the same wherever it is said (the editor, an edit's warning). */
export const shadowText = (index: number, by: number) => `rule ${index} never matches: rule ${by} covers it`;
