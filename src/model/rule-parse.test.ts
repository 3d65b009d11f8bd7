import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RuleCode,
  checkRule,
  parseAction,
  parseApiRule,
  parseApiRules,
  parseComment,
  parseDstHost,
  parseDstPorts,
  parseExpire,
  parseIcmpType,
  parseProto,
  parseRuleProperties,
  parseSpecialTarget,
  ruleToProperties,
} from './rule-parse.js';
import { formatApiRule } from './rule-format.js';
import type { Result } from './result.js';
import type { Rule } from './rule.js';

function value<T>(r: Result<T>): T {
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}
function code<T>(r: Result<T>): string {
  if (r.ok) assert.fail(`expected an error, got ${JSON.stringify(r.value)}`);
  return r.error.code;
}
/** Parse an API line and print it back in dom0's canonical form. */
const api = (line: string) => formatApiRule(value(parseApiRule(line)));

test('action: exactly accept or drop, case-sensitive', () => {
  assert.equal(value(parseAction('accept')), 'accept');
  assert.equal(value(parseAction('drop')), 'drop');
  for (const bad of ['ACCEPT', 'Accept', 'allow', 'reject', '', ' accept']) assert.equal(code(parseAction(bad)), RuleCode.BadAction);
  const e = parseAction('DROP');
  assert.ok(!e.ok && e.error.hint === 'write it in lowercase: drop');
});

test('proto: tcp, udp, icmp only; any/icmpv6 get hints', () => {
  for (const p of ['tcp', 'udp', 'icmp'] as const) assert.equal(value(parseProto(p)), p);
  for (const bad of ['any', 'icmpv6', 'TCP', 'sctp', '']) assert.equal(code(parseProto(bad)), RuleCode.BadProto);
  const any = parseProto('any');
  assert.ok(!any.ok && /leave proto out/.test(any.error.hint!));
  const v6 = parseProto('icmpv6');
  assert.ok(!v6.ok && /proto=icmp/.test(v6.error.hint!));
});

test('dsthost: bare IPv4 gets /32, bare IPv6 /128, text kept as typed', () => {
  assert.deepEqual(value(parseDstHost('1.2.3.4')), { type: 'dst4', text: '1.2.3.4/32', addr: '1.2.3.4', prefix: 32 });
  assert.deepEqual(value(parseDstHost('2001:DB8::1')), { type: 'dst6', text: '2001:DB8::1/128', addr: '2001:db8::1', prefix: 128 });
  assert.deepEqual(value(parseDstHost('2001:DB8::/32')), { type: 'dst6', text: '2001:DB8::/32', addr: '2001:db8::', prefix: 32 });
  assert.deepEqual(value(parseDstHost('127.0.0.0/08')), { type: 'dst4', text: '127.0.0.0/08', addr: '127.0.0.0', prefix: 8 });
  // host bits are not checked (upstream expectedFailure)
  assert.deepEqual(value(parseDstHost('192.168.0.1/24')), { type: 'dst4', text: '192.168.0.1/24', addr: '192.168.0.1', prefix: 24 });
  assert.deepEqual(value(parseDstHost('0.0.0.0/0')), { type: 'dst4', text: '0.0.0.0/0', addr: '0.0.0.0', prefix: 0 });
  assert.deepEqual(value(parseDstHost('::/0')), { type: 'dst6', text: '::/0', addr: '::', prefix: 0 });
  assert.deepEqual(value(parseDstHost('::ffff:1.2.3.4')), { type: 'dst6', text: '::ffff:1.2.3.4/128', addr: '::ffff:102:304', prefix: 128 });
  assert.deepEqual(value(parseDstHost('qubes-os.org')), { type: 'dsthost', text: 'qubes-os.org' });
  assert.deepEqual(value(parseDstHost('_sip._tcp.example.com')), { type: 'dsthost', text: '_sip._tcp.example.com' });
  assert.deepEqual(value(parseDstHost('1.2.3.4/0032')), { type: 'dst4', text: '1.2.3.4/0032', addr: '1.2.3.4', prefix: 32 });
});

