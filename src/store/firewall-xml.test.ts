import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import { appendFirewallXml, formatFirewallXml, parseFirewallXml, readFirewallXml, type FirewallXml } from './firewall-xml.js';
import { scanXml } from './firewall-xml-scan.js';
import { RuleCode, parseApiRule, parseRuleProperties, ruleToProperties } from '../model/rule-parse.js';
import { formatApiRule } from '../model/rule-format.js';
import type { Result } from '../model/result.js';
import type { Rule } from '../model/rule.js';
import { arbRule } from '../model/rule-arbitraries.test-helpers.js';

// Runs from src/ (tsx) and from dist/src/ (npm test): find the repository's test/ either way.
const ROOT = new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(`test/fixtures/firewall/${name}`, ROOT), 'utf8');

function rules(...lines: string[]): Rule[] {
  return lines.map((l) => {
    const r = parseApiRule(l);
    if (!r.ok) assert.fail(r.error.message);
    return r.value;
  });
}
function read(text: string): FirewallXml {
  const r = parseFirewallXml(text);
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return r.value;
}
function fails(r: Result<unknown>, code: string, ruleIndex?: number): string {
  if (r.ok) assert.fail(`expected ${code}`);
  assert.equal(r.error.code, code, r.error.message);
  assert.equal(r.error.ruleIndex, ruleIndex, r.error.message);
  return r.error.message;
}
const api = (x: FirewallXml) => x.rules.map(formatApiRule);

test('an empty rule list is written as <rules/>', () => {
  assert.equal(formatFirewallXml([]), '<firewall version="2">\n  <rules/>\n</firewall>\n');
  assert.deepEqual(read('<firewall version="2">\n  <rules/>\n</firewall>\n'), { version: 2, rules: [] });
});

test('the reference file reads and writes back byte for byte', () => {
  const text = fixture('reference-v2.xml');
  const fw = read(text);
  assert.equal(fw.version, 2);
  assert.deepEqual(api(fw), ['action=accept dsthost=qubes-os.org proto=tcp dstports=443-443', 'action=accept dst4=192.168.0.0/24 comment=Allow LAN', 'action=drop']);
  assert.equal(formatFirewallXml(fw.rules), text);
});

test('every property, in (order, name) order, with str() values', () => {
  const xml = formatFirewallXml(rules('action=drop proto=udp dstports=1-1024 dst6=2001:DB8::/32 expire=2099450306 comment=x y', 'action=accept proto=icmp icmptype=008 dst4=10.0.0.1', 'action=accept specialtarget=dns'));
  assert.equal(
    xml,
    `<firewall version="2">
  <rules>
    <rule>
      <properties>
        <property name="action">drop</property>
        <property name="comment">x y</property>
        <property name="expire">2099450306</property>
        <property name="dsthost">2001:DB8::/32</property>
        <property name="proto">udp</property>
        <property name="dstports">1-1024</property>
      </properties>
    </rule>
    <rule>
      <properties>
        <property name="action">accept</property>
        <property name="dsthost">10.0.0.1/32</property>
        <property name="proto">icmp</property>
        <property name="icmptype">8</property>
      </properties>
    </rule>
    <rule>
      <properties>
        <property name="action">accept</property>
        <property name="specialtarget">dns</property>
      </properties>
    </rule>
  </rules>
</firewall>
`,
  );
});

test('text is escaped as lxml does, so even an invalid rule built in code cannot break the file', () => {
  const xml = formatFirewallXml([{ action: 'accept', comment: 'a<b&c>d\r' }]);
  assert.match(xml, /<property name="comment">a&lt;b&amp;c&gt;d&#13;<\/property>/);
  // well-formed: the reader gets to the comment check
  fails(parseFirewallXml(xml), RuleCode.BadComment, 0);
});

test('write → read → write gives identical bytes (property)', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 8 }), (rs) => {
      const xml = formatFirewallXml(rs);
      const back = parseFirewallXml(xml);
      assert.ok(back.ok);
      assert.deepEqual(back.value.rules, rs);
      assert.equal(formatFirewallXml(back.value.rules), xml);
    }),
    { numRuns: 300 },
  );
});

