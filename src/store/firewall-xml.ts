// firewall.xml, byte for byte as qubes-core-admin writes it (qubes/firewall.py `Firewall.save`,
// lxml pretty_print, UTF-8, no declaration; qubes-firewall.md §2.4), and read in both versions:
// 2 (Qubes 4) and 1 (Qubes 3, converted as `load_v1`/`Rule.from_xml_v1` do, §2.2–2.3).
// Pure text in, text out: the store does the file I/O and adds the path to diagnostics.
import type { Action, DstHost, Rule } from '../model/rule.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { err, ok, type Result } from '../model/result.js';
import { RuleCode, q, ruleError } from '../model/rule-codes.js';
import { MAX_EXPIRE, MAX_PORT, RULE_PROPERTY_NAMES, checkRule, parseComment, parseDstPorts, parseExpire, parseProto, parseRuleProperties } from '../model/rule-parse.js';
import { portsText } from '../model/rule-format.js';
import { parseHost } from '../model/rule-host.js';
import { pyInt } from '../model/rule-python.js';
import { scanXml, type XmlElement } from './firewall-xml-scan.js';

export interface FirewallXml {
  version: 1 | 2;
  rules: Rule[];
}

const EMPTY = '<firewall version="2">\n  <rules/>\n</firewall>\n';

/**
 * The version 2 file for `rules`, as lxml pretty-prints it: two-space indent, one `<property>` per
 * set property in `ruleToProperties` order, a trailing newline, `<rules/>` when empty. Expired
 * rules are written as given: Qubes drops them on save, which is the store's decision.
 */
export function formatFirewallXml(rules: readonly Rule[]): string {
  if (rules.length === 0) return EMPTY;
  const parts: string[] = new Array(rules.length + 2);
  parts[0] = HEAD;
  for (let i = 0; i < rules.length; i++) parts[i + 1] = ruleXml(rules[i]!);
  parts[rules.length + 1] = TAIL;
  return parts.join('');
}

/**
 * The bytes of `rules` appended to a file `prefix` whose bytes are exactly
 * `formatFirewallXml(prefixRules)` (the store knows when: `readFirewallXml(…).canonical`): equal to
 * `formatFirewallXml([...prefixRules, ...rules])` without formatting the prefix again.
 */
export function appendFirewallXml(prefix: Buffer, rules: readonly Rule[]): Buffer {
  if (rules.length === 0) return prefix;
  const parts: string[] = new Array(rules.length + 1);
  for (let i = 0; i < rules.length; i++) parts[i] = ruleXml(rules[i]!);
  parts[rules.length] = TAIL;
  const added = Buffer.from(parts.join(''), 'utf8');
  const head = prefix.equals(EMPTY_BYTES) ? HEAD_BYTES : prefix.subarray(0, prefix.length - TAIL_BYTES.length);
  if (head !== HEAD_BYTES && !prefix.subarray(head.length).equals(TAIL_BYTES)) throw new Error('appendFirewallXml: prefix is not a version 2 file');
  return Buffer.concat([head, added], head.length + added.length);
}

/** One `<rule>` element, as `formatFirewallXml` writes it: `ruleToProperties` order, `str()` values. */
function ruleXml(rule: Rule): string {
  // Template pieces are constants; values of valid rules never need escaping (checked cheaply).
  let s = RULE_OPEN + P_ACTION + text(`${rule.action}`) + PROP_CLOSE;
  if (rule.comment !== undefined && rule.comment !== '') s += P_COMMENT + text(rule.comment) + PROP_CLOSE;
  if (rule.expire !== undefined) s += P_EXPIRE + text(`${rule.expire}`) + PROP_CLOSE;
  if (rule.dsthost) s += P_DSTHOST + text(rule.dsthost.text) + PROP_CLOSE;
  if (rule.proto) s += P_PROTO + text(rule.proto) + PROP_CLOSE;
  if (rule.specialtarget) s += P_SPECIALTARGET + text(rule.specialtarget) + PROP_CLOSE;
  if (rule.dstports) s += P_DSTPORTS + text(portsText(rule.dstports)) + PROP_CLOSE;
  if (rule.icmptype !== undefined) s += P_ICMPTYPE + text(`${rule.icmptype}`) + PROP_CLOSE;
  return s + RULE_CLOSE;
}

/** lxml's text escaping, for `&`, `<`, `>` and CR. Validated values never need it. */
function text(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x26 || c === 0x3c || c === 0x3e || c === 0x0d) return escapeText(s);
  }
  return s;
}

function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

