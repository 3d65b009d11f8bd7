// Every place qnet deliberately differs from Qubes R4.2, one test each. Each name says what Qubes
// does. Everything not listed here matches Qubes byte for byte (see rule-*.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuleCode, parseApiRule, parseDstPorts, parseRuleProperties } from './rule-parse.js';
import { parseRuleWords } from './rule-words.js';
import { formatApiRule } from './rule-format.js';
import { parseFirewallXml } from '../store/firewall-xml.js';
import { QnetError, type Result } from './result.js';
import { deleteMatching } from './firewall-ops.js';

function refused(r: Result<unknown>, code: string): { message: string; hint?: string } {
  if (r.ok) assert.fail(`qnet should refuse, got ${JSON.stringify(r.value)}`);
  assert.equal(r.error.code, code, r.error.message);
  assert.ok(r.error.hint, 'every refusal says what to do instead');
  return r.error;
}

test('differs from Qubes: port 65536 is refused (R4.2 accepts it, nft then fails and the qube loses all network)', () => {
  const e = refused(parseApiRule('action=accept proto=tcp dstports=65536'), RuleCode.BadPorts);
  assert.match(e.hint!, /65536/);
  refused(parseApiRule('action=accept proto=tcp dstports=1-65536'), RuleCode.BadPorts);
  refused(parseRuleWords(['accept', 'x.org', 'tcp', '65536'], 0), RuleCode.BadPorts);
  assert.ok(parseDstPorts('65535').ok);
});

const nonsense: [string, string, string][] = [
  ['', RuleCode.BadHostName, 'an empty name'],
  ['a..b', RuleCode.BadHostName, 'an empty label'],
  ['-foo', RuleCode.BadHostName, 'a label starting with -'],
  ['foo.', RuleCode.BadHostName, 'a trailing dot'],
  ['1.2.3', RuleCode.BadAddress, 'a short dotted quad'],
  ['256.1.1.1', RuleCode.BadAddress, 'an octet above 255'],
  ['010.0.0.1', RuleCode.BadAddress, 'an octet with a leading zero'],
  ['a'.repeat(64) + '.org', RuleCode.BadHostName, 'a label over 63 characters'],
  [`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.org`, RuleCode.BadHostName, 'a name over 253 characters'],
];
for (const [name, code, what] of nonsense) {
  test(`differs from Qubes: dsthost with ${what} (${JSON.stringify(name.length > 20 ? name.slice(0, 20) + '…' : name)}) is refused (Qubes stores it as a DNS name)`, () => {
    refused(parseApiRule(`action=accept dsthost=${name}`), code);
    refused(parseRuleProperties([['action', 'accept'], ['dsthost', name]]), code);
    if (name !== '') refused(parseRuleWords(['accept', name], 0), code);
  });
}

test('differs from Qubes: doubled spaces in an API line are a clear error (Qubes: unhandled ValueError, empty reply)', () => {
  const e = refused(parseApiRule('action=accept  proto=tcp'), RuleCode.Syntax);
  assert.equal(e.message, 'empty option: two spaces in a row');
  refused(parseApiRule(''), RuleCode.Syntax);
  refused(parseApiRule('action=accept proto'), RuleCode.Syntax);
});

test('differs from Qubes: `accept icmp` in qvm-firewall words is refused (Qubes reads it as dsthost=icmp)', () => {
  const e = refused(parseRuleWords(['accept', 'icmp'], 0), RuleCode.ProtoWordAsHost);
  assert.match(e.hint!, /proto=icmp/);
  // an explicit dsthost=icmp still means the host named icmp
  const explicit = parseRuleWords(['accept', 'dsthost=icmp'], 0);
  assert.ok(explicit.ok && explicit.value.dsthost?.text === 'icmp');
});

test('differs from Qubes: a bare tcp/udp word in the host slot is refused (Qubes reads it as a host name)', () => {
  assert.match(refused(parseRuleWords(['accept', 'tcp', '443'], 0), RuleCode.ProtoWordAsHost).hint!, /proto=tcp/);
  assert.match(refused(parseRuleWords(['drop', 'udp'], 0), RuleCode.ProtoWordAsHost).hint!, /proto=udp/);
});

test('differs from Qubes: proto=icmp with specialtarget=dns is refused (Qubes accepts it; nft fails and the qube drops everything)', () => {
  refused(parseApiRule('action=accept proto=icmp specialtarget=dns'), RuleCode.DnsWithIcmp);
  refused(parseRuleWords(['accept', 'proto=icmp', 'specialtarget=dns'], 0), RuleCode.DnsWithIcmp);
});

test('differs from Qubes: specialtarget=dns with ports other than 53 is refused (Qubes silently skips the rule)', () => {
  refused(parseApiRule('action=accept proto=udp specialtarget=dns dstports=5353'), RuleCode.DnsPortNot53);
  refused(parseApiRule('action=accept proto=tcp specialtarget=dns dstports=1-1024'), RuleCode.DnsPortNot53);
  assert.ok(parseApiRule('action=accept proto=udp specialtarget=dns dstports=53').ok);
});

test('differs from Qubes: a bare word after all slots are used is a clear error (Qubes: IndexError traceback)', () => {
  const e = refused(parseRuleWords(['accept', 'x.org', 'tcp', '443', 'extra'], 0), RuleCode.NoSlotForWord);
  assert.match(e.message, /no place for 'extra'/);
});

test('differs from Qubes: qvm-firewall tracebacks become diagnostics (empty word, proto twice, used slot, bad +expire, del no match)', () => {
  refused(parseRuleWords(['accept', ''], 0), RuleCode.BadWord); // IndexError
  refused(parseRuleWords(['accept', 'proto=tcp', 'proto=tcp'], 0), RuleCode.DuplicateOption); // list.remove ValueError
  refused(parseRuleWords(['accept', 'icmptype=8', 'proto=udp'], 0), RuleCode.IcmpTypeNeedsIcmp); // list.remove ValueError
  refused(parseRuleWords(['accept', 'expire=+1h'], 0), RuleCode.BadExpire); // int() ValueError
  refused(parseRuleWords(['accept', 'x.org', 'tcp', 'http'], 0), RuleCode.BadPorts); // ValueError in argparse
  assert.throws(
    () => deleteMatching([{ action: 'accept' }], { action: 'drop' }), // list.remove ValueError
    (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET1903' && !!e.diag.hint,
  );
});

test('differs from Qubes: v1 netmask="0" keeps /0 (Qubes turns it into /32 via `prefixlen or 32`)', () => {
  const r = parseFirewallXml('<QubesFirewallRules policy="allow"><rule address="0.0.0.0" netmask="0" proto="tcp" port="25"/></QubesFirewallRules>');
  assert.ok(r.ok);
  assert.equal(formatApiRule(r.value.rules[2]!), 'action=drop dst4=0.0.0.0/0 proto=tcp dstports=25-25');
});

test('differs from Qubes: a property given twice in firewall.xml is refused (Qubes keeps the last one)', () => {
  refused(parseRuleProperties([['action', 'accept'], ['proto', 'tcp'], ['proto', 'udp']]), RuleCode.XmlDuplicateProperty);
});

test('differs from Qubes: expire is a number, so leading zeros are not kept (Qubes keeps `expire=0123` verbatim)', () => {
  const r = parseApiRule('action=accept expire=0123');
  assert.ok(r.ok);
  assert.equal(formatApiRule(r.value), 'action=accept expire=123');
});
