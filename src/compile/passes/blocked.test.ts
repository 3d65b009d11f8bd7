// The blocked fallback, pinned as a golden baseline (test/baselines/reference/compile/blocked(work).nft)
// and by behaviour: the blocked client's chain is one admin-prohibited reject, its sets are gone,
// every other object is the very object it was.
// Address plan: 10.137.0.0/16 qubes (sys-firewall .2, work .3, personal .4), 198.51.100.0/24 outside.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBaseline } from '../../../test/cases/compile/baseline.js';
import { dst4, ports, rule } from '../../../test/cases/compile/cases.js';
import { emitFull } from '../../ir/emit-text.js';
import { validateRuleset } from '../../ir/validate.js';
import { defaultLayout } from '../../model/layout.js';
import { planNetwork, startSet } from '../../model/topology.js';
import { compile } from '../compile.js';
import { FIREWALL_TABLE, firewallTableFor, isFirewallTable } from '../names.js';
import { blockClients } from './blocked.js';

function setup(shardClients?: number) {
  const model = defaultLayout();
  // Enough accepts to pack into a set, so that blocking has a set to remove.
  model.qubes.get('work')!.rules = ['198.51.100.7', '198.51.100.8', '198.51.100.9', '198.51.100.10'].map((a) => rule('accept', { dsthost: dst4(a), proto: 'tcp', dstports: ports(443) }));
  for (const q of startSet(model, ['work', 'personal'])) q.state = 'Running';
  const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
  const rs = compile({ model, plan: planNetwork(model, { uplink: 'world', only: running }), resolutions: new Map(), now: 0, shardClients }).rulesets.get('sys-firewall')!;
  return { model, rs };
}

test('baseline: blocked(work)', () => {
  const { model, rs } = setup();
  assertBaseline('blocked(work)', emitFull(blockClients(rs, model, ['work'])));
});

// Unsharded, and sharded (work and personal each in a shard table of their own).
for (const shardClients of [undefined, 1])
test(`blocking work leaves one reject in work's chain, drops work's sets, and shares everything else${shardClients ? ' (sharded)' : ''}`, () => {
  const { model, rs } = setup(shardClients);
  const chainOf = (x: typeof rs, name: string) => x.tables.filter((t) => t.family === 'ip').find((t) => t.chains.some((c) => c.name === name))!;
  const fw = (x: typeof rs) => chainOf(x, 'qbs-10-137-0-3');
  assert.equal(fw(rs).name, shardClients ? firewallTableFor('10.137.0.3', 2) : FIREWALL_TABLE);
  assert.ok(fw(rs).sets.some((s) => s.name.startsWith('qbs-10-137-0-3')), 'the fixture packs work into a set');
  const out = blockClients(rs, model, ['work']);
  assert.deepEqual(validateRuleset(out), []);
  const work = fw(out).chains.find((c) => c.name === 'qbs-10-137-0-3')!;
  assert.deepEqual(work.rules.map((r) => r.stmts), [[{ kind: 'verdict', verdict: { kind: 'reject', with: { type: 'icmp', code: 'admin-prohibited' } } }]]);
  assert.deepEqual(fw(out).sets.filter((s) => s.name.startsWith('qbs-10-137-0-3')), []);
  const personal = (x: typeof rs) => chainOf(x, 'qbs-10-137-0-4').chains.find((c) => c.name === 'qbs-10-137-0-4');
  assert.equal(personal(out), personal(rs), "personal's chain is the same object");
  for (const t of out.tables) if (!isFirewallTable(t.name)) assert.ok(rs.tables.includes(t), `${t.family} ${t.name} is untouched`);
});
