// Parsing the Qubes rule language: the element values (dom0 `qubes/firewall.py`, R4.2 validation),
// the Admin API line form (`Rule.from_api_string`) and the firewall.xml property list.
// Reference: qubes-firewall.md §2.1–2.2, §2.4. Deliberate differences are marked "qnet:".
import type { Action, DstHost, PortRange, Proto, Rule, SpecialTarget } from './rule.js';
import type { Diagnostic } from './diagnostics.js';
import { err, ok, type Result } from './result.js';
import { RuleCode, q, ruleError } from './rule-codes.js';
import { parseHost } from './rule-host.js';
import { pyInt, pySplitLines, pyStrip } from './rule-python.js';
import { portsText } from './rule-format.js';

export { RuleCode } from './rule-codes.js';

/** Largest `expire` Python's datetime can represent (9999-12-31T23:59:59Z); beyond, dom0 fails. */
export const MAX_EXPIRE = 253402300799;
/** qnet: 65535. Qubes R4.1/R4.2 accept 65536, which nft then rejects (§7.1); `main` agrees with us. */
export const MAX_PORT = 65535;

const OPTION_LIST = 'action, dsthost (or dst4, dst6, dstname), proto, dstports, icmptype, specialtarget, expire, comment';

export function parseAction(value: string): Result<Action> {
  if (value === 'accept' || value === 'drop') return ok(value);
  const lower = value.toLowerCase();
  const hint =
    lower === 'accept' || lower === 'drop'
      ? `write it in lowercase: ${lower}`
      : lower === 'allow' || lower === 'permit'
        ? 'use accept'
        : lower === 'deny' || lower === 'reject' || lower === 'block'
          ? 'use drop (qnet rejects dropped traffic with ICMP admin-prohibited, as Qubes does)'
          : 'use accept or drop';
  return err(ruleError(RuleCode.BadAction, `action ${q(value)} is not valid`, hint));
}

export function parseProto(value: string): Result<Proto> {
  if (value === 'tcp' || value === 'udp' || value === 'icmp') return ok(value);
  const lower = value.toLowerCase();
  const hint =
    lower === 'tcp' || lower === 'udp' || lower === 'icmp'
      ? `write it in lowercase: ${lower}`
      : lower === 'any' || lower === 'all' || lower === ''
        ? 'leave proto out to match every protocol'
        : lower === 'icmpv6' || lower === 'ipv6-icmp' || lower === 'icmp6'
          ? 'ICMPv6 is spelled proto=icmp (it applies to IPv6 destinations too)'
          : 'use tcp, udp or icmp';
  return err(ruleError(RuleCode.BadProto, `proto ${q(value)} is not valid`, hint));
}

/** `dsthost` (and its aliases): an address, a network or a DNS name, re-classified by content. */
export function parseDstHost(value: string): Result<DstHost> {
  return parseHost(value);
}

/**
 * `N` or `N-M`. Each side is read by Python `int()`, so ` 80`, `+80` and `0080` are 80 (§2.1);
 * qnet refuses ports above 65535.
 */
export function parseDstPorts(value: string): Result<PortRange> {
  const bad = (why: string, hint = 'write a port (443) or a range (1024-2048) of ports 0-65535') =>
    err(ruleError(RuleCode.BadPorts, `dstports ${q(value)} ${why}`, hint));
  const sides = value.split('-');
  if (sides.length > 2) return bad('is not a port or a range N-M');
  const start = pyInt(sides[0]!);
  const end = sides.length === 2 ? pyInt(sides[1]!) : start;
  if (start === undefined || end === undefined) return bad('is not a port or a range N-M');
  if (start < 0 || end < 0 || start > MAX_PORT || end > MAX_PORT) {
    return bad(
      'is out of range: ports are 0-65535',
      start === MAX_PORT + 1 || end === MAX_PORT + 1
        ? 'Qubes R4.2 accepts 65536, but nftables rejects it and the qube loses all network; qnet refuses it'
        : undefined,
    );
  }
  if (start > end) return bad('is not a valid range: the first port is larger than the last', 'write N-M with N ≤ M');
  return ok({ start, end });
}

/** R4.2+: 1-3 ASCII digits, 0-255; `008` is 8. */
export function parseIcmpType(value: string): Result<number> {
  const n = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
  if (n >= 0 && n <= 255) return ok(n);
  return err(
    ruleError(RuleCode.BadIcmpType, `icmptype ${q(value)} is not an ICMP type number 0-255`, 'e.g. icmptype=8 for echo request'),
  );
}

export function parseSpecialTarget(value: string): Result<SpecialTarget> {
  if (value === 'dns') return ok('dns');
  return err(
    ruleError(
      RuleCode.BadSpecialTarget,
      `specialtarget ${q(value)} is not valid`,
      'the only special target is dns (the qube\'s DNS servers)',
    ),
  );
}