const VERSION_HINT = 'qnet reads firewall.xml version 2 (Qubes 4) and version 1 (Qubes 3)';

/**
 * Read a firewall.xml. The root's `version` attribute (default `1`, as in Qubes) picks the format;
 * the root element's name is not checked, as Qubes does not. Errors name the rule by its 0-based
 * position among the `<rule>` elements (`ruleIndex`), as `qvm-firewall` numbers rules.
 */
export function parseFirewallXml(text: string): Result<FirewallXml> {
  const r = readFirewallXml(text);
  return r.ok ? ok({ version: r.value.version, rules: r.value.rules }) : r;
}

/**
 * `parseFirewallXml`, and whether `text` is exactly `formatFirewallXml(rules)` (`canonical`): then
 * a writer may append rules to these bytes instead of formatting the whole list again.
 *
 * Files qnet and Qubes write take a fast path (`readCanonicalV2`); anything else, and any file
 * with a problem, is read by the general XML reader, which gives the error.
 */
export function readFirewallXml(text: string): Result<FirewallXml & { canonical: boolean }> {
  const fast = readCanonicalV2(text);
  if (fast) return ok({ version: 2, rules: fast, canonical: true });
  const r = readGeneral(text);
  return r.ok ? ok({ ...r.value, canonical: false }) : r;
}

function readGeneral(text: string): Result<FirewallXml> {
  const doc = scanXml(text);
  if (!doc.ok) {
    const e = doc.error;
    return err(
      ruleError(
        RuleCode.XmlMalformed,
        `not well-formed XML: ${e.message} (line ${e.line}, column ${e.column})`,
        'fix the file by hand, or write it again with qnet',
      ),
    );
  }
  const root = doc.value;
  const version = root.attrs.get('version') ?? '1';
  if (version === '2') return parseV2(root);
  if (version === '1') return parseV1(root);
  return err(ruleError(RuleCode.XmlVersion, `unsupported firewall.xml version ${q(version)}`, VERSION_HINT));
}

function structure(message: string, ruleIndex?: number): Result<never> {
  const d = ruleError(RuleCode.XmlStructure, message, 'a rule is <rule><properties><property name="action">accept</property>…</properties></rule>');
  return err(ruleIndex === undefined ? d : { ...d, ruleIndex });
}

type PropertyList = [string, string][];

function parseV2(root: XmlElement): Result<FirewallXml> {
  // Qubes: xml_root.find('rules'), i.e. the first <rules> child.
  const list = root.children.find((c) => c.name === 'rules');
  if (!list) return structure(`no <rules> element in <${root.name}>`);
  const all: PropertyList[] = [];
  const children = list.children;
  for (let i = 0; i < children.length; i++) {
    const el = children[i]!;
    if (el.name !== 'rule') return structure(`unexpected <${el.name}> in <rules>`, i);
    // Qubes: xpath './properties/property'; the value is `node.get('ref') or node.text`.
    const props: PropertyList = [];
    for (const group of el.children) {
      if (group.name !== 'properties') continue;
      for (const p of group.children) {
        if (p.name !== 'property') continue;
        const name = p.attrs.get('name');
        if (name === undefined) return structure('a <property> has no name attribute', i);
        props.push([name, p.attrs.get('ref') || p.text]);
      }
    }
    all.push(props);
  }
  return rulesFromProperties(all);
}

function rulesFromProperties(all: readonly PropertyList[]): Result<FirewallXml> {
  const rules: Rule[] = new Array(all.length);
  for (let i = 0; i < all.length; i++) {
    const r = parseRuleProperties(all[i]!);
    if (!r.ok) return err(atRule(r.error, i));
    rules[i] = r.value;
  }
  return ok({ version: 2, rules });
}

const HEAD = '<firewall version="2">\n  <rules>\n';
const TAIL = '  </rules>\n</firewall>\n';
const EMPTY_BYTES = Buffer.from(EMPTY);
const HEAD_BYTES = Buffer.from(HEAD);
const TAIL_BYTES = Buffer.from(TAIL);
const RULE_OPEN = '    <rule>\n      <properties>\n';
const RULE_CLOSE = '      </properties>\n    </rule>\n';
const PROP_OPEN = '        <property name="';
const PROP_CLOSE = '</property>\n';
// `        <property name="NAME">` for each property, in `ruleToProperties` (rank) order.
const P_ACTION = `${PROP_OPEN}action">`;
const P_COMMENT = `${PROP_OPEN}comment">`;
const P_EXPIRE = `${PROP_OPEN}expire">`;
const P_DSTHOST = `${PROP_OPEN}dsthost">`;
const P_PROTO = `${PROP_OPEN}proto">`;
const P_SPECIALTARGET = `${PROP_OPEN}specialtarget">`;
const P_DSTPORTS = `${PROP_OPEN}dstports">`;
const P_ICMPTYPE = `${PROP_OPEN}icmptype">`;
// The names after `<property name="`, with the `">` that closes the start tag, by rank.
const NAME_TOKENS = RULE_PROPERTY_NAMES.map((n) => `${n}">`);
/** Index into RULE_PROPERTY_NAMES (Qubes' write order). */
const enum Rank {
  Action,
  Comment,
  Expire,
  DstHost,
  Proto,
  SpecialTarget,
  DstPorts,
  IcmpType,
}

