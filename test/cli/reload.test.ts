// `qnet firewall VM --reload` (firewall.reload: a rules effect marked reload) asks the qube's names
// again now and loads its rules again: the daemon's engine before the TTL runs out, the offline CLI's
// fresh engine from nothing (it cannot know which answers the kernel holds). On the sim backend,
// which applies the very transactions the netns backend sends. Outside: 203.0.113.0/24.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimBackend } from '../../src/backend/sim/sim-backend.js';
import { StaticResolver } from '../../src/compile/dns.js';
import { Engine } from '../../src/engine/engine.js';
import { EngineStore } from '../../src/engine/engine-store.js';
import { defaultLayout } from '../../src/model/layout.js';
import type { Effect } from '../../src/model/effect.js';
import type { Model } from '../../src/model/qube.js';
import { startSet } from '../../src/model/topology.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const NOW = 1_800_000_000;
const OLD = '203.0.113.10';
const NEW = '203.0.113.20';

/** work may reach web.example.com on tcp/80; the kernel was loaded when the name meant OLD; now it means NEW (TTL not run out). */
async function setup(daemon: boolean) {
  const backend = new SimBackend();
  const zone: Record<string, { a: string[]; ttl: number }> = { 'web.example.com': { a: [OLD], ttl: 3600 } };
  const mk = () =>
    new Engine({
      backend,
      resolver: new StaticResolver(zone),
      uplink: 'world',
      now: () => NOW,
      world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
    });
  const model: Model = defaultLayout();
  model.qubes.get('work')!.rules = [{ action: 'accept', dsthost: { type: 'dsthost', text: 'web.example.com' }, proto: 'tcp', dstports: { start: 80, end: 80 } }];
  for (const q of startSet(model, ['work'])) q.state = 'Running';
  const first = mk();
  await first.converge(model);
  zone['web.example.com'] = { a: [NEW], ttl: 3600 };
  // The daemon keeps its engine (and its cached answers); the offline CLI makes a fresh one.
  const engine = daemon ? first : mk();
  const store = new EngineStore(new MemoryStore(model, { now: () => NOW * 1000 }), async () => engine, !daemon);
  const reaches = (to: string) => backend.probe({ from: 'work', to, proto: 'tcp', dport: 80 }).verdict;
  return { store, reaches };
}

const touch = (s: EngineStore, effect: Effect) => s.update(() => undefined, effect);

for (const daemon of [true, false]) {
  const who = daemon ? 'through the daemon' : 'offline';
  test(`${who}: a rules effect with no change leaves the old answer loaded (what --reload is for)`, async () => {
    const { store, reaches } = await setup(daemon);
    await touch(store, { kind: 'rules', qubes: ['work'] });
    assert.equal(reaches(OLD), 'accept');
    assert.notEqual(reaches(NEW), 'accept');
  });

  test(`${who}: --reload asks the name again and loads the new answer`, async () => {
    const { store, reaches } = await setup(daemon);
    await touch(store, { kind: 'rules', qubes: ['work'], reload: true });
    assert.equal(reaches(NEW), 'accept');
    assert.notEqual(reaches(OLD), 'accept', 'the old address is no longer allowed');
  });
}