test('dsthost: errors', () => {
  const cases: [string, string][] = [
    ['https://x', RuleCode.BadAddress], // too many /
    ['1.2.3.4/33', RuleCode.BadPrefix],
    ['::1/129', RuleCode.BadPrefix],
    ['1.2.3.4/-1', RuleCode.BadPrefix],
    ['1.2.3.4/', RuleCode.BadPrefix],
    ['1.2.3.4/+8', RuleCode.BadPrefix],
    ['1.2.3.4/ 8', RuleCode.BadPrefix],
    ['example.com/24', RuleCode.BadAddress],
    ['01.2.3.4/8', RuleCode.BadAddress],
    ['Example.com', RuleCode.BadHostName],
    ['exa mple.com', RuleCode.BadHostName],
    ['ex*ample', RuleCode.BadHostName],
    ['[::1]', RuleCode.BadHostName],
  ];
  for (const [v, c] of cases) assert.equal(code(parseDstHost(v)), c, v);
  const upper = parseDstHost('Qubes-OS.org');
  assert.ok(!upper.ok && upper.error.hint === 'write it in lowercase: qubes-os.org');
});

test('dstports: N or N-M through Python int(), str() collapses N-N', () => {
  assert.deepEqual(value(parseDstPorts('443')), { start: 443, end: 443 });
  assert.deepEqual(value(parseDstPorts('1-1024')), { start: 1, end: 1024 });
  assert.deepEqual(value(parseDstPorts('+80')), { start: 80, end: 80 });
  assert.deepEqual(value(parseDstPorts(' 80 ')), { start: 80, end: 80 });
  assert.deepEqual(value(parseDstPorts('0080')), { start: 80, end: 80 });
  assert.deepEqual(value(parseDstPorts('1_000-2_000')), { start: 1000, end: 2000 });
  assert.deepEqual(value(parseDstPorts('0')), { start: 0, end: 0 });
  assert.deepEqual(value(parseDstPorts('65535')), { start: 65535, end: 65535 });
  assert.deepEqual(value(parseDstPorts('443-443')), { start: 443, end: 443 });
  for (const bad of ['', '-', '80-', '-80', '1-2-3', 'http', '8 0', '1__0', '_10', '65536', '1-65536', '99999', '90-80', '0x50']) {
    assert.equal(code(parseDstPorts(bad)), RuleCode.BadPorts, bad);
  }
  const rev = parseDstPorts('90-80');
  assert.ok(!rev.ok && /first port is larger/.test(rev.error.message));
});

test('icmptype: 1-3 ASCII digits, 0-255 (R4.2)', () => {
  assert.equal(value(parseIcmpType('8')), 8);
  assert.equal(value(parseIcmpType('008')), 8);
  assert.equal(value(parseIcmpType('255')), 255);
  assert.equal(value(parseIcmpType('0')), 0);
  for (const bad of ['256', '0008', ' 8', '+8', '', '-1', 'echo', '٨']) assert.equal(code(parseIcmpType(bad)), RuleCode.BadIcmpType, bad);
});

test('specialtarget: dns only', () => {
  assert.equal(value(parseSpecialTarget('dns')), 'dns');
  for (const bad of ['DNS', 'dhcp', '']) assert.equal(code(parseSpecialTarget(bad)), RuleCode.BadSpecialTarget);
});

test('expire: digits only (R4.2), up to the year 9999', () => {
  assert.equal(value(parseExpire('2099450306')), 2099450306);
  assert.equal(value(parseExpire('0')), 0);
  assert.equal(value(parseExpire('253402300799')), 253402300799);
  for (const bad of ['', '+3600', '-1', '1.5', ' 1', '253402300800', '1e9']) assert.equal(code(parseExpire(bad)), RuleCode.BadExpire, bad);
});

test('comment: letters, digits, space and :;,./-_[] only', () => {
  assert.equal(value(parseComment('Allow LAN: [1,2]; a/b-c_d.')), 'Allow LAN: [1,2]; a/b-c_d.');
  assert.equal(value(parseComment(' x ')), ' x ');
  for (const bad of ['a=b', 'caf\u00e9', 'tab\there', "it's", '', 'a\nb']) assert.equal(code(parseComment(bad)), RuleCode.BadComment, bad);
  const eq = parseComment('a=b');
  assert.ok(!eq.ok && eq.error.message === "comment 'a=b' contains '='" && /cannot contain '='/.test(eq.error.hint!));
  const nonAscii = parseComment('caf\u00e9');
  assert.ok(!nonAscii.ok && /U\+00E9/.test(nonAscii.error.message));
});