/**
 * Fast path: exactly the bytes `formatFirewallXml` writes (and Qubes, §2.4), read with `startsWith`
 * and `indexOf`, rules built directly. Every value is validated: the common shapes by a scan of
 * its characters, the rest by the rule parsers themselves. It returns undefined at the first
 * deviation of any kind — layout, property order, a value that would be written differently
 * (`0080`, `443-443`, an address without `/prefix`, an entity), an invalid value or rule — and
 * the general reader takes over and gives the error. So when it returns rules, the text is
 * exactly `formatFirewallXml(rules)`.
 */
function readCanonicalV2(text: string): Rule[] | undefined {
  if (text === EMPTY) return [];
  if (!text.startsWith(HEAD) || !text.endsWith(TAIL)) return undefined;
  const end = text.length - TAIL.length;
  const out: Rule[] = [];
  let pos = HEAD.length;
  while (pos < end) {
    if (!text.startsWith(RULE_OPEN, pos)) return undefined;
    pos += RULE_OPEN.length;
    // The first property is always the action.
    if (!text.startsWith(P_ACTION, pos)) return undefined;
    pos += P_ACTION.length;
    let action: Action;
    if (text.startsWith('accept</', pos)) action = 'accept';
    else if (text.startsWith('drop</', pos)) action = 'drop';
    else return undefined;
    pos += action.length;
    if (!text.startsWith(PROP_CLOSE, pos)) return undefined;
    pos += PROP_CLOSE.length;
    const rule: Rule = { action };
    let last: number = Rank.Action;
    while (text.startsWith(PROP_OPEN, pos)) {
      pos += PROP_OPEN.length;
      const rank = rankAt(text, pos);
      if (rank <= last) return undefined; // unknown, out of order or twice
      last = rank;
      pos += NAME_TOKENS[rank]!.length;
      const lt = text.indexOf('<', pos);
      if (lt < 0 || !text.startsWith(PROP_CLOSE, lt)) return undefined;
      if (!setCanonical(rule, rank, text, pos, lt)) return undefined;
      pos = lt + PROP_CLOSE.length;
    }
    if (!text.startsWith(RULE_CLOSE, pos)) return undefined;
    pos += RULE_CLOSE.length;
    if (!checkRule(rule).ok) return undefined;
    out.push(rule);
  }
  // `<rules>` with no rule in it is not what the formatter writes (it writes `<rules/>`).
  return pos === end && out.length > 0 ? out : undefined;
}

/** The rank of the property name at `pos` (followed by `">`), or -1. */
function rankAt(text: string, pos: number): number {
  let rank: number;
  switch (text.charCodeAt(pos)) {
    case 0x61 /* a */:
      rank = Rank.Action;
      break;
    case 0x63 /* c */:
      rank = Rank.Comment;
      break;
    case 0x65 /* e */:
      rank = Rank.Expire;
      break;
    case 0x64 /* d */:
      rank = text.charCodeAt(pos + 3) === 0x68 /* h */ ? Rank.DstHost : Rank.DstPorts;
      break;
    case 0x70 /* p */:
      rank = Rank.Proto;
      break;
    case 0x73 /* s */:
      rank = Rank.SpecialTarget;
      break;
    case 0x69 /* i */:
      rank = Rank.IcmpType;
      break;
    default:
      return -1;
  }
  return text.startsWith(NAME_TOKENS[rank]!, pos) ? rank : -1;
}

