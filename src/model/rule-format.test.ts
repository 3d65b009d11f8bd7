import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatApiRule, formatClientRule, formatQdbRule, portsText, ruleTableRows } from './rule-format.js';
import { parseApiRule } from './rule-parse.js';
import type { Rule } from './rule.js';

function rule(line: string): Rule {
  const r = parseApiRule(line);
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

const FULL = 'action=drop expire=2099450306 dst6=2001::/16 proto=udp dstports=1-1024 comment=x y';

test('dom0 api_rule order: action expire host proto specialtarget dstports icmptype comment', () => {
  assert.equal(formatApiRule(rule(FULL)), FULL);
  assert.equal(formatApiRule(rule('action=accept proto=icmp icmptype=0 dst4=10.0.0.0/8 expire=5')), 'action=accept expire=5 dst4=10.0.0.0/8 proto=icmp icmptype=0');
  assert.equal(formatApiRule(rule('proto=tcp specialtarget=dns action=accept dstports=53')), 'action=accept proto=tcp specialtarget=dns dstports=53-53');
});

test('QubesDB form: no expire, no comment, ports N-M', () => {
  assert.equal(formatQdbRule(rule(FULL)), 'action=drop dst6=2001::/16 proto=udp dstports=1-1024');
  assert.equal(formatQdbRule(rule('action=accept dsthost=1.2.3.4 proto=tcp dstports=443')), 'action=accept dst4=1.2.3.4/32 proto=tcp dstports=443-443');
  assert.equal(formatQdbRule(rule('action=accept dst4=0.0.0.0/0')), 'action=accept dst4=0.0.0.0/0');
  assert.equal(formatQdbRule(rule('action=accept')), 'action=accept');
});

test('client canonical order (--raw): action proto host dstports icmptype specialtarget expire comment', () => {
  assert.equal(formatClientRule(rule(FULL)), 'action=drop proto=udp dst6=2001::/16 dstports=1-1024 expire=2099450306 comment=x y');
  assert.equal(formatClientRule(rule('action=accept dsthost=qubes-os.org proto=tcp dstports=443')), 'action=accept proto=tcp dsthost=qubes-os.org dstports=443-443');
  assert.equal(formatClientRule(rule('action=accept proto=udp specialtarget=dns dstports=53')), 'action=accept proto=udp dstports=53-53 specialtarget=dns');
  assert.equal(formatClientRule(rule('action=accept proto=icmp icmptype=8 dst4=1.2.3.4')), 'action=accept proto=icmp dst4=1.2.3.4/32 icmptype=8');
});

test('the client drops /0 address hosts but keeps every other host', () => {
  assert.equal(formatClientRule(rule('action=accept dst4=0.0.0.0/0 proto=tcp')), 'action=accept proto=tcp');
  assert.equal(formatClientRule(rule('action=accept dst6=::/0')), 'action=accept');
  assert.equal(formatClientRule(rule('action=accept dst4=10.1.2.3/0')), 'action=accept');
  assert.equal(formatClientRule(rule('action=accept dst4=0.0.0.0/1')), 'action=accept dst4=0.0.0.0/1');
});

test('ports str(): N when N==M, else N-M', () => {
  assert.equal(portsText({ start: 443, end: 443 }), '443');
  assert.equal(portsText({ start: 1, end: 1024 }), '1-1024');
});

test('qvm-firewall table: header, 0-based NO, - for unset, relative EXPIRE', () => {
  const now = 1_700_000_000;
  const rows = ruleTableRows(
    [
      rule('action=accept proto=icmp'),
      rule('action=accept specialtarget=dns'),
      rule('action=accept dsthost=qubes-os.org proto=tcp dstports=443'),
      rule(`action=drop dst4=192.168.0.0/24 proto=udp dstports=1000-2000 expire=${now + 3600} comment=LAN block`),
      rule(`action=accept dst4=0.0.0.0/0 proto=icmp icmptype=8 expire=${now - 120}`),
    ],
    now,
  );
  assert.deepEqual(rows, [
    ['NO', 'ACTION', 'HOST', 'PROTOCOL', 'PORT(S)', 'SPECIAL TARGET', 'ICMP TYPE', 'EXPIRE', 'COMMENT'],
    ['0', 'accept', '-', 'icmp', '-', '-', '-', '-', '-'],
    ['1', 'accept', '-', '-', '-', 'dns', '-', '-', '-'],
    ['2', 'accept', 'qubes-os.org', 'tcp', '443', '-', '-', '-', '-'],
    ['3', 'drop', '192.168.0.0/24', 'udp', '1000-2000', '-', '-', '+3600s', 'LAN block'],
    ['4', 'accept', '0.0.0.0/0', 'icmp', '-', '-', '8', '-120s', '-'],
  ]);
});

test('table EXPIRE uses the fractional now like Python ({:+.0f}: half to even, -0)', () => {
  const r = rule('action=accept expire=1000');
  const col = (now: number) => ruleTableRows([r], now)[1]![7];
  assert.equal(col(999.5), '+0s');
  assert.equal(col(998.5), '+2s');
  assert.equal(col(1000), '+0s');
  assert.equal(col(1000.4), '-0s');
  assert.equal(col(1000.5), '-0s');
  assert.equal(col(1001.5), '-2s');
  assert.equal(col(0.25), '+1000s');
});

test('an empty rule list is just the header', () => {
  assert.deepEqual(ruleTableRows([], 0), [['NO', 'ACTION', 'HOST', 'PROTOCOL', 'PORT(S)', 'SPECIAL TARGET', 'ICMP TYPE', 'EXPIRE', 'COMMENT']]);
});