test('hand-edited files: declaration, comments, quotes, whitespace, references, CDATA', () => {
  const text = `<?xml version='1.0' encoding='UTF-8'?>
<!-- edited by hand -->
<firewall version='2' ><rules>
  <rule><properties>
    <property name = "dstports">4&#52;3</property><property name="proto"><![CDATA[tcp]]></property>
    <!-- a comment between properties -->
    <property name="action">acc&#x65;pt</property>
  </properties></rule>
  <rule><properties><property name="action">drop</property><property name="comment">a &gt; b</property></properties></rule>
</rules></firewall>`;
  const r = parseFirewallXml(text);
  // '>' is not a comment character: the second rule is refused, at index 1
  fails(r, RuleCode.BadComment, 1);
  const ok = read(text.replace('a &gt; b', 'a b'));
  assert.deepEqual(api(ok), ['action=accept proto=tcp dstports=443-443', 'action=drop comment=a b']);
});

test('the canonical fast path and the general reader agree', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 6 }), (rs) => {
      const xml = formatFirewallXml(rs);
      // An XML declaration forces the general reader over the same content.
      const viaScanner = parseFirewallXml(`<?xml version="1.0"?>\n${xml}`);
      assert.ok(viaScanner.ok);
      assert.deepEqual(viaScanner.value.rules, rs);
    }),
    { numRuns: 200 },
  );
});

test('the XML reader agrees with fast-xml-parser on the property lists', () => {
  const fxp = new XMLParser({ ignoreAttributes: false, parseTagValue: false, trimValues: false, isArray: (n) => ['rule', 'property'].includes(n) });
  fc.assert(
    fc.property(fc.array(arbRule, { minLength: 1, maxLength: 6 }), fc.constantFrom('', '\n', '  ', '<!-- c -->'), (rs, filler) => {
      const xml = formatFirewallXml(rs).replaceAll('</property>\n', `</property>${filler}\n`);
      const tree = fxp.parse(xml) as { firewall: { rules: { rule: { properties: { property: Record<string, string>[] } }[] } } };
      const expected = tree.firewall.rules.rule.map((r) => r.properties.property.map((p) => [p['@_name'], p['#text'] ?? '']));
      const mine = scanXml(xml);
      assert.ok(mine.ok);
      const got = mine.value.children[0]!.children.map((r) => r.children[0]!.children.map((p) => [p.attrs.get('name'), p.text]));
      assert.deepEqual(got, expected);
      assert.deepEqual(read(xml).rules, rs);
    }),
    { numRuns: 150 },
  );
});

test('malformed XML: which line and column', () => {
  const cases: [string, RegExp][] = [
    ['', /no root element/],
    ['<firewall version="2"><rules></firewall>', /does not match <rules>/],
    ['<firewall version="2">\n  <rules>\n    <rule>\n', /<rule> is not closed/],
    ['<firewall version="2"><rules/></firewall><x/>', /second root/],
    ['<firewall version="2" version="2"><rules/></firewall>', /given twice/],
    ['<firewall version="2"><rules/></firewall>junk', /text outside/],
    ['<!DOCTYPE x [<!ENTITY a "b">]><firewall version="2"><rules/></firewall>', /DOCTYPE/],
    ['<firewall version="2"><rules><rule><properties><property name="comment">a & b</property></properties></rule></rules></firewall>', /'&'/],
    ['<firewall version="2"><rules><rule><properties><property name="comment">a\u0001</property></properties></rule></rules></firewall>', /U\+0001/],
    ['<firewall version=2><rules/></firewall>', /malformed start tag/],
    [' <?xml version="1.0"?><firewall/>', /declaration must come first/],
  ];
  for (const [text, re] of cases) assert.match(fails(parseFirewallXml(text), RuleCode.XmlMalformed), re, text);
  assert.match(fails(parseFirewallXml('<firewall version="2">\n  <rules>\n    <rule x>\n'), RuleCode.XmlMalformed), /line 3, column 10/);
});

test('structure and version errors', () => {
  assert.equal(fails(parseFirewallXml('<firewall version="3"><rules/></firewall>'), RuleCode.XmlVersion), "unsupported firewall.xml version '3'");
  fails(parseFirewallXml('<firewall version="2"/>'), RuleCode.XmlStructure);
  fails(parseFirewallXml('<firewall version="2"><rules><rule/><bogus/></rules></firewall>'), RuleCode.XmlStructure, 1);
  fails(parseFirewallXml('<firewall version="2"><rules><rule><properties><property>accept</property></properties></rule></rules></firewall>'), RuleCode.XmlStructure, 0);
  // a <rule> with no properties has no action
  fails(parseFirewallXml('<firewall version="2"><rules><rule/></rules></firewall>'), RuleCode.MissingAction, 0);
});