/** Set the value text[from, to) if it is valid and in the form the formatter writes; else false. */
function setCanonical(rule: Rule, rank: number, text: string, from: number, to: number): boolean {
  switch (rank) {
    case Rank.Comment: {
      const r = parseComment(text.slice(from, to));
      if (!r.ok) return false;
      rule.comment = r.value;
      return true;
    }
    case Rank.Expire: {
      const n = canonicalUint(text, from, to, 12);
      if (n < 0 || n > MAX_EXPIRE) return false;
      rule.expire = n;
      return true;
    }
    case Rank.DstHost: {
      const h = canonicalHost(text.slice(from, to));
      if (!h) return false;
      rule.dsthost = h;
      return true;
    }
    case Rank.Proto: {
      const n = to - from;
      if (n === 3 && text.startsWith('tcp', from)) rule.proto = 'tcp';
      else if (n === 3 && text.startsWith('udp', from)) rule.proto = 'udp';
      else if (n === 4 && text.startsWith('icmp', from)) rule.proto = 'icmp';
      else return false;
      return true;
    }
    case Rank.SpecialTarget:
      if (to - from !== 3 || !text.startsWith('dns', from)) return false;
      rule.specialtarget = 'dns';
      return true;
    case Rank.DstPorts: {
      // Look for the range dash within the value only: indexOf would scan the rest of a 24 MB file
      // for every single-port rule (quadratic; 100k rules took 24 s).
      let dash = -1;
      for (let i = from; i < to; i++)
        if (text.charCodeAt(i) === 0x2d) {
          dash = i;
          break;
        }
      if (dash < 0) {
        const n = canonicalUint(text, from, to, 5);
        if (n < 0 || n > MAX_PORT) return false;
        rule.dstports = { start: n, end: n };
        return true;
      }
      const start = canonicalUint(text, from, dash, 5);
      const end = canonicalUint(text, dash + 1, to, 5);
      // `N-N` is written as `N`; a reversed range is invalid.
      if (start < 0 || end > MAX_PORT || !(start < end)) return false;
      rule.dstports = { start, end };
      return true;
    }
    case Rank.IcmpType: {
      const n = canonicalUint(text, from, to, 3);
      if (n < 0 || n > 255) return false;
      rule.icmptype = n;
      return true;
    }
  }
  return false;
}

/** ASCII digits text[from, to) without a leading zero (as `${n}` writes them), at most `max` of them; else -1. */
function canonicalUint(text: string, from: number, to: number, max: number): number {
  const len = to - from;
  if (len < 1 || len > max) return -1;
  if (len > 1 && text.charCodeAt(from) === 0x30) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * A dsthost value that `parseHost` accepts and keeps as written (`text` equal to the value). The
 * two common shapes are checked here: `a.b.c.d/N` and DNS names whose last label cannot be read
 * as a number; everything else (IPv6, other names) goes through `parseHost` itself.
 */
function canonicalHost(v: string): DstHost | undefined {
  const slash = v.indexOf('/');
  if (slash >= 0) {
    const prefix = simpleIPv4Prefix(v, slash);
    if (prefix >= 0) return { type: 'dst4', text: v, addr: v.slice(0, slash), prefix };
  } else if (isPlainHostName(v)) return { type: 'dsthost', text: v };
  const h = parseHost(v);
  // Without a `/prefix`, an address reads as `/32` or `/128`: written differently, so not canonical.
  return h.ok && h.value.text === v ? h.value : undefined;
}

/**
 * For `a.b.c.d/N` (four decimal octets 0-255 without leading zeros, N of one or two digits, at
 * most 32): N. Otherwise -1, which does not mean invalid: parseHost decides.
 */
function simpleIPv4Prefix(v: string, slash: number): number {
  let i = 0;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (v.charCodeAt(i) !== 0x2e /* . */) return -1;
      i++;
    }
    const start = i;
    let n = 0;
    while (i < slash && i - start < 3) {
      const d = v.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
      i++;
    }
    const len = i - start;
    if (len === 0 || n > 255 || (len > 1 && v.charCodeAt(start) === 0x30)) return -1;
  }
  if (i !== slash) return -1;
  const len = v.length - slash - 1;
  if (len < 1 || len > 2) return -1;
  let p = 0;
  for (let k = slash + 1; k < v.length; k++) {
    const d = v.charCodeAt(k) - 0x30;
    if (d < 0 || d > 9) return -1;
    p = p * 10 + d;
  }
  return p <= 32 ? p : -1;
}

/**
 * A DNS name `checkHostName` accepts, checked in one pass: lowercase letters, digits, `-._`;
 * labels of 1-63 characters not starting or ending with `-`; at most 253 characters; and a last
 * label with a character outside `0-9a-fx`, so that no address parser (inet_pton, inet_aton) can
 * read the name as an address. False does not mean invalid: parseHost decides.
 */
