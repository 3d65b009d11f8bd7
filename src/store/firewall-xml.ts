// firewall.xml, byte for byte as qubes-core-admin writes it (qubes/firewall.py `Firewall.save`,
// lxml pretty_print, UTF-8, no declaration; qubes-firewall.md §2.4), and read in both versions:
// 2 (Qubes 4) and 1 (Qubes 3, converted as `load_v1`/`Rule.from_xml_v1` do, §2.2–2.3).
// Pure text in, text out: the store does the file I/O and adds the path to diagnostics.
import type { Action, Rule } from '../model/rule.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { err, ok, type Result } from '../model/result.js';
import { RuleCode, q, ruleError } from '../model/rule-codes.js';
import { checkRule, parseDstPorts, parseExpire, parseProto, parseRuleProperties, ruleToProperties } from '../model/rule-parse.js';
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
  const parts: string[] = ['<firewall version="2">\n  <rules>\n'];
  for (const rule of rules) {
    let s = '    <rule>\n      <properties>\n';
    for (const [name, value] of ruleToProperties(rule)) {
      // names are our constants; values of valid rules never need escaping (checked once, cheaply)
      s += `        <property name="${name}">${SAFE_TEXT.test(value) ? value : escapeText(value)}</property>\n`;
    }
    parts.push(s + '      </properties>\n    </rule>\n');
  }
  parts.push('  </rules>\n</firewall>\n');
  return parts.join('');
}

const SAFE_TEXT = /^[^&<>\r]*$/;

// lxml's text escaping. Validated values never need it; a writer that could emit broken XML would.
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
  const canonical = readCanonicalV2(text);
  if (canonical) return rulesFromProperties(canonical);
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
const RULE_OPEN = '    <rule>\n      <properties>\n';
const RULE_CLOSE = '      </properties>\n    </rule>\n';
const PROP_OPEN = '        <property name="';
const PROP_CLOSE = '</property>\n';
const PLAIN_NAME = /^[a-z]+$/;
// Every value a valid rule can hold; anything else (entities, CR, control characters) takes the
// general reader, so both paths give the same answer for every input.
const PLAIN_VALUE = /^[A-Za-z0-9:;,./\-_[\] ]*$/;

/**
 * Fast path: the exact bytes `formatFirewallXml` (and Qubes) write, read with `startsWith` and
 * `indexOf` only. Returns undefined at the first deviation, and the general XML reader takes over.
 */
function readCanonicalV2(text: string): PropertyList[] | undefined {
  if (text === EMPTY) return [];
  if (!text.startsWith(HEAD) || !text.endsWith(TAIL)) return undefined;
  const end = text.length - TAIL.length;
  const out: PropertyList[] = [];
  let pos = HEAD.length;
  while (pos < end) {
    if (!text.startsWith(RULE_OPEN, pos)) return undefined;
    pos += RULE_OPEN.length;
    const props: PropertyList = [];
    while (text.startsWith(PROP_OPEN, pos)) {
      pos += PROP_OPEN.length;
      const close = text.indexOf('">', pos);
      if (close < 0) return undefined;
      const name = text.slice(pos, close);
      if (!PLAIN_NAME.test(name)) return undefined;
      pos = close + 2;
      const lt = text.indexOf('<', pos);
      if (lt < 0 || !text.startsWith(PROP_CLOSE, lt)) return undefined;
      const value = text.slice(pos, lt);
      if (!PLAIN_VALUE.test(value)) return undefined;
      props.push([name, value]);
      pos = lt + PROP_CLOSE.length;
    }
    if (!text.startsWith(RULE_CLOSE, pos)) return undefined;
    pos += RULE_CLOSE.length;
    out.push(props);
  }
  return pos === end ? out : undefined;
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
