import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addRule, onlyOpens, pyInsert } from './firewall-ops.js';
import type { Proto, Rule } from './rule.js';

const A = (extra: Partial<Rule> = {}): Rule => ({ action: 'accept', ...extra });
const D = (extra: Partial<Rule> = {}): Rule => ({ action: 'drop', ...extra });

test('list.insert semantics for --before: past the end appends, negative counts from the end', () => {
  assert.deepEqual(pyInsert([1, 2, 3], undefined, 9), [1, 2, 3, 9]);
  assert.deepEqual(pyInsert([1, 2, 3], 0, 9), [9, 1, 2, 3]);
  assert.deepEqual(pyInsert([1, 2, 3], 99, 9), [1, 2, 3, 9]);
  assert.deepEqual(pyInsert([1, 2, 3], -1, 9), [1, 2, 9, 3]);
});

test('adding after a catch-all warns that the new rule can never match', () => {
  assert.equal(addRule([A()], D({ proto: 'tcp' })).warnings.length, 1);
  assert.equal(addRule([A()], D({ proto: 'tcp' }), 0).warnings.length, 0);
});

test('onlyOpens: inserted accepts and removed drops only open; anything else may close', () => {
  const tcp = A({ proto: 'tcp' });
  const udp = D({ proto: 'udp' });
  assert.equal(onlyOpens([tcp], [tcp, A({ proto: 'udp' })]), true, 'appended accept');
  assert.equal(onlyOpens([tcp, udp], [A({ proto: 'icmp' }), tcp]), true, 'inserted accept, removed drop');
  assert.equal(onlyOpens([], [A()]), true);
  assert.equal(onlyOpens([tcp], []), false, 'removed accept');
  assert.equal(onlyOpens([tcp], [udp, tcp]), false, 'inserted drop');
  assert.equal(onlyOpens([tcp], [A({ proto: 'tcp', dstports: { start: 80, end: 80 } })]), false, 'narrowed accept');
});

// A first-match evaluator over proto/port rules, enough to check the claim behind onlyOpens.
const matches = (r: Rule, p: { proto: Proto; port: number }) =>
  (r.proto === undefined || r.proto === p.proto) && (r.dstports === undefined || (p.port >= r.dstports.start && p.port <= r.dstports.end));
const accepts = (rules: Rule[], p: { proto: Proto; port: number }) => rules.find((r) => matches(r, p))?.action === 'accept';

test('property: when onlyOpens says so, every packet the old list accepted the new one accepts', () => {
  const rule = fc.record({
    action: fc.constantFrom<'accept' | 'drop'>('accept', 'drop'),
    proto: fc.option(fc.constantFrom<Proto>('tcp', 'udp'), { nil: undefined }),
    port: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
  }).map(({ action, proto, port }): Rule => ({ action, ...(proto ? { proto } : {}), ...(proto && port ? { dstports: { start: port, end: port } } : {}) }));
  const edit = fc.tuple(fc.array(rule, { maxLength: 6 }), fc.array(fc.tuple(fc.nat(6), rule, fc.boolean()), { maxLength: 4 }));
  fc.assert(
    fc.property(edit, fc.constantFrom<Proto>('tcp', 'udp'), fc.integer({ min: 1, max: 5 }), ([before, ops], proto, port) => {
      let after = [...before];
      for (const [at, r, insert] of ops) after = insert ? pyInsert(after, at, r) : after.filter((_, i) => i !== at % Math.max(1, after.length));
      if (onlyOpens(before, after) && accepts(before, { proto, port })) assert.ok(accepts(after, { proto, port }));
    }),
    { numRuns: 2000 },
  );
});
