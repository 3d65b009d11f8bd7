// Addresses as numbers the matchers can compare without allocating: IPv4 as an unsigned 32-bit
// number, IPv6 as a bigint. Both forms compare with `<`/`===` and work as Map/Set keys (SameValueZero
// compares bigints by value), so one interval/hash index serves both families.

export type AddrNum = number | bigint;

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

// Probes reuse a few thousand addresses; remembering them keeps the regex off the hot path.
const v4Memo = new Map<string, number | undefined>();

export function parseV4(s: string): number | undefined {
  let n = v4Memo.get(s);
  if (n !== undefined || v4Memo.has(s)) return n;
  n = parseV4Text(s);
  if (v4Memo.size >= 65536) v4Memo.clear();
  v4Memo.set(s, n);
  return n;
}

function parseV4Text(s: string): number | undefined {
  const m = V4_RE.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

const v6Memo = new Map<string, bigint | undefined>();

export function parseV6(s: string): bigint | undefined {
  let n = v6Memo.get(s);
  if (n !== undefined || v6Memo.has(s)) return n;
  n = parseV6Text(s);
  if (v6Memo.size >= 65536) v6Memo.clear();
  v6Memo.set(s, n);
  return n;
}

function parseV6Text(s: string): bigint | undefined {
  if (!s.includes(':')) return undefined;
  let text = s.toLowerCase();
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string | undefined) => (h === undefined || h === '' ? [] : h.split(':'));
  const head = groups(halves[0]);
  const rest = groups(halves[1]);
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = halves.length === 1 ? head : [...head, ...Array<string>(missing).fill('0'), ...rest];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

export function familyOf(s: string): 4 | 6 | undefined {
  if (parseV4(s) !== undefined) return 4;
  if (parseV6(s) !== undefined) return 6;
  return undefined;
}

export function parseAddr(s: string, family: 4 | 6): AddrNum | undefined {
  return family === 4 ? parseV4(s) : parseV6(s);
}

export function formatV4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

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

/** RFC 5952 text (lower case, longest zero run compressed). */
export function formatV6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
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

/** Does `cidr` (`10.137.0.0/16`, `default`, or a bare address) contain `a`? Returns the prefix length, or -1. */
export function cidrMatch(cidr: string, a: AddrNum, family: 4 | 6): number {
  if (cidr === 'default') return 0;
  const slash = cidr.indexOf('/');
  const base = slash < 0 ? cidr : cidr.slice(0, slash);
  const len = slash < 0 ? (family === 4 ? 32 : 128) : Number(cidr.slice(slash + 1));
  const r = prefixRange(base, len, family);
  if (!r) return -1;
  return r[0] <= a && a <= r[1] ? len : -1;
}
