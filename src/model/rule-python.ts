// Python built-ins whose exact behaviour the Qubes rule grammar inherits (qubes/firewall.py and
// qubesadmin run on CPython). Kept in one place so the quirks are named, not scattered.

// str.strip()/int() whitespace for ASCII input, plus the few non-ASCII spaces Python also strips.
// (JS \s lacks \x1c-\x1f and \x85, and wrongly includes \ufeff.)
const WS = '[\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const STRIP_RE = new RegExp(`^${WS}+|${WS}+$`, 'g');
const INT_RE = new RegExp(`^${WS}*([+-]?)(\\d(?:_?\\d)*)${WS}*$`);

/** Python `str.strip()`. */
export function pyStrip(s: string): string {
  return s.replace(STRIP_RE, '');
}

/**
 * Python `int(s)` for a str (base 10): surrounding whitespace, one sign, leading zeros and single
 * underscores between digits are accepted (`' +0_80 '` → 80). Non-ASCII digits, which Python also
 * accepts, are refused: Qubes requires ASCII payloads. Returns undefined where Python raises, and
 * for magnitudes beyond 2^53 (no rule value comes near).
 */
export function pyInt(s: string): number | undefined {
  const m = INT_RE.exec(s);
  if (!m) return undefined;
  const digits = m[2]!.replace(/_/g, '');
  if (digits.length > 15) return undefined;
  const n = Number(digits);
  return m[1] === '-' ? -n : n;
}

/** Python `str.splitlines()` (without keepends). */
export function pySplitLines(s: string): string[] {
  if (s === '') return [];
  const parts = s.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/**
 * Python `'{:+.0f}s'.format(x)`: round half to even, and a negative value that rounds to zero
 * keeps its sign (`-0s`), as qvm-firewall prints expiry times (qubesadmin/firewall.py Expire).
 */
export function formatSignedSeconds(x: number): string {
  const f = Math.floor(x);
  const d = x - f;
  let r = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  if (r === 0) r = 0; // no -0 from the arithmetic; the sign comes from x below
  const negative = x < 0 || Object.is(x, -0);
  return `${negative ? '-' : '+'}${Math.abs(r)}s`;
}