function isPlainHostName(v: string): boolean {
  const n = v.length;
  if (n === 0 || n > 253) return false;
  let labelStart = 0;
  let lastHasLetter = false;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? v.charCodeAt(i) : 0x2e; // a dot after the end closes the last label
    if (c === 0x2e /* . */) {
      const len = i - labelStart;
      if (len < 1 || len > 63) return false;
      if (v.charCodeAt(labelStart) === 0x2d || v.charCodeAt(i - 1) === 0x2d) return false;
      if (i === n) return lastHasLetter;
      labelStart = i + 1;
      lastHasLetter = false;
      continue;
    }
    if (c >= 0x61 && c <= 0x7a) {
      // a-z; a-f and x can spell hex (0x1f), so they do not count
      if (!(c <= 0x66 || c === 0x78)) lastHasLetter = true;
    } else if (c === 0x2d /* - */ || c === 0x5f /* _ */) lastHasLetter = true;
    else if (!(c >= 0x30 && c <= 0x39)) return false;
  }
  return false; // not reached
}

function atRule(d: Diagnostic, ruleIndex: number): Diagnostic {
  return { ...d, ruleIndex };
}

/**
 * Qubes 3 `<QubesFirewallRules policy= dns= icmp= …>` (`Firewall.load_v1`): an accept/drop rule
 * for DNS and one for ICMP (their attributes default to the policy), then every `<rule>` with the
 * action opposite to the policy, then `action=accept` if the policy was allow. `yumProxy` and
 * other attributes are ignored, as in Qubes.
 */
function parseV1(root: XmlElement): Result<FirewallXml> {
  const policy = root.attrs.get('policy');
  if (policy !== 'allow' && policy !== 'deny') {
    return err(
      ruleError(
        RuleCode.XmlV1,
        policy === undefined
          ? `version 1 firewall.xml: <${root.name}> has no policy attribute`
          : `version 1 firewall.xml: policy ${q(policy)} is not allow or deny`,
        VERSION_HINT,
      ),
    );
  }
  const special = (key: string): Action => ((root.attrs.get(key) ?? policy) === 'allow' ? 'accept' : 'drop');
  const rules: Rule[] = [
    { action: special('dns'), specialtarget: 'dns' },
    { action: special('icmp'), proto: 'icmp' },
  ];
  const ruleAction: Action = policy === 'allow' ? 'drop' : 'accept';
  const children = root.children;
  for (let i = 0; i < children.length; i++) {
    const el = children[i]!;
    if (el.name !== 'rule') return structure(`unexpected <${el.name}> in version 1 <${root.name}>`, i);
    const r = ruleFromV1(el.attrs, ruleAction);
    if (!r.ok) return err(atRule(r.error, i));
    rules.push(r.value);
  }
  if (policy === 'allow') rules.push({ action: 'accept' });
  return ok({ version: 1, rules });
}

/**
 * `Rule.from_xml_v1`: address+netmask, port[-toport], proto (`any` = none; tcp if a port is given
 * without one), expire. Empty attributes count as absent, as Python's truthiness has it.
 *
 * `netmask="0"`: Qubes turns it into /32 (`prefixlen or 32`, quirk §7.2), so an R3 "any address"
 * rule becomes a one-address rule. qnet keeps /0, what R3 meant and what the Qubes backup
 * restore (qubesadmin/backup) does.
 */
function ruleFromV1(attrs: ReadonlyMap<string, string>, action: Action): Result<Rule> {
  const rule: Rule = { action };
  const netmaskText = attrs.get('netmask');
  const netmask = netmaskText === undefined ? 32 : pyInt(netmaskText);
  if (netmask === undefined) {
    return err(ruleError(RuleCode.XmlV1, `version 1 rule: netmask ${q(netmaskText!)} is not a number`, 'netmask is a prefix length, e.g. 24'));
  }
  const address = attrs.get('address');
  if (address) {
    const h = parseHost(address, netmask);
    if (!h.ok) return h;
    rule.dsthost = h.value;
  }
  const port = attrs.get('port');
  const toport = attrs.get('toport');
  const ports = port && toport ? `${port}-${toport}` : port || undefined;
  let proto = attrs.get('proto') || undefined;
  if (ports && !proto) proto = 'tcp';
  if (proto === 'any') proto = undefined;
  if (ports) {
    const p = parseDstPorts(ports);
    if (!p.ok) return p;
    rule.dstports = p.value;
  }
  if (proto) {
    const p = parseProto(proto);
    if (!p.ok) return p;
    rule.proto = p.value;
  }
  const expire = attrs.get('expire');
  if (expire) {
    const e = parseExpire(expire);
    if (!e.ok) return e;
    rule.expire = e.value;
  }
  return checkRule(rule);
}