test('API form: the reference examples come back in canonical order', () => {
  assert.equal(
    api('action=drop expire=2099450306 dst6=2001::/16 proto=udp dstports=1-1024 comment=x y'),
    'action=drop expire=2099450306 dst6=2001::/16 proto=udp dstports=1-1024 comment=x y',
  );
  assert.equal(api('dstports=443 proto=tcp dsthost=qubes-os.org action=accept'), 'action=accept dsthost=qubes-os.org proto=tcp dstports=443-443');
  assert.equal(api('action=accept dsthost=1.2.3.4'), 'action=accept dst4=1.2.3.4/32');
  assert.equal(api('action=accept dst6=1.2.3.4'), 'action=accept dst4=1.2.3.4/32');
  assert.equal(api('action=accept dst4=example.com'), 'action=accept dsthost=example.com');
  assert.equal(api('action=accept dstname=::1'), 'action=accept dst6=::1/128');
  assert.equal(api('action=accept dst4=127.0.0.0/08'), 'action=accept dst4=127.0.0.0/08');
  assert.equal(api('action=accept dst4=0.0.0.0/0'), 'action=accept dst4=0.0.0.0/0');
  assert.equal(api('action=accept proto=icmp icmptype=008'), 'action=accept proto=icmp icmptype=8');
  assert.equal(api('specialtarget=dns action=accept'), 'action=accept specialtarget=dns');
  assert.equal(api('action=accept proto=tcp dstports=+80'), 'action=accept proto=tcp dstports=80-80');
  assert.equal(api('action=accept'), 'action=accept');
  assert.equal(api('  action=accept\t'), 'action=accept');
});

test('API form: comment= splits at its first occurrence, even inside another token', () => {
  assert.deepEqual(value(parseApiRule('action=accept comment=Allow LAN  now ')), { action: 'accept', comment: 'Allow LAN  now ' });
  // `comment=` must come last: the rest of the line is the comment
  assert.equal(code(parseApiRule('action=accept comment=x proto=tcp')), RuleCode.BadComment);
  // an empty comment is no comment
  assert.deepEqual(value(parseApiRule('action=accept comment=')), { action: 'accept' });
  // 'dsthost=xcomment=foo' is cut inside the token: dsthost=x, comment=foo
  assert.deepEqual(value(parseApiRule('action=accept dsthost=xcomment=foo')), {
    action: 'accept',
    dsthost: { type: 'dsthost', text: 'x' },
    comment: 'foo',
  });
  // only a comment: nothing before it is an empty rule
  assert.equal(code(parseApiRule('comment=just a comment')), RuleCode.Syntax);
});

test('API form: syntax, unknown and duplicate options', () => {
  assert.equal(code(parseApiRule('')), RuleCode.Syntax);
  assert.equal(code(parseApiRule('   ')), RuleCode.Syntax);
  assert.equal(code(parseApiRule('action=accept  proto=tcp')), RuleCode.Syntax);
  assert.equal(code(parseApiRule('accept')), RuleCode.Syntax);
  assert.equal(code(parseApiRule('action=accept foo=bar')), RuleCode.UnknownOption);
  assert.equal(code(parseApiRule('action=accept dpi=1')), RuleCode.UnknownOption);
  assert.equal(code(parseApiRule('action=accept action=drop')), RuleCode.DuplicateOption);
  for (const line of ['action=accept dsthost=a dst4=1.2.3.4', 'action=accept dst4=1.2.3.4 dst6=::1', 'action=accept dst6=::1 dsthost=b', 'action=accept dstname=a dstname=b']) {
    const r = parseApiRule(line);
    assert.ok(!r.ok && r.error.code === RuleCode.DuplicateOption && r.error.message === "option 'dsthost' is given twice", line);
  }
  const unk = parseApiRule('action=accept foo=bar');
  assert.ok(!unk.ok && unk.error.message === "unknown option 'foo'");
  // the value may contain '=' (split at the first one); it is then validated
  assert.equal(code(parseApiRule('action=accept dsthost=a=b')), RuleCode.BadHostName);
});

