import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { describeOrigin, formatOrigin, ORIGIN_MAX_BYTES, originQube, parseOrigin, rulesOrigin, type Origin } from './origin.js';
import { BugError } from './result.js';
import { validateQubeName } from './topology.js';

// Qubes names: a letter, then [A-Za-z0-9_.-], at most 31 characters.
const arbQube = fc
  .tuple(fc.constantFrom(...'aZw'), fc.string({ unit: fc.constantFrom(...'az09_.-W'), maxLength: 30 }))
  .map(([a, b]) => a + b);
const arbIndex = fc.nat({ max: 999_999_999 });
const arbPart = fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/);
const arbId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/);

const arbOrigin: fc.Arbitrary<Origin> = fc.oneof(
  fc.record({ kind: fc.constant('rule' as const), qube: arbQube, index: arbIndex }),
  // Packed rules as the compiler makes them: any set of rule numbers, elided when too many.
  fc.tuple(arbQube, fc.array(fc.nat({ max: 5000 }), { minLength: 1, maxLength: 400 })).map(([q, ns]) => rulesOrigin(q, ns)),
  fc.record({ kind: fc.constant('policy' as const), qube: arbQube }),
  fc.record({ kind: fc.constant('base' as const), part: arbPart }),
  fc.record({ kind: fc.constant('base' as const), part: arbPart, qube: arbQube }),
  fc.record({ kind: fc.constant('connection' as const), id: arbId }),
  fc.record({ kind: fc.constant('forward' as const), id: arbId }),
).map((o) => ({ ...o }) as Origin); // fc.record makes null-prototype objects; origins are plain ones

