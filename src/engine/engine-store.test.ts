// EngineStore routes a change by its declared Effect: a rule edit offline (a fresh engine that
// assumes the kernel holds compile() of the model it reads) loads one delta of the edited clients'
// chains and sets into their netvm and compiles nothing else; other effects converge. On the sim
// backend, which applies the very transactions the netns backend sends (ir/apply.ts), so a wrong
// delta is refused or leaves a ruleset that differs from a full compile.
// Address plan: 10.137.0.0/16 qubes (work .3, personal .4), 203.0.113.0/24 outside hosts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { compile } from '../compile/compile.js';
import { StaticResolver } from '../compile/dns.js';
import { emitFull } from '../ir/emit-text.js';
import type { Ruleset } from '../ir/types.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { planNetwork, startSet } from '../model/topology.js';
import { MemoryStore } from '../store/memory-store.js';
import { Engine, type EngineEvent } from './engine.js';
import { EngineStore } from './engine-store.js';

const NOW = 1_800_000_000;
const web = { to: '203.0.113.10', proto: 'tcp' as const, dport: 80 };

/** A kernel converged by one engine (the model's qubes started), and an offline store over it. */
async function offlineSetup(running: string[], shardClients?: number) {
  const backend = new SimBackend();
  const mk = (events?: EngineEvent[]) =>
    new Engine({
      backend,
      shardClients,
      resolver: new StaticResolver({}),
      uplink: 'world',
      now: () => NOW,
      world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
      ...(events ? { emit: (e: EngineEvent) => events.push(e) } : {}),
    });
  const model: Model = defaultLayout();
  for (const q of startSet(model, running)) q.state = 'Running';
  await mk().converge(model);
  const events: EngineEvent[] = [];
  const offline = mk(events);
  const calls: { node: string; before: Ruleset | null; after: Ruleset }[] = [];
  const apply = backend.apply.bind(backend);
  backend.apply = (node, before, after, opts) => (calls.push({ node, before, after }), apply(node, before, after, opts));
  const converges: unknown[] = [];
  const converge = offline.converge.bind(offline);
  offline.converge = (m, o) => (converges.push(o), converge(m, o));
  const store = new EngineStore(new MemoryStore(model, { now: () => NOW * 1000 }), async () => offline, true);
  return { backend, store, calls, converges, events };
}

const compiled = (m: Model, shardClients?: number) => {
  const running = new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
  return compile({ model: m, plan: planNetwork(m, { uplink: 'world', only: running }), resolutions: new Map(), now: NOW, shardClients }).rulesets;
};

// Unsharded, and with the firewall tables sharded as finely as they go (work and personal apart).
for (const shardClients of [undefined, 1])
test(`offline, a rules effect loads one delta of the edited client only: the kernel then holds a full compile, byte for byte${shardClients ? ' (sharded)' : ''}`, async () => {
  const { backend, store, calls, converges } = await offlineSetup(['work', 'personal'], shardClients);
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'accept');
  await store.update((m) => void (m.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }]), { kind: 'rules', qubes: ['work'] });
  assert.deepEqual(converges, [], 'no converge');
  assert.deepEqual(calls.map((c) => c.node), ['sys-firewall']);
  const chains = calls[0]!.after.tables.flatMap((t) => t.chains.map((c) => c.name));
  assert.ok(chains.length > 0 && chains.every((n) => n.startsWith('qbs-10-137-0-3')), `only work's chains were compiled: ${chains.join(', ')}`);
  const model = await store.load();
  assert.equal(emitFull(backend.rulesets.get('sys-firewall')!), emitFull(compiled(model, shardClients).get('sys-firewall')!));
  assert.equal(/table ip qubes-firewall-\d/.test(emitFull(backend.rulesets.get('sys-firewall')!)), shardClients !== undefined, 'shard tables');
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'reject');
  assert.equal(backend.probe({ from: 'personal', ...web }).verdict, 'accept');
});

test('offline, a tightening rule edit cuts the flow it forbids', async () => {
  const { backend, store, events } = await offlineSetup(['work']);
  backend.probe({ from: 'work', ...web, sport: 40000 });
  assert.equal((await backend.flows('sys-firewall')).length, 1);
  await store.update((m) => void (m.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }]), { kind: 'rules', qubes: ['work'] });
  assert.deepEqual(events.filter((e) => e.type === 'flow-cut').map((e) => e.type === 'flow-cut' && e.qube), ['work']);
  assert.equal((await backend.flows('sys-firewall')).length, 0);
});

test('offline, a rule edit whose delta the kernel refuses converges instead (the fail-closed ladder)', async () => {
  const { backend, store, calls, converges } = await offlineSetup(['work']);
  backend.failApplies.set('sys-firewall', 1);
  await store.update((m) => void (m.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }]), { kind: 'rules', qubes: ['work'] });
  assert.equal(converges.length, 1, 'fell back to converge');
  assert.ok(calls.length >= 2);
  assert.equal(emitFull(backend.rulesets.get('sys-firewall')!), emitFull(compiled(await store.load()).get('sys-firewall')!));
});

test('a change with no effect, or another effect, converges against the model read', async () => {
  const { store, converges } = await offlineSetup(['work']);
  await store.update((m) => void (m.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }]));
  await store.update((m) => void (m.qubes.get('work')!.label = 'blue'), { kind: 'props', qubes: ['work'] });
  assert.equal(converges.length, 2);
  assert.ok(converges.every((o) => (o as { assume?: Model }).assume !== undefined), 'offline converges assume the kernel holds the model read');
});
