import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findRuleIndex, parseRuleWords } from './rule-words.js';
import { deleteMatching } from './firewall-ops.js';
import { QnetError } from './result.js';
import { RuleCode, parseApiRule } from './rule-parse.js';
import { formatApiRule, formatClientRule } from './rule-format.js';
import type { Rule } from './rule.js';

const NOW = 1_700_000_000.75;

/** qvm-firewall words → the client canonical string Qubes would send in Set. */
function raw(...words: string[]): string {
  const r = parseRuleWords(words, NOW);
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return formatClientRule(r.value);
}
function fails(words: string[], code: string): { message: string; hint?: string } {
  const r = parseRuleWords(words, NOW);
  if (r.ok) assert.fail(`expected ${code}, got ${formatClientRule(r.value)}`);
  assert.equal(r.error.code, code, words.join(' '));
  return r.error;
}
function rule(line: string): Rule {
  const r = parseApiRule(line);
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

test('positional words fill action, dsthost, proto, dstports|icmptype', () => {
  assert.equal(raw('accept'), 'action=accept');
  assert.equal(raw('drop', 'qubes-os.org'), 'action=drop dsthost=qubes-os.org');
  assert.equal(raw('accept', 'qubes-os.org', 'tcp', '443'), 'action=accept proto=tcp dsthost=qubes-os.org dstports=443-443');
  assert.equal(raw('accept', '10.0.0.0/8', 'udp', '1000-2000'), 'action=accept proto=udp dst4=10.0.0.0/8 dstports=1000-2000');
  assert.equal(raw('accept', '1.2.3.4', 'icmp', '8'), 'action=accept proto=icmp dst4=1.2.3.4/32 icmptype=8');
  assert.equal(raw('accept', 'fd00::1', 'tcp', '+80'), 'action=accept proto=tcp dst6=fd00::1/128 dstports=80-80');
});

test('key=value words go anywhere and use up their slot', () => {
  assert.equal(raw('action=accept', 'proto=icmp'), 'action=accept proto=icmp');
  assert.equal(raw('accept', 'proto=icmp'), 'action=accept proto=icmp');
  assert.equal(raw('accept', 'specialtarget=dns'), 'action=accept specialtarget=dns');
  assert.equal(raw('dsthost=example.com', 'accept', 'tcp', '443'), 'action=accept proto=tcp dsthost=example.com dstports=443-443');
  assert.equal(raw('proto=tcp', 'accept', 'example.com', '22'), 'action=accept proto=tcp dsthost=example.com dstports=22-22');
  // proto=icmp uses up dstports, so the next bare word is the ICMP type
  assert.equal(raw('accept', 'x.org', 'proto=icmp', '0'), 'action=accept proto=icmp dsthost=x.org icmptype=0');
  // proto=tcp uses up icmptype
  assert.equal(raw('accept', 'proto=udp', 'x.org', '53'), 'action=accept proto=udp dsthost=x.org dstports=53-53');
  assert.equal(raw('dst4=1.2.3.4', 'accept'), 'action=accept dst4=1.2.3.4/32');
  assert.equal(raw('dst6=example.com', 'accept'), 'action=accept dsthost=example.com');
  assert.equal(raw('accept', 'dstports=443', 'proto=tcp'), 'action=accept proto=tcp dstports=443-443');
});

test('a later key=value replaces an earlier one (client kwargs)', () => {
  assert.equal(raw('accept', 'a.org', 'dsthost=b.org'), 'action=accept dsthost=b.org');
  assert.equal(raw('accept', 'action=drop'), 'action=drop');
  assert.equal(raw('accept', 'proto=tcp', 'proto=icmp'), 'action=accept proto=icmp');
});

test('comment= takes the rest of its one word; expire=+N is now + N', () => {
  assert.equal(raw('accept', 'comment=Allow LAN'), 'action=accept comment=Allow LAN');
  assert.equal(raw('accept', 'comment= spaced '), 'action=accept comment= spaced ');
  assert.equal(raw('accept', 'expire=+3600'), `action=accept expire=${1_700_000_000 + 3600}`);
  assert.equal(raw('accept', 'expire=2099450306'), 'action=accept expire=2099450306');
  assert.equal(raw('accept', 'expire=+0'), 'action=accept expire=1700000000');
  fails(['accept', 'expire=+soon'], RuleCode.BadExpire);
  fails(['accept', 'expire=+-1700000001'], RuleCode.BadExpire);
  fails(['accept', 'expire=tomorrow'], RuleCode.BadExpire);
});

test('the client drops /0 address hosts (any host)', () => {
  assert.equal(raw('accept', '0.0.0.0/0', 'tcp', '80'), 'action=accept proto=tcp dstports=80-80');
  assert.equal(raw('accept', '::/0'), 'action=accept');
  assert.equal(raw('accept', '10.0.0.0/00'), 'action=accept');
  assert.equal(raw('accept', '1.2.3.4/+0'), 'action=accept'); // client int('+0') is 0
  assert.equal(raw('accept', '1.2.3.4/08'), 'action=accept dst4=1.2.3.4/08');
});

test('argparse errors: key=, two =, unknown keys', () => {
  assert.equal(fails(['accept', 'comment='], RuleCode.BadWord).message, "invalid rule description: 'comment='");
  assert.equal(fails(['accept', 'comment=a=b'], RuleCode.BadWord).hint, "a value cannot contain '='");
  assert.equal(fails(['accept', 'dstname=x'], RuleCode.UnknownWordKey).message, "invalid rule element: 'dstname=x'");
  fails(['accept', 'port=80'], RuleCode.UnknownWordKey);
  fails(['accept', '=x'], RuleCode.UnknownWordKey);
});

test('validation errors (tracebacks in Qubes) become diagnostics', () => {
  fails([], RuleCode.EmptyRule);
  fails(['ACCEPT'], RuleCode.BadAction);
  fails(['accept', 'Example.COM'], RuleCode.BadHostName);
  fails(['accept', 'x.org', 'sctp'], RuleCode.BadProto);
  assert.match(fails(['accept', 'proto=icmp', '8'], RuleCode.BadAddress).hint!, /proto=icmp icmptype=8/);
  fails(['accept', 'x.org', 'tcp', '99999'], RuleCode.BadPorts);
  fails(['accept', 'x.org', 'icmp', '256'], RuleCode.BadIcmpType);
  fails(['accept', 'specialtarget=ns'], RuleCode.BadSpecialTarget);
  fails(['accept', 'comment=caf\u00e9'], RuleCode.BadComment);
  fails(['dsthost=x.org'], RuleCode.MissingAction);
  fails(['accept', 'dstports=80'], RuleCode.PortsNeedTcpUdp);
  fails(['accept', 'icmptype=8'], RuleCode.IcmpTypeNeedsIcmp);
  // the client checks dstports against proto before reading the value
  fails(['accept', 'dstports=junk'], RuleCode.PortsNeedTcpUdp);
  // list.remove() of a used slot: Qubes ValueError traceback
  fails(['accept', 'icmptype=8', 'proto=tcp'], RuleCode.IcmpTypeNeedsIcmp);
  fails(['accept', 'dstports=80', 'proto=icmp'], RuleCode.PortsNeedTcpUdp);
  fails(['accept', 'proto=tcp', 'proto=udp'], RuleCode.DuplicateOption);
  fails(['accept', 'x.org', 'tcp', '443', 'proto=tcp'], RuleCode.DuplicateOption);
});

test('del RULE: first rule equal in client canonical form', () => {
  const rules = [
    rule('action=accept proto=icmp'),
    rule('action=accept dsthost=qubes-os.org proto=tcp dstports=443'),
    rule('action=accept dst4=0.0.0.0/0 proto=tcp dstports=443-443'),
    rule('action=accept dsthost=qubes-os.org proto=tcp dstports=443-443'),
  ];
  // the CLI's `del RULE…`: words → rule → deleteMatching
  const words = (...w: string[]): Rule => {
    const r = parseRuleWords(w, NOW);
    if (!r.ok) assert.fail(r.error.message);
    return r.value;
  };
  const target = words('accept', 'qubes-os.org', 'tcp', '443');
  assert.equal(findRuleIndex(rules, target), 1);
  assert.deepEqual(deleteMatching(rules, target).map(formatApiRule), [
    'action=accept proto=icmp',
    'action=accept dst4=0.0.0.0/0 proto=tcp dstports=443-443',
    'action=accept dsthost=qubes-os.org proto=tcp dstports=443-443',
  ]);
  // 0.0.0.0/0 is dropped by the client on both sides, so `accept tcp port` finds it
  assert.equal(findRuleIndex(rules, rule('action=accept proto=tcp dstports=443')), 2);
  assert.equal(findRuleIndex(rules, rule('action=accept dst6=::/0 proto=tcp dstports=443')), 2);
  assert.throws(
    () => deleteMatching(rules, words('drop')),
    (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET1903' && e.diag.message === "no rule matches 'action=drop'",
  );
  assert.equal(rules.length, 4, 'input list untouched');
});