test('parseOrigin(formatOrigin(o)) is o, and every comment fits nft', () => {
  fc.assert(
    fc.property(arbOrigin, (o) => {
      const c = formatOrigin(o);
      assert.ok(Buffer.byteLength(c) <= ORIGIN_MAX_BYTES, c);
      assert.ok(!/["\n\\]/.test(c), 'nothing the emitter would rewrite');
      assert.deepEqual(parseOrigin(c), o);
    }),
    { numRuns: 2000 },
  );
});

test('the generated qube names are Qubes names (the arbitrary is not wider than the model)', () => {
  fc.assert(fc.property(arbQube, (q) => validateQubeName(q).ok || q === 'dom0'), { numRuns: 500 });
});

test('the comment forms', () => {
  assert.equal(formatOrigin({ kind: 'rule', qube: 'work', index: 3 }), 'qube=work rule=3');
  assert.equal(formatOrigin({ kind: 'policy', qube: 'work' }), 'qube=work policy');
  assert.equal(formatOrigin({ kind: 'base', part: 'antispoof' }), 'base=antispoof');
  assert.equal(formatOrigin({ kind: 'base', part: 'dispatch', qube: 'work' }), 'qube=work base=dispatch');
  assert.equal(formatOrigin({ kind: 'connection', id: 'c1' }), 'connection=c1');
  assert.equal(formatOrigin({ kind: 'forward', id: 'f1' }), 'forward=f1');
  assert.equal(formatOrigin(rulesOrigin('work', [5, 0, 6, 3, 7])), 'qube=work rules=0,3,5-7');
  assert.deepEqual(rulesOrigin('work', [4, 4]), { kind: 'rule', qube: 'work', index: 4 }, 'one source rule is a plain rule');
});

test('a merged list too long for a comment keeps its head and its last range, marked elided', () => {
  const o = rulesOrigin('a'.repeat(31), Array.from({ length: 5000 }, (_, i) => 2 * i));
  assert.equal(o.kind, 'rules');
  if (o.kind !== 'rules') return;
  assert.equal(o.elided, true);
  assert.deepEqual(o.ranges.slice(0, 3), [[0, 0], [2, 2], [4, 4]]);
  assert.deepEqual(o.ranges.at(-1), [9998, 9998]);
  const c = formatOrigin(o);
  assert.match(c, /^qube=a{31} rules=0,2,4,[0-9,]*,\.\.\.,9998$/);
  assert.ok(Buffer.byteLength(c) <= ORIGIN_MAX_BYTES);
  // and it is as long as it may be: one more range would not fit
  const next = o.ranges.at(-2)![1] + 2;
  const more: Origin = { ...o, ranges: [...o.ranges.slice(0, -1), [next, next], o.ranges.at(-1)!] };
  assert.throws(() => formatOrigin(more), BugError);
});

test('an origin with no comment form is a bug, not a cut comment', () => {
  for (const o of [
    { kind: 'rule', qube: 'bad name', index: 1 },
    { kind: 'rule', qube: 'work', index: -1 },
    { kind: 'rule', qube: 'work', index: 1.5 },
    { kind: 'base', part: 'Base: antispoof' },
    { kind: 'rules', qube: 'work', ranges: [[3, 3]] },
    { kind: 'rules', qube: 'work', ranges: [[3, 4], [5, 6]] },
    { kind: 'rules', qube: 'work', ranges: [[5, 6], [1, 2]] },
    { kind: 'connection', id: 'a b' },
  ] as Origin[])
    assert.throws(() => formatOrigin(o), BugError, JSON.stringify(o));
});

test('hostile or foreign comments parse to null and never throw', () => {
  for (const c of [
    '', ' ', 'work rule 3', 'base: antispoof', 'policy: work default drop', 'qube=work', 'qube=work rule=', 'qube=work rule=03',
    'qube=work rule=3 ', ' qube=work rule=3', 'qube=work  rule=3', 'qube=work rule=3 rule=4', 'qube=9work rule=3', 'qube=work rule=-1',
    'qube=work rule=1e3', 'qube=work rule=9999999999', 'qube=work rules=3', 'qube=work rules=3-3', 'qube=work rules=5-3', 'qube=work rules=1,2',
    'qube=work rules=1-2,2-4', 'qube=work rules=...,4', 'qube=work rules=1,...', 'qube=work rules=1,...,...,9', 'qube=work rules=1,...,3,9',
    'qube=work rules=,1,3', 'qube=work policy=drop', 'qube=work base=', 'base=antispoof qube=work', 'base=Anti', 'connection=', 'forward=a b',
    'qube=' + 'a'.repeat(32) + ' rule=1', 'qube=work rule=1\n', 'qube=work\trule=1', 'qube=wörk rule=1', 'qube=__proto__ rule=1',
    'base=' + 'a'.repeat(200), 'qube=work rules=' + '1,'.repeat(100) + '9',
  ])
    assert.equal(parseOrigin(c), null, JSON.stringify(c));
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void parseOrigin(s)), { numRuns: 2000 });
  // Near-misses of valid comments: one character changed anywhere never throws.
  fc.assert(
    fc.property(arbOrigin, fc.nat(), fc.string({ minLength: 1, maxLength: 1, unit: 'grapheme' }), (o, at, ch) => {
      const c = formatOrigin(o);
      const i = at % c.length;
      const p = parseOrigin(c.slice(0, i) + ch + c.slice(i + 1));
      if (p !== null) assert.equal(formatOrigin(p), c.slice(0, i) + ch + c.slice(i + 1), 'what parses is canonical');
    }),
    { numRuns: 2000 },
  );
});

test('describeOrigin keeps the words the CLI has always printed', () => {
  assert.equal(describeOrigin({ kind: 'rule', qube: 'work', index: 3 }), 'work rule 3');
  assert.equal(describeOrigin(rulesOrigin('work', [0, 3, 5, 6, 7])), 'work rules 0,3,5-7 packed');
  assert.equal(describeOrigin({ kind: 'policy', qube: 'work' }), 'policy: work default drop');
  assert.equal(describeOrigin({ kind: 'base', part: 'no-new-flows-to-clients' }), 'base: no new flows to clients');
  assert.equal(describeOrigin({ kind: 'base', part: 'dns-dnat' }), 'dns dnat');
  assert.equal(describeOrigin({ kind: 'base', part: 'dispatch', qube: 'work' }), 'dispatch: work');
  assert.equal(describeOrigin({ kind: 'base', part: 'blocked', qube: 'work' }), 'blocked: work (rules failed to load)');
  assert.equal(describeOrigin({ kind: 'base', part: 'toString' }), 'toString', 'no prototype lookups');
  assert.equal(originQube({ kind: 'rule', qube: 'work', index: 0 }), 'work');
  assert.equal(originQube({ kind: 'connection', id: 'c' }), undefined);
});
