import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHostName, formatIPv6, isIPv4, parseIPv6 } from './rule-host.js';
import { RuleCode } from './rule-codes.js';

test('IPv4: glibc inet_pton, strict dotted quad', () => {
  for (const s of ['0.0.0.0', '1.2.3.4', '255.255.255.255', '10.0.0.1']) assert.ok(isIPv4(s), s);
  for (const s of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '010.0.0.1', '1.2.3.04', '1..2.3', ' 1.2.3.4', '1.2.3.4 ', '0x1.2.3.4', '']) assert.ok(!isIPv4(s), s);
});

test('IPv6: glibc inet_pton6 accepts and refuses exactly', () => {
  const good: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['fd09:24ef:4179::a89:5', 'fd09:24ef:4179::a89:5'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
  ];
  for (const [s, canonical] of good) {
    const g = parseIPv6(s);
    assert.ok(g, s);
    assert.equal(formatIPv6(g), canonical, s);
  }
  for (const s of ['', ':', ':::', '1:', ':1', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1::2:3:4:5:6:7:8', '1.2.3.4', '::1.2.3', '::1.2.3.4:5', '::01.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', 'g::', '::1%eth0', '[::1]']) {
    assert.equal(parseIPv6(s), undefined, s);
  }
});

test('host names: lowercase LDH labels (plus _), real DNS names only', () => {
  for (const s of ['qubes-os.org', 'a', 'x1.example.com', '_dmarc.example.com', 'a-b.c', 'xn--bcher-kva.example', 'a'.repeat(63) + '.org', 'icmp']) {
    assert.equal(checkHostName(s), undefined, s);
  }
  const bad: [string, string][] = [
    ['', RuleCode.BadHostName],
    ['a..b', RuleCode.BadHostName],
    ['.a', RuleCode.BadHostName],
    ['-foo', RuleCode.BadHostName],
    ['foo-', RuleCode.BadHostName],
    ['foo.', RuleCode.BadHostName],
    ['a'.repeat(64) + '.org', RuleCode.BadHostName],
    [('a'.repeat(63) + '.').repeat(4) + 'org', RuleCode.BadHostName],
    ['Foo.org', RuleCode.BadHostName],
    ['1.2.3', RuleCode.BadAddress],
    ['256.1.1.1', RuleCode.BadAddress],
    ['010.0.0.1', RuleCode.BadAddress],
    ['1.2.3.4.5', RuleCode.BadAddress],
    ['123', RuleCode.BadAddress],
    ['0x7f000001', RuleCode.BadAddress],
    ['0x7f.1', RuleCode.BadAddress],
    ['a.1', RuleCode.BadAddress],
  ];
  for (const [s, code] of bad) assert.equal(checkHostName(s)?.code, code, s);
  assert.equal(checkHostName('foo.')?.hint, 'write it without the trailing dot: foo');
});
