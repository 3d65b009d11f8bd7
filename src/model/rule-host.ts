// `dsthost` values: IPv4/IPv6 addresses and networks as glibc `inet_pton` reads them (Qubes calls
// socket.inet_pton), and DNS names. Reference: qubes-firewall.md §2.1 "DstHost parsing".
import { formatV6, v6FromGroups } from './ip.js';
import type { DstHost } from './rule.js';
import type { Diagnostic } from './diagnostics.js';
import { err, ok, type Result } from './result.js';
import { RuleCode, q, ruleError } from './rule-codes.js';

const IPV4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
// glibc inet_pton4: exactly four decimal octets 0-255, no leading zeros, nothing else.
const IPV4_RE = new RegExp(`^${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}$`);

export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/**
 * glibc `inet_pton6` (resolv/inet_pton.c), step for step: 1-4 hex digits per group, one `::`
 * that must stand for at least one group, an optional dotted-quad tail in the last 32 bits.
 * Returns the eight 16-bit groups, or undefined.
 */
export function parseIPv6(s: string): number[] | undefined {
  const bytes = new Array<number>(16).fill(0);
  let tp = 0;
  let colonp = -1;
  let i = 0;
  const n = s.length;
  if (s.indexOf(':') < 0) return undefined; // every IPv6 text has one; skips the work for names
  if (s[0] === ':') {
    i++;
    if (i === n || s[i] !== ':') return undefined;
  }
  let curtok = i;
  let xdigits = 0;
  let val = 0;
  while (i < n) {
    const ch = s[i++]!;
    const digit = hexValue(ch);
    if (digit >= 0) {
      if (xdigits === 4) return undefined;
      val = (val << 4) | digit;
      xdigits++;
      continue;
    }
    if (ch === ':') {
      curtok = i;
      if (xdigits === 0) {
        if (colonp >= 0) return undefined;
        colonp = tp;
        continue;
      } else if (i === n) return undefined;
      if (tp + 2 > 16) return undefined;
      bytes[tp++] = (val >> 8) & 0xff;
      bytes[tp++] = val & 0xff;
      xdigits = 0;
      val = 0;
      continue;
    }
    if (ch === '.' && tp + 4 <= 16 && isIPv4(s.slice(curtok))) {
      for (const o of s.slice(curtok).split('.')) bytes[tp++] = Number(o);
      xdigits = 0;
      break;
    }
    return undefined;
  }
  if (xdigits > 0) {
    if (tp + 2 > 16) return undefined;
    bytes[tp++] = (val >> 8) & 0xff;
    bytes[tp++] = val & 0xff;
  }
  if (colonp >= 0) {
    if (tp === 16) return undefined; // `::` would stand for zero groups
    const moved = bytes.slice(colonp, tp);
    bytes.fill(0, colonp);
    for (let k = 0; k < moved.length; k++) bytes[16 - moved.length + k] = moved[k]!;
    tp = 16;
  }
  if (tp !== 16) return undefined;
  const groups: number[] = [];
  for (let k = 0; k < 16; k += 2) groups.push((bytes[k]! << 8) | bytes[k + 1]!);
  return groups;
}

function hexValue(ch: string): number {
  const c = ch.charCodeAt(0);
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** RFC 5952 text: lowercase, no leading zeros, the first longest run (≥2) of zero groups as `::`. */
export function formatIPv6(groups: readonly number[]): string {
  return formatV6(v6FromGroups(groups));
}

const HOSTNAME_CHARS = /^[a-z0-9._-]*$/;
// What glibc inet_aton (and so getaddrinfo) reads as an IPv4 address: 1-4 parts, decimal, octal or
// hex. Such a "name" would silently resolve to an address nobody meant.
const INET_ATON_RE = /^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}$/;

/**
 * A DNS name as qnet accepts it. Qubes only checks the character set (lowercase letters, digits,
 * `-._`); qnet also requires a real name (deliberate difference, §7.3): labels of 1-63
 * characters that do not start or end with `-`, at most 253 characters, no trailing dot, and
 * nothing an address parser would read as an IPv4 address. `_` is kept, as Qubes allows it and
 * resolvers accept it.
 */
