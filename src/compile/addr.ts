// Addresses as numbers, for prefix containment and canonical text. Qubes keeps a rule's address
// verbatim (`2001:DB8::/32`, `192.168.0.1/24`, reference §2.1); nft wants the network address, and
// deterministic output wants one spelling (RFC 5952 for IPv6: lower case, longest zero run as `::`).

export interface Prefix {
  v6: boolean;
  /** The network address with host bits cleared. */
  net: bigint;
  len: number;
}

export function parseV4(s: string): bigint | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0n;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    n = (n << 8n) | BigInt(o);
  }
  return n;
}

export function parseV6(s: string): bigint | null {
  let text = s.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = parseV4(v4[1]!);
    if (n === null) return null;
    text = text.slice(0, v4.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

export function formatV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}

export function formatV6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const bits = (v6: boolean) => (v6 ? 128 : 32);

export function maskOf(v6: boolean, len: number): bigint {
  const b = BigInt(bits(v6));
  return len === 0 ? 0n : ((1n << b) - 1n) ^ ((1n << (b - BigInt(len))) - 1n);
}

/** `addr` (either family) with prefix `len`; null if it does not parse. */
export function toPrefix(addr: string, len?: number): Prefix | null {
  const v6 = addr.includes(':');
  const n = v6 ? parseV6(addr) : parseV4(addr);
  if (n === null) return null;
  const l = len ?? bits(v6);
  if (l < 0 || l > bits(v6)) return null;
  return { v6, net: n & maskOf(v6, l), len: l };
}

export const isHost = (p: Prefix) => p.len === bits(p.v6);
export const formatAddr = (p: Prefix) => (p.v6 ? formatV6(p.net) : formatV4(p.net));
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