test('bad rules say which rule (0-based) and what is wrong', () => {
  const ok = formatFirewallXml(rules('action=accept', 'action=drop'));
  const unknown = ok.replace('<property name="action">drop</property>', '<property name="action">drop</property><property name="dst4">1.2.3.4</property>');
  assert.equal(fails(parseFirewallXml(unknown), RuleCode.XmlUnknownProperty, 1), "unknown property 'dst4'");
  fails(parseFirewallXml(ok.replace('>drop<', '> drop<')), RuleCode.BadAction, 1);
  fails(parseFirewallXml(ok.replace('>drop<', '>reject<')), RuleCode.BadAction, 1);
  fails(parseFirewallXml(ok.replace('>accept<', '><')), RuleCode.BadAction, 0);
  const ports = ok.replace('<property name="action">drop</property>', '<property name="action">drop</property><property name="dstports">80</property>');
  fails(parseFirewallXml(ports), RuleCode.PortsNeedTcpUdp, 1);
});

test('version 1 (R3), deny policy: dns/icmp rules, then rules that accept', () => {
  const fw = read(fixture('r3-deny.xml'));
  assert.equal(fw.version, 1);
  assert.deepEqual(api(fw), [
    'action=accept specialtarget=dns',
    'action=drop proto=icmp',
    'action=accept dst4=192.168.0.0/24 proto=tcp dstports=22-22',
    'action=accept dsthost=qubes-os.org proto=tcp dstports=80-443',
    'action=accept expire=2099450306 dst4=10.1.2.3/32 proto=udp dstports=53-53',
    'action=accept dst6=fd00::1/64',
  ]);
  // saving writes version 2
  assert.match(formatFirewallXml(fw.rules), /^<firewall version="2">/);
});

test('version 1 (R3), allow policy: rules drop, then a final accept', () => {
  assert.deepEqual(api(read(fixture('r3-allow.xml'))), [
    'action=accept specialtarget=dns',
    'action=drop proto=icmp',
    'action=drop dst4=203.0.113.7/32',
    'action=drop dst4=0.0.0.0/0 proto=udp dstports=1900-1900',
    'action=accept',
  ]);
});

test('version 1 details: default version, empty attributes, netmask for names and IPv6, errors', () => {
  const v1 = (attrs: string, root = 'policy="deny"') => parseFirewallXml(`<QubesFirewallRules ${root}><rule ${attrs}/></QubesFirewallRules>`);
  const one = (attrs: string) => {
    const r = v1(attrs);
    if (!r.ok) assert.fail(r.error.message);
    return formatApiRule(r.value.rules[2]!);
  };
  assert.equal(one('address="x.org" netmask="8"'), 'action=accept dsthost=x.org');
  assert.equal(one('address="::1"'), 'action=accept dst6=::1/32'); // Qubes' default netmask is 32, for IPv6 too
  assert.equal(one('address="1.2.3.0/24" netmask="8"'), 'action=accept dst4=1.2.3.0/24');
  assert.equal(one('address="" port="" proto="" expire=""'), 'action=accept');
  assert.equal(one('toport="99"'), 'action=accept');
  assert.equal(one('port="53" proto="udp"'), 'action=accept proto=udp dstports=53-53');
  assert.equal(one('proto="icmp"'), 'action=accept proto=icmp');
  fails(v1('port="80" proto="any"'), RuleCode.PortsNeedTcpUdp, 0);
  fails(v1('address="1.2.3.4" netmask="x"'), RuleCode.XmlV1, 0);
  fails(v1('address="1.2.3.4" netmask="33"'), RuleCode.BadPrefix, 0);
  fails(v1('port="80" toport="70"'), RuleCode.BadPorts, 0);
  fails(v1('expire="soon"'), RuleCode.BadExpire, 0);
  fails(v1('', ''), RuleCode.XmlV1);
  fails(v1('', 'policy="allowed"'), RuleCode.XmlV1);
  fails(parseFirewallXml('<firewall version="1" policy="deny"><foo/></firewall>'), RuleCode.XmlStructure, 0);
  // the rule order and the ruleIndex of a bad one
  fails(parseFirewallXml('<x policy="allow"><rule/><rule address="A.B"/></x>'), RuleCode.BadHostName, 1);
  assert.deepEqual(ruleToProperties(read('<x policy="deny" dns="deny" icmp="allow"/>').rules[0]!), [['action', 'drop'], ['specialtarget', 'dns']]);
});