test('API form: cross-field checks, with actionable hints', () => {
  const ports = parseApiRule('action=accept dstports=443');
  assert.ok(!ports.ok);
  assert.deepEqual(ports.error, {
    code: RuleCode.PortsNeedTcpUdp,
    severity: 'error',
    message: "dstports valid only for 'tcp' and 'udp' protocols",
    hint: 'add proto=tcp',
  });
  assert.equal(code(parseApiRule('action=accept proto=icmp dstports=443')), RuleCode.PortsNeedTcpUdp);
  assert.equal(code(parseApiRule('action=accept icmptype=8')), RuleCode.IcmpTypeNeedsIcmp);
  assert.equal(code(parseApiRule('action=accept proto=udp icmptype=8')), RuleCode.IcmpTypeNeedsIcmp);
  assert.equal(code(parseApiRule('proto=tcp')), RuleCode.MissingAction);
  assert.equal(code(parseApiRule('dsthost=x.org')), RuleCode.MissingAction);
  // element errors come before cross-field ones, in token order (as dom0 builds each option)
  assert.equal(code(parseApiRule('dstports=99999 action=accept')), RuleCode.BadPorts);
  assert.equal(code(parseApiRule('action=bad dstports=1')), RuleCode.BadAction);
});

test('checkRule accepts dns rules on port 53 and combinations dom0 allows', () => {
  const r: Rule = { action: 'accept', dsthost: { type: 'dsthost', text: 'x.org' }, specialtarget: 'dns', proto: 'udp', dstports: { start: 53, end: 53 } };
  assert.deepEqual(value(checkRule(r)), r);
  assert.equal(api('action=accept specialtarget=dns proto=tcp dstports=53'), 'action=accept proto=tcp specialtarget=dns dstports=53-53');
});

test('parseApiRules: Set payload lines, all or nothing, line index in errors', () => {
  assert.deepEqual(value(parseApiRules('')), []);
  assert.deepEqual(value(parseApiRules('action=accept\n')), [{ action: 'accept' }]);
  assert.deepEqual(value(parseApiRules('action=accept proto=icmp\r\naction=drop')), [{ action: 'accept', proto: 'icmp' }, { action: 'drop' }]);
  const r = parseApiRules('action=accept\naction=drop\n\naction=accept\n');
  assert.ok(!r.ok && r.error.ruleIndex === 2 && r.error.code === RuleCode.Syntax);
  const bad = parseApiRules('action=accept\nproto=icmp dstports=1 action=accept\n');
  assert.ok(!bad.ok && bad.error.ruleIndex === 1 && bad.error.code === RuleCode.PortsNeedTcpUdp);
});

test('XML properties: parse in any order, write in (order, name) order with str() values', () => {
  const rule = value(
    parseRuleProperties([
      ['dstports', '1-1024'],
      ['proto', 'tcp'],
      ['dsthost', '192.168.0.0/24'],
      ['comment', 'Allow LAN'],
      ['expire', '2099450306'],
      ['action', 'accept'],
    ]),
  );
  assert.deepEqual(ruleToProperties(rule), [
    ['action', 'accept'],
    ['comment', 'Allow LAN'],
    ['expire', '2099450306'],
    ['dsthost', '192.168.0.0/24'],
    ['proto', 'tcp'],
    ['dstports', '1-1024'],
  ]);
  assert.deepEqual(
    ruleToProperties(value(parseRuleProperties([['action', 'drop'], ['dsthost', '1.2.3.4'], ['proto', 'icmp'], ['icmptype', '08']]))).slice(1),
    [
      ['dsthost', '1.2.3.4/32'],
      ['proto', 'icmp'],
      ['icmptype', '8'],
    ],
  );
  assert.deepEqual(ruleToProperties(value(parseRuleProperties([['action', 'accept'], ['proto', 'udp'], ['dstports', '53-53']]))), [
    ['action', 'accept'],
    ['proto', 'udp'],
    ['dstports', '53'],
  ]);
});

test('XML properties: errors name the property', () => {
  const unknown = parseRuleProperties([['action', 'accept'], ['dst4', '1.2.3.4']]);
  assert.ok(!unknown.ok && unknown.error.code === RuleCode.XmlUnknownProperty && unknown.error.message === "unknown property 'dst4'");
  assert.equal(code(parseRuleProperties([['action', 'accept'], ['action', 'drop']])), RuleCode.XmlDuplicateProperty);
  assert.equal(code(parseRuleProperties([['proto', 'tcp']])), RuleCode.MissingAction);
  assert.equal(code(parseRuleProperties([['action', ' accept']])), RuleCode.BadAction);
  assert.equal(code(parseRuleProperties([['action', 'accept'], ['comment', '']])), RuleCode.BadComment);
  assert.equal(code(parseRuleProperties([])), RuleCode.MissingAction);
});