export function checkHostName(name: string): Diagnostic | undefined {
  if (!HOSTNAME_CHARS.test(name)) {
    const lower = name.toLowerCase();
    return ruleError(
      RuleCode.BadHostName,
      `dsthost ${q(name)} is not a valid host name: only lowercase letters, digits, '-', '.' and '_' are allowed`,
      lower !== name && HOSTNAME_CHARS.test(lower)
        ? `write it in lowercase: ${lower}`
        : 'give an IPv4/IPv6 address, a network such as 10.0.0.0/8, or a DNS name',
    );
  }
  const bad = (why: string, hint?: string): Diagnostic =>
    ruleError(
      RuleCode.BadHostName,
      name === '' ? 'dsthost is empty' : `dsthost ${q(name)} is not a valid DNS name: ${why}`,
      hint ?? 'give an IPv4/IPv6 address, a network such as 10.0.0.0/8, or a DNS name',
    );
  if (name === '') return bad('empty');
  const labels = name.split('.');
  const last = labels[labels.length - 1]!;
  if (/^\d+$/.test(last) || INET_ATON_RE.test(name)) {
    return ruleError(
      RuleCode.BadAddress,
      `dsthost ${q(name)} is not a valid IPv4 address`,
      'write four numbers 0-255 without leading zeros (10.0.0.1), or a DNS name',
    );
  }
  if (name.length > 253) return bad(`longer than 253 characters (${name.length})`);
  if (last === '' && labels.length > 1) {
    return bad("it ends with '.'", `write it without the trailing dot: ${name.replace(/\.+$/, '')}`);
  }
  for (const label of labels) {
    if (label === '') return bad("empty label ('..' or a leading '.')");
    if (label.length > 63) return bad(`label ${q(label)} is longer than 63 characters`);
    if (label.startsWith('-') || label.endsWith('-')) {
      return bad(`label ${q(label)} starts or ends with '-'`);
    }
  }
  return undefined;
}

const NET_HINT = 'write an address, optionally with /prefix (10.0.0.0/8, 2001:db8::/32), or a DNS name';

/**
 * Qubes `DstHost(value, prefixlen)` (dom0, R4.2+). `prefixlen` only comes from the v1 XML import;
 * note that qnet honours an explicit 0 there (see firewall-xml.ts), unlike Qubes' `prefixlen or 32`.
 */
export function parseHost(value: string, prefixlen?: number): Result<DstHost> {
  const slashes = value.split('/').length - 1;
  if (slashes > 1) {
    return err(ruleError(RuleCode.BadAddress, `dsthost ${q(value)} has more than one '/'`, NET_HINT));
  }
  if (slashes === 0) {
    const v6 = parseIPv6(value);
    if (v6) {
      const prefix = prefixlen ?? 128;
      if (prefix < 0 || prefix > 128) return err(badPrefix(value, `${prefix}`, 128));
      return ok({ type: 'dst6', text: `${value}/${prefix}`, addr: formatIPv6(v6), prefix });
    }
    if (isIPv4(value)) {
      const prefix = prefixlen ?? 32;
      if (prefix < 0 || prefix > 32) return err(badPrefix(value, `${prefix}`, 32));
      return ok({ type: 'dst4', text: `${value}/${prefix}`, addr: value, prefix });
    }
    const problem = checkHostName(value);
    if (problem) return err(problem);
    return ok({ type: 'dsthost', text: value });
  }
  const cut = value.indexOf('/');
  const host = value.slice(0, cut);
  const prefixText = value.slice(cut + 1);
  // R4.2+: str.isdigit() on the prefix, then int(); `08` is accepted and the text kept verbatim.
  if (!/^\d+$/.test(prefixText)) {
    return err(
      ruleError(
        RuleCode.BadPrefix,
        `dsthost ${q(value)}: prefix length ${q(prefixText)} is not a number`,
        'write the prefix length as digits, e.g. 10.0.0.0/8',
      ),
    );
  }
  const prefix = Number(prefixText); // digits only; `0008` is 8, as int() reads it
  const v6 = parseIPv6(host);
  if (v6) {
    if (prefix > 128) return err(badPrefix(value, prefixText, 128));
    return ok({ type: 'dst6', text: value, addr: formatIPv6(v6), prefix });
  }
  if (isIPv4(host)) {
    if (prefix > 32) return err(badPrefix(value, prefixText, 32));
    return ok({ type: 'dst4', text: value, addr: host, prefix });
  }
  return err(
    ruleError(
      RuleCode.BadAddress,
      `dsthost ${q(value)}: ${q(host)} is not a valid IP address`,
      '/prefix is only for addresses (10.0.0.0/8); write a DNS name without it',
    ),
  );
}

function badPrefix(value: string, prefix: string, max: number): Diagnostic {
  return ruleError(
    RuleCode.BadPrefix,
    `dsthost ${q(value)}: prefix length ${prefix} is out of range for IPv${max === 32 ? 4 : 6} (0-${max})`,
  );
}
