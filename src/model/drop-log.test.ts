import test from 'node:test';
import assert from 'node:assert/strict';
import { groupDrops, type DropEntry } from './drop-log.js';
import { parseApiRule } from './rule-parse.js';

const entry = (time: string, dst: string, dport: number | undefined, extra: Partial<DropEntry> = {}): DropEntry => ({
  time,
  hop: 'sys-firewall',
  qube: 'work',
  origin: { kind: 'rule', qube: 'work', index: 2 },
  decidedBy: 'work rule 2',
  rule: 2,
  family: 4,
  src: '10.137.0.3',
  dst,
  proto: 'udp',
  ...(dport !== undefined ? { dport } : {}),
  length: 30,
  ...extra,
});

test('drop groups: by qube, destination, protocol and port, latest first, with an accept to place before the deciding rule', () => {
  const g = groupDrops([
    entry('2026-01-01T00:00:01Z', '192.0.2.7', 53),
    entry('2026-01-01T00:00:02Z', '192.0.2.8', 53),
    entry('2026-01-01T00:00:03Z', '192.0.2.7', 53),
    entry('2026-01-01T00:00:04Z', '192.0.2.7', 54),
    entry('2026-01-01T00:00:05Z', '2001:db8::1', undefined, { family: 6, proto: 'icmpv6', icmpType: 128, origin: { kind: 'policy', qube: 'work' }, decidedBy: 'policy: work default drop', rule: undefined }),
  ]);
  assert.deepEqual(g.map((x) => [x.dst, x.dport, x.count]), [['2001:db8::1', undefined, 1], ['192.0.2.7', 54, 1], ['192.0.2.7', 53, 2], ['192.0.2.8', 53, 1]]);
  assert.equal(g[2]!.first, '2026-01-01T00:00:01Z');
  assert.equal(g[2]!.last, '2026-01-01T00:00:03Z');
  assert.deepEqual(g[2]!.allow, { qube: 'work', rule: 'action=accept dst4=192.0.2.7 proto=udp dstports=53-53', before: 2 });
  // The policy decided: appended (in front of the policy), no `before`.
  assert.deepEqual(g[0]!.allow, { qube: 'work', rule: 'action=accept dst6=2001:db8::1 proto=icmp' });
  for (const x of g) assert.ok(parseApiRule(x.allow.rule).ok, `${x.allow.rule} parses as a rule`);
});