/** R4.2+: digits only, seconds since the epoch (UTC). */
export function parseExpire(value: string): Result<number> {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (n <= MAX_EXPIRE) return ok(n);
  return err(
    ruleError(
      RuleCode.BadExpire,
      `expire ${q(value)} is not a time in seconds since the epoch`,
      /^\d+$/.test(value) ? 'the time is past the year 9999' : 'write seconds since 1970 (e.g. 1767225600); qvm-firewall words also take +seconds',
    ),
  );
}

const COMMENT_RE = /^[A-Za-z0-9:;,./\-_[\] ]+$/;

/** ASCII letters, digits, space and `:;,./-_[]` (dom0 `Comment`); never `=`. */
export function parseComment(value: string): Result<string> {
  if (COMMENT_RE.test(value)) return ok(value);
  if (value === '') {
    return err(ruleError(RuleCode.BadComment, 'comment is empty', 'leave comment out to have none'));
  }
  const bad = [...value].find((c) => !COMMENT_RE.test(c))!;
  const shown = /^[\x21-\x7e]$/.test(bad) ? `'${bad}'` : `U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return err(
    ruleError(
      RuleCode.BadComment,
      `comment ${q(value)} contains ${shown}`,
      bad === '='
        ? "a comment cannot contain '='; only letters, digits, spaces and :;,./-_[] are allowed"
        : 'only ASCII letters, digits, spaces and :;,./-_[] are allowed',
    ),
  );
}

export function portsNeedTcpUdp(proto: Proto | undefined): Diagnostic {
  return ruleError(
    RuleCode.PortsNeedTcpUdp,
    "dstports valid only for 'tcp' and 'udp' protocols",
    proto === undefined ? 'add proto=tcp' : 'remove dstports, or use proto=tcp or proto=udp',
  );
}

export function icmpTypeNeedsIcmp(): Diagnostic {
  return ruleError(RuleCode.IcmpTypeNeedsIcmp, "icmptype valid only for 'icmp' protocol", 'add proto=icmp');
}

/**
 * The checks dom0 runs once a rule is built (§2.2), in its order, then qnet's own refusals of
 * rules Qubes accepts but cannot enforce (§7.7, §7.8).
 */
export function checkRule(rule: Rule): Result<Rule> {
  if (rule.dstports && rule.proto !== 'tcp' && rule.proto !== 'udp') return err(portsNeedTcpUdp(rule.proto));
  if (rule.icmptype !== undefined && rule.proto !== 'icmp') return err(icmpTypeNeedsIcmp());
  if (rule.action === undefined) {
    return err(ruleError(RuleCode.MissingAction, 'the rule has no action', 'add action=accept or action=drop'));
  }
  if (rule.specialtarget === 'dns' && rule.proto === 'icmp') {
    return err(
      ruleError(
        RuleCode.DnsWithIcmp,
        'specialtarget=dns cannot be combined with proto=icmp',
        'DNS is udp and tcp port 53: leave proto out, or use proto=udp or proto=tcp (Qubes accepts this rule, then fails to load it and blocks the qube)',
      ),
    );
  }
  if (rule.specialtarget === 'dns' && rule.dstports && !(rule.dstports.start === 53 && rule.dstports.end === 53)) {
    return err(
      ruleError(
        RuleCode.DnsPortNot53,
        `specialtarget=dns only matches port 53, not ${portsText(rule.dstports)}`,
        'use dstports=53 or leave dstports out (Qubes silently ignores such a rule)',
      ),
    );
  }
  return ok(rule);
}

type Key = 'action' | 'proto' | 'dsthost' | 'dstports' | 'icmptype' | 'specialtarget' | 'expire' | 'comment';
export type { Key as RuleKey };

/** Parse one element value into `rule`; undefined on success. Shared with rule-words.ts. */
export function setElement(rule: Partial<Rule>, key: Key, value: string): Diagnostic | undefined {
  let r: Result<unknown>;
  switch (key) {
    case 'action':
      r = parseAction(value);
      break;
    case 'proto':
      r = parseProto(value);
      break;
    case 'dsthost':
      r = parseDstHost(value);
      break;
    case 'dstports':
      r = parseDstPorts(value);
      break;
    case 'icmptype':
      r = parseIcmpType(value);
      break;
    case 'specialtarget':
      r = parseSpecialTarget(value);
      break;
    case 'expire':
      r = parseExpire(value);
      break;
    case 'comment':
      r = parseComment(value);
      break;
  }
  if (!r.ok) return r.error;
  (rule as Record<Key, unknown>)[key] = r.value;
  return undefined;
}

const API_KEYS: ReadonlySet<string> = new Set(['action', 'proto', 'dsthost', 'dstports', 'icmptype', 'specialtarget', 'expire']);
const HOST_ALIASES: ReadonlySet<string> = new Set(['dst4', 'dst6', 'dstname']);

/**
 * One Admin API line, as dom0 `Rule.from_api_string` reads it (§2.2): everything after the first
 * `comment=` is the comment; the rest is stripped and split on single spaces into `key=value`;
 * options in any order, each once; `dst4`/`dst6`/`dstname` are `dsthost`, re-classified by content.
 */
export function parseApiRule(line: string): Result<Rule> {
  const at = line.indexOf('comment=');
  const options = at < 0 ? line : line.slice(0, at);
  const comment = at < 0 ? '' : line.slice(at + 'comment='.length);
  const rule: Partial<Rule> = {};
  if (comment !== '') {
    const e = setElement(rule, 'comment', comment);
    if (e) return err(e);
  }
  const stripped = pyStrip(options);
  const seen = new Set<string>();
  for (const token of stripped.split(' ')) {
    // qnet: Qubes fails with an unhandled ValueError on these (the client sees an empty reply).
    if (token === '') {
      return err(
        stripped === ''
          ? ruleError(RuleCode.Syntax, 'empty rule', 'a rule needs at least action=accept or action=drop')
          : ruleError(RuleCode.Syntax, 'empty option: two spaces in a row', 'separate options with exactly one space'),
      );
    }
    const eq = token.indexOf('=');
    if (eq < 0) {
      return err(ruleError(RuleCode.Syntax, `option ${q(token)} is not key=value`, `options are ${OPTION_LIST}`));
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    const canonical = HOST_ALIASES.has(key) ? 'dsthost' : key;
    if (seen.has(canonical)) {
      return err(ruleError(RuleCode.DuplicateOption, `option '${canonical}' is given twice`, 'give each option once'));
    }
    if (!API_KEYS.has(canonical)) {
      return err(ruleError(RuleCode.UnknownOption, `unknown option ${q(key)}`, `options are ${OPTION_LIST}`));
    }
    seen.add(canonical);
    const e = setElement(rule, canonical as Key, value);
    if (e) return err(e);
  }
  return checkRule(rule as Rule);
}

/**
 * An Admin API `Set` payload: one rule per line (Python `splitlines`), all or nothing; the error
 * carries the 0-based line as `ruleIndex`. An empty payload is zero rules (everything dropped).
 */
export function parseApiRules(payload: string): Result<Rule[]> {
  const rules: Rule[] = [];
  const lines = pySplitLines(payload);
  for (let i = 0; i < lines.length; i++) {
    const r = parseApiRule(lines[i]!);
    if (!r.ok) return err({ ...r.error, ruleIndex: i });
    rules.push(r.value);
  }
  return ok(rules);
}

/** firewall.xml property names, in the order Qubes writes them: `(order, name)`, §2.4. */
export const RULE_PROPERTY_NAMES = [
  'action',
  'comment',
  'expire',
  'dsthost',
  'proto',
  'specialtarget',
  'dstports',
  'icmptype',
] as const;
const PROPERTY_SET: ReadonlySet<string> = new Set(RULE_PROPERTY_NAMES);

/**
 * A `<rule>`'s `<property name=…>value</property>` list, in document order. Values are the same
 * `str()` forms as the API (dsthost re-classified by content; there is no dst4/dst6 in XML).
 */
export function parseRuleProperties(props: ReadonlyArray<readonly [string, string]>): Result<Rule> {
  const rule: Partial<Rule> = {};
  const seen: string[] = []; // at most 8 names: cheaper than a Set per rule at 100k rules
  for (const [name, value] of props) {
    if (!PROPERTY_SET.has(name)) {
      return err(
        ruleError(RuleCode.XmlUnknownProperty, `unknown property ${q(name)}`, `rule properties are ${RULE_PROPERTY_NAMES.join(', ')}`),
      );
    }
    // qnet: Qubes keeps the last of two equal properties; a hand-edited duplicate is refused.
    if (seen.includes(name)) {
      return err(ruleError(RuleCode.XmlDuplicateProperty, `property '${name}' is given twice`, 'keep one of them'));
    }
    seen.push(name);
    const e = setElement(rule, name as Key, value);
    if (e) return err(e);
  }
  return checkRule(rule as Rule);
}

/** The `<property>` list Qubes writes for a rule: set properties only, `str()` values, §2.4 order. */
export function ruleToProperties(rule: Rule): [string, string][] {
  const out: [string, string][] = [['action', rule.action]];
  if (rule.comment !== undefined && rule.comment !== '') out.push(['comment', rule.comment]);
  if (rule.expire !== undefined) out.push(['expire', `${rule.expire}`]);
  if (rule.dsthost) out.push(['dsthost', rule.dsthost.text]);
  if (rule.proto) out.push(['proto', rule.proto]);
  if (rule.specialtarget) out.push(['specialtarget', rule.specialtarget]);
  if (rule.dstports) out.push(['dstports', portsText(rule.dstports)]);
  if (rule.icmptype !== undefined) out.push(['icmptype', `${rule.icmptype}`]);
  return out;
}
