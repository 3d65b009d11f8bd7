// Addresses as numbers the matchers can compare without allocating: IPv4 as an unsigned 32-bit
// number, IPv6 as a bigint. Both forms compare with `<`/`===` and work as Map/Set keys (SameValueZero
// compares bigints by value), so one interval/hash index serves both families.

import * as ip from '../model/ip.js';

export type AddrNum = number | bigint;

// Probes reuse a few thousand addresses; remembering them keeps the regex off the hot path.
const v4Memo = new Map<string, number | undefined>();

export function parseV4(s: string): number | undefined {
  let n = v4Memo.get(s);
  if (n !== undefined || v4Memo.has(s)) return n;
  n = ip.parseV4(s);
  if (v4Memo.size >= 65536) v4Memo.clear();
  v4Memo.set(s, n);
  return n;
}

const v6Memo = new Map<string, bigint | undefined>();

export function parseV6(s: string): bigint | undefined {
  let n = v6Memo.get(s);
  if (n !== undefined || v6Memo.has(s)) return n;
  n = ip.parseV6(s);
  if (v6Memo.size >= 65536) v6Memo.clear();
  v6Memo.set(s, n);
  return n;
}

export function parseAddr(s: string, family: 4 | 6): AddrNum | undefined {
  return family === 4 ? parseV4(s) : parseV6(s);
}

export const formatV4 = ip.formatV4;

const v4Text = new Map<number, string>();

/** formatV4, remembered: probes format the same few thousand addresses over and over. */
export function formatV4Memo(n: number): string {
  let s = v4Text.get(n);
  if (s === undefined) {
    if (v4Text.size >= 65536) v4Text.clear();
    v4Text.set(n, (s = formatV4(n)));
  }
  return s;
}

export const formatV6 = ip.formatV6;

/** The inclusive numeric interval a prefix covers. */
export function prefixRange(addr: string, len: number | undefined, family: 4 | 6): [AddrNum, AddrNum] | undefined {
  if (family === 4) {
    const a = parseV4(addr);
    if (a === undefined) return undefined;
    const l = len ?? 32;
    if (l < 0 || l > 32) return undefined;
    const size = 2 ** (32 - l);
    const lo = a - (a % size);
    return [lo, lo + size - 1];
  }
  const a = parseV6(addr);
  if (a === undefined) return undefined;
  const l = BigInt(len ?? 128);
  if (l < 0n || l > 128n) return undefined;
  const host = (1n << (128n - l)) - 1n;
  const lo = a & ~host & ((1n << 128n) - 1n);
  return [lo, lo | host];
}
