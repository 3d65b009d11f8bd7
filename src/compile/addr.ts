// Addresses as numbers, for prefix containment and canonical text. Qubes keeps a rule's address
// verbatim (`2001:DB8::/32`, `192.168.0.1/24`, reference §2.1); nft wants the network address, and
// deterministic output wants one spelling (RFC 5952 for IPv6: lower case, longest zero run as `::`).

import * as ip from '../model/ip.js';

export interface Prefix {
  v6: boolean;
  /** The network address with host bits cleared. */
  net: bigint;
  len: number;
}

const bits = (v6: boolean) => (v6 ? 128 : 32);

export function maskOf(v6: boolean, len: number): bigint {
  const b = BigInt(bits(v6));
  return len === 0 ? 0n : ((1n << b) - 1n) ^ ((1n << (b - BigInt(len))) - 1n);
}

/** `addr` (either family) with prefix `len`; null if it does not parse. */
export function toPrefix(addr: string, len?: number): Prefix | null {
  const v6 = addr.includes(':');
  const parsed = v6 ? ip.parseV6(addr) : ip.parseV4(addr);
  if (parsed === undefined) return null;
  const n = BigInt(parsed); // one type for both families: v4 addresses are masked as bigints too
  const l = len ?? bits(v6);
  if (l < 0 || l > bits(v6)) return null;
  return { v6, net: n & maskOf(v6, l), len: l };
}

export const isHost = (p: Prefix) => p.len === bits(p.v6);
export const formatAddr = (p: Prefix) => (p.v6 ? ip.formatV6(p.net) : ip.formatV4(Number(p.net)));
export const prefixText = (p: Prefix) => (isHost(p) ? formatAddr(p) : `${formatAddr(p)}/${p.len}`);

/** Does `outer` contain `inner` (same family)? Prefixes either nest or are disjoint. */
export function contains(outer: Prefix, inner: Prefix): boolean {
  return outer.v6 === inner.v6 && outer.len <= inner.len && (inner.net & maskOf(outer.v6, outer.len)) === outer.net;
}

/** Canonical text of an address, or the input unchanged if it does not parse. */
export function canonicalAddr(addr: string): string {
  const p = toPrefix(addr);
  return p ? formatAddr(p) : addr;
}

/** Smallest-first, then by address: a stable order for deterministic output. */
export function comparePrefix(a: Prefix, b: Prefix): number {
  if (a.v6 !== b.v6) return a.v6 ? 1 : -1;
  if (a.net !== b.net) return a.net < b.net ? -1 : 1;
  return a.len - b.len;
}

/** Drop prefixes contained in another one of the list; sort. The union is unchanged. */
export function minimalCover(ps: Prefix[]): Prefix[] {
  const sorted = [...ps].sort((a, b) => a.len - b.len || comparePrefix(a, b));
  const kept: Prefix[] = [];
  const byKey = new Map<string, true>();
  const lens = new Set<number>();
  for (const p of sorted) {
    let covered = false;
    for (const l of lens) {
      if (l > p.len) continue;
      if (byKey.has(`${p.v6}|${l}|${p.net & maskOf(p.v6, l)}`)) {
        covered = true;
        break;
      }
    }
    if (covered) continue;
    kept.push(p);
    lens.add(p.len);
    byKey.set(`${p.v6}|${p.len}|${p.net}`, true);
  }
  return kept.sort(comparePrefix);
}