/** The general reader's answer for the same text (an XML declaration keeps the fast path out). */
function general(text: string): Result<FirewallXml> {
  return parseFirewallXml(`<?xml version="1.0"?>\n${text}`);
}
const withProps = (...props: [string, string][]) =>
  `<firewall version="2">\n  <rules>\n    <rule>\n      <properties>\n${props.map(([n, v]) => `        <property name="${n}">${v}</property>\n`).join('')}      </properties>\n    </rule>\n  </rules>\n</firewall>\n`;

test('canonical: true exactly when the text is what formatFirewallXml writes for its rules', () => {
  const check = (text: string) => {
    const fast = readFirewallXml(text);
    const slow = general(text);
    assert.equal(fast.ok, slow.ok, text);
    if (!fast.ok || !slow.ok) {
      assert.deepEqual(fast, slow, text);
      return undefined;
    }
    assert.deepEqual(fast.value.rules, slow.value.rules, text);
    assert.equal(fast.value.version, slow.value.version, text);
    assert.equal(fast.value.canonical, formatFirewallXml(fast.value.rules) === text, text);
    return fast.value.canonical;
  };
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 6 }), (rs) => {
      assert.equal(check(formatFirewallXml(rs)), true);
    }),
    { numRuns: 200 },
  );
  // Valid, but written differently by the formatter: the general reader, and not canonical.
  const nonCanonical = [
    withProps(['action', 'accept'], ['dsthost', '10.0.0.1']), // written as 10.0.0.1/32
    withProps(['action', 'accept'], ['dsthost', '2001:db8::1']),
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', '0443']),
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', '443-443']),
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', ' 443']),
    withProps(['action', 'accept'], ['proto', 'icmp'], ['icmptype', '08']),
    withProps(['action', 'accept'], ['expire', '01767225600']),
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', '4&#52;3']),
    withProps(['proto', 'tcp'], ['action', 'accept']), // order
    withProps(['action', 'accept'], ['proto', 'tcp'], ['comment', 'x']), // order
    '<firewall version="2">\n  <rules>\n  </rules>\n</firewall>\n', // written as <rules/>
    '<firewall version="2"><rules/></firewall>',
  ];
  for (const text of nonCanonical) assert.equal(check(text), false, text);
  // Same, and canonical: `08` as a prefix is kept as written (Qubes keeps the text).
  for (const text of [withProps(['action', 'accept'], ['dsthost', '10.0.0.0/08']), withProps(['action', 'drop'], ['dsthost', 'fd00::/8'])])
    assert.equal(check(text), true, text);
  // Invalid values in the exact layout: the same error as the general reader gives.
  const invalid = [
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', '65536']),
    withProps(['action', 'accept'], ['proto', 'tcp'], ['dstports', '2000-1000']),
    withProps(['action', 'accept'], ['dstports', '80']),
    withProps(['action', 'accept'], ['proto', 'icmp'], ['icmptype', '256']),
    withProps(['action', 'accept'], ['expire', '253402300800']),
    withProps(['action', 'accept'], ['comment', '']),
    withProps(['action', 'accept'], ['comment', 'a=b']),
    withProps(['action', 'accept'], ['action', 'accept']),
    withProps(['action', 'accept'], ['colour', 'red']),
    withProps(['action', 'Accept']),
    withProps(['action', 'accept'], ['proto', 'sctp']),
    withProps(['action', 'accept'], ['specialtarget', 'dhcp']),
    withProps(['action', 'accept'], ['specialtarget', 'dns'], ['proto', 'icmp']),
  ];
  for (const text of invalid) assert.equal(check(text), undefined, text);
});

