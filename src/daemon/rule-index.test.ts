// The daemon's rule index, kept change by change, answers what a scan of the whole model answers:
// the names to refresh, the qubes naming a host, the next expiry and the expired qubes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { namesToResolve } from '../compile/compile.js';
import { qubesNaming } from '../engine/dns-refresh.js';
import type { Effect } from '../model/effect.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { isExpired, type Rule } from '../model/rule.js';
import { RuleIndex } from './rule-index.js';

const NOW = 1_800_000_000;
const HOSTS = ['a.example', 'b.example', 'c.example'];

const arbRule: fc.Arbitrary<Rule> = fc
  .record({
    host: fc.option(fc.constantFrom(...HOSTS), { nil: undefined }),
    expire: fc.option(fc.integer({ min: NOW - 3, max: NOW + 3 }), { nil: undefined }),
  })
  .map(({ host, expire }) => ({
    action: 'accept',
    ...(host ? { dsthost: { type: 'dsthost', text: host } } : { dsthost: { type: 'dst4', text: '192.0.2.1', addr: '192.0.2.1', prefix: 32 } }),
    ...(expire !== undefined ? { expire } : {}),
  }));

/** A change to the model, and the effect its maker declares. */
type Step =
  | { kind: 'rules'; qube: number; rules: Rule[] | null }
  | { kind: 'remove'; qube: number }
  | { kind: 'links' }
  | { kind: 'all' };

const arbStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('rules' as const), qube: fc.nat(), rules: fc.option(fc.array(arbRule, { maxLength: 4 }), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), qube: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'links' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'all' as const }) },
);

function take(model: Model, s: Step): Effect {
  const names = [...model.qubes.keys()];
  if (s.kind === 'links' || s.kind === 'all') return { kind: s.kind };
  const name = names[s.qube % names.length]!;
  if (s.kind === 'remove') {
    model.qubes.delete(name);
    return { kind: 'props', qubes: [name] };
  }
  model.qubes.get(name)!.rules = s.rules;
  return { kind: 'rules', qubes: [name] };
}

test('the rule index answers as a scan of the whole model, after any changes', () => {
  fc.assert(
    fc.property(fc.array(arbStep, { maxLength: 12 }), fc.integer({ min: NOW - 4, max: NOW + 4 }), (steps, now) => {
      const model = defaultLayout();
      const index = new RuleIndex();
      index.note(model, { kind: 'all' });
      for (const s of steps) index.note(model, take(model, s));
      assert.deepEqual(index.names(now), namesToResolve(model, now));
      for (const hosts of [new Set(HOSTS), new Set(HOSTS.slice(1)), new Set<string>()])
        assert.deepEqual(index.naming(hosts, now).sort(), qubesNaming(model, hosts, now).sort());
      const rules = [...model.qubes.values()].flatMap((q) => q.rules ?? []);
      const expires = rules.flatMap((r) => (r.expire === undefined ? [] : [r.expire]));
      assert.equal(index.nextExpiry(), expires.length ? Math.min(...expires) : undefined);
      const expired = [...model.qubes.values()].filter((q) => q.rules?.some((r) => isExpired(r, now))).map((q) => q.name);
      assert.deepEqual(index.expiredAt(now).sort(), expired.sort());
    }),
    { numRuns: 500 },
  );
});

test('a rule edit rescans only its qubes: the others’ rules are not read', () => {
  const model = defaultLayout();
  const index = new RuleIndex();
  index.note(model, { kind: 'all' });
  let reads = 0;
  for (const q of model.qubes.values()) {
    const rules = q.rules;
    Object.defineProperty(q, 'rules', { get: () => (reads++, rules), configurable: true });
  }
  index.note(model, { kind: 'rules', qubes: ['work'] });
  index.note(model, { kind: 'links' });
  assert.equal(reads, 1);
});
