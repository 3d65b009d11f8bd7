// Helper of the pack pass: regroup a client's atoms into as few same-verdict groups as first-match
// order allows, so each group packs into one set per shape instead of one per alternating run.
//
// Why it is safe: two adjacent atoms may trade places when (a) they have the same verdict (a packet
// matching either gets that verdict), or (b) no packet can match both (their match spaces are
// disjoint: then at most one of them matches any packet, and it gives the same verdict wherever it
// stands). A chain of such swaps keeps every packet's verdict. An atom therefore moves up into an
// earlier group of its verdict only past atoms of the other verdict it is provably disjoint from;
// it never jumps over a different-verdict atom it may overlap with.
//
// Disjointness is proven cheaply or not at all (`disjoint` false = "may overlap", the atom stays):
// different protocols; same tcp/udp with port ranges that do not meet; icmp with two different
// types; or one destination group of each atom whose prefixes are pairwise disjoint (prefixes
// either nest or are disjoint). The search per atom is bounded (SCAN_LIMIT comparisons), so long
// lists cost O(n · SCAN_LIMIT), not O(n²); past the bound the atom stays where it is.
import type { Prefix } from '../addr.js';
import type { Atom } from './lower.js';

/** At most this many different-verdict atoms are compared before an atom gives up moving. */
export const SCAN_LIMIT = 512;

export interface Group {
  verdict: Atom['verdict'];
  atoms: Atom[];
}

interface KeyedGroup extends Group {
  keys: Key[];
}

/** A prefix as the closed range of addresses it covers (numbers for IPv4, bigints for IPv6). */
type Span = readonly [v6: boolean, lo: number | bigint, hi: number | bigint];

function span(p: Prefix): Span {
  if (p.v6) return [true, p.net, p.net + (1n << BigInt(128 - p.len)) - 1n];
  const lo = Number(p.net);
  return [false, lo, lo + 2 ** (32 - p.len) - 1];
}

/** An atom's match, precomputed for repeated comparison. */
interface Key {
  a: Atom;
  dst: Span[][];
}

const keyOf = (a: Atom): Key => ({ a, dst: a.dst.map((g) => g.map(span)) });

function spansDisjoint(g: readonly Span[], h: readonly Span[]): boolean {
  for (const p of g) for (const q of h) if (p[0] === q[0] && p[1] <= q[2] && q[1] <= p[2]) return false;
  return true;
}

function disjointKeys(x: Key, y: Key): boolean {
  const [a, b] = [x.a, y.a];
  if (a.proto !== undefined && b.proto !== undefined) {
    if (a.proto !== b.proto) return true;
    if ((a.proto === 'tcp' || a.proto === 'udp') && a.port && b.port && (a.port.hi < b.port.lo || b.port.hi < a.port.lo)) return true;
    if (a.proto === 'icmp' && a.icmpType !== undefined && b.icmpType !== undefined && a.icmpType !== b.icmpType) return true;
  }
  for (const g of x.dst) for (const h of y.dst) if (spansDisjoint(g, h)) return true;
  return false;
}

/**
 * True only when no packet can match both atoms (false means: may overlap). Two prefixes share an
 * address exactly when their ranges meet (prefixes nest or are disjoint).
 */
export const disjoint = (a: Atom, b: Atom): boolean => disjointKeys(keyOf(a), keyOf(b));

/**
 * Atoms in first-match order → groups of one verdict each, in chain order. Each atom joins the
 * earliest group of its verdict that it can reach by moving up past only provably disjoint atoms
 * of the other verdict (and any atoms of its own verdict); otherwise it opens a new group at the end.
 */
export function regroup(atoms: readonly Atom[]): Group[] {
  const groups: KeyedGroup[] = [];
  for (const a of atoms) {
    const k = keyOf(a);
    let target = -1;
    let budget = SCAN_LIMIT;
    scan: for (let g = groups.length - 1; g >= 0; g--) {
      const G = groups[g]!;
      if (G.verdict === a.verdict) {
        target = g;
        continue;
      }
      if (G.keys.length > budget) break;
      budget -= G.keys.length;
      for (const b of G.keys) if (!disjointKeys(k, b)) break scan;
    }
    if (target >= 0) {
      groups[target]!.atoms.push(a);
      groups[target]!.keys.push(k);
    } else groups.push({ verdict: a.verdict, atoms: [a], keys: [k] });
  }
  return groups.map(({ verdict, atoms }) => ({ verdict, atoms }));
}