test('dsthost values on the fast path are judged exactly as parseHost judges them', () => {
  const long = (n: number) => 'a'.repeat(n);
  const hosts = [
    '10.0.0.1/32', '255.255.255.255/0', '10.0.0.256/32', '10.0.0.01/32', '10.0.0/24', '10.0.0.0.0/8', '10.0.0.1/33', '10.0.0.1/', '10.0.0.1/1/2',
    '10.0.0.1/032', 'qubes-os.org', 'example.com', 'foo.de', 'a.b.c', 'x', 'icmp', 'localhost', '_dmarc.example.com', 'foo_bar.example',
    'host1.example.org', '1.2.3.4.5', '0x1f.ab', '0x1g.ab', 'foo.123', 'foo.0x1f', 'foo.x', 'a-.com', '-a.com', 'a..com', '.a.com', 'a.com.',
    `${long(63)}.org`, `${long(64)}.org`, [long(63), long(63), long(63), long(57), 'org'].join('.'), [long(63), long(63), long(63), long(58), 'org'].join('.'),
    '0x1f', '1.0x1f', '0x', '0x.0x', 'deadbeef', 'a.cafe',
    'Foo.org', 'foo bar.org', 'fd00::1/64', '::/0', '2001:DB8::/32', 'fd00::1', 'ab:cd', '10.0.0.1/3a',
  ];
  for (const host of hosts) {
    const text = withProps(['action', 'accept'], ['dsthost', host]);
    const fast = readFirewallXml(text);
    const viaProps = parseRuleProperties([['action', 'accept'], ['dsthost', host]]);
    assert.equal(fast.ok, viaProps.ok, host);
    if (fast.ok && viaProps.ok) {
      assert.deepEqual(fast.value.rules, [viaProps.value], host);
      assert.equal(fast.value.canonical, viaProps.value.dsthost!.text === host, host);
    } else if (!fast.ok && !viaProps.ok) assert.equal(fast.error.code, viaProps.error.code, host);
  }
});

test('a bad value in a file in the exact layout is reported with its rule number', () => {
  const good = formatFirewallXml(rules('action=accept proto=tcp dstports=443', 'action=drop dst4=10.0.0.0/8 proto=udp dstports=1-1024'));
  assert.equal(unwrapOk(readFirewallXml(good)).canonical, true);
  fails(parseFirewallXml(good.replace('>1-1024<', '>1-65536<')), RuleCode.BadPorts, 1);
  fails(parseFirewallXml(good.replace('>10.0.0.0/8<', '>10.0.0.0/40<')), RuleCode.BadPrefix, 1);
  fails(parseFirewallXml(good.replace('>10.0.0.0/8<', '>10.0.0.300/8<')), RuleCode.BadAddress, 1);
  fails(parseFirewallXml(good.replace('>443<', '>http<')), RuleCode.BadPorts, 0);
  fails(parseFirewallXml(good.replace('>udp<', '>icmp<')), RuleCode.PortsNeedTcpUdp, 1);
});

function unwrapOk<T>(r: Result<T>): T {
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

test('appending to the bytes of a list gives the bytes of the longer list (property)', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 5 }), fc.array(arbRule, { maxLength: 5 }), (head, added) => {
      const prefix = Buffer.from(formatFirewallXml(head));
      assert.equal(appendFirewallXml(prefix, added).toString('utf8'), formatFirewallXml([...head, ...added]));
    }),
    { numRuns: 300 },
  );
  // the empty list <rules/> becomes <rules>…</rules>
  const empty = Buffer.from(formatFirewallXml([]));
  assert.equal(appendFirewallXml(empty, rules('action=drop')).toString(), formatFirewallXml(rules('action=drop')));
  assert.equal(appendFirewallXml(empty, []).toString(), formatFirewallXml([]));
  assert.throws(() => appendFirewallXml(Buffer.from('<QubesFirewallRules policy="deny"/>'), rules('action=drop')));
});

test('the formatter escapes any value an invalid rule built in code may hold', () => {
  const odd = { action: 'accept', proto: 'a&b', specialtarget: '<x>', dsthost: { type: 'dsthost', text: 'h>' }, icmptype: 1 } as unknown as Rule;
  const xml = formatFirewallXml([odd]);
  assert.match(xml, /<property name="proto">a&amp;b<\/property>/);
  assert.match(xml, /<property name="specialtarget">&lt;x&gt;<\/property>/);
  assert.match(xml, /<property name="dsthost">h&gt;<\/property>/);
  assert.ok(scanXml(xml).ok);
});
