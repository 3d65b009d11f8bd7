// Removing a connection or a port forward cuts the flows it let through, on each hop that tracked
// them, and only those (FlowCutter.cutLinks), on the sim backend. Real packets: test/kernel/links-gaps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { StaticResolver } from '../compile/dns.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { startSet } from '../model/topology.js';
import { Engine, type EngineEvent } from './engine.js';

function setup() {
  const backend = new SimBackend();
  const events: EngineEvent[] = [];
  const engine = new Engine({
    backend,
    resolver: new StaticResolver({}),
    uplink: 'world',
    now: () => 1_800_000_000,
    emit: (e) => events.push(e),
    world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
  });
  const model: Model = defaultLayout();
  for (const q of startSet(model, ['work', 'personal'])) q.state = 'Running';
  return { backend, engine, model, events };
}

const cuts = (events: EngineEvent[]) => events.flatMap((e) => (e.type === 'flow-cut' ? [`${e.node} ${e.flow.dport}`] : [])).sort();

test('disconnect cuts the flows of that connection in the hop and the target, not those of another', async () => {
  const { backend, engine, model, events } = setup();
  model.connections = [
    { id: 'c1', from: 'work', to: 'personal', proto: 'tcp', ports: { start: 8000, end: 8000 }, bothWays: false },
    { id: 'c2', from: 'work', to: 'personal', proto: 'tcp', ports: { start: 8001, end: 8001 }, bothWays: false },
  ];
  await engine.converge(model);
  for (const dport of [8000, 8001]) assert.equal(backend.probe({ from: 'work', to: '10.137.0.4', proto: 'tcp', dport, sport: 40000 }).verdict, 'accept');
  model.connections = model.connections.filter((c) => c.id !== 'c1');
  await engine.converge(model);
  assert.deepEqual(cuts(events), ['personal 8000', 'sys-firewall 8000']);
  assert.equal(backend.probe({ from: 'work', to: '10.137.0.4', proto: 'tcp', dport: 8000, sport: 40000 }).verdict, 'drop', 'judged anew, refused');
  assert.equal((await backend.flows('personal')).filter((f) => f.dport === 8001).length, 1, 'c2 kept');
});

test('forward del cuts the forwarded flows on every hop from the uplink down, not those of another forward', async () => {
  const { backend, engine, model, events } = setup();
  model.forwards = [
    { id: 'f1', qube: 'work', proto: 'tcp', port: 8080, toPort: 8000, from: [], on: [] },
    { id: 'f2', qube: 'work', proto: 'tcp', port: 8081, from: [], on: [] },
  ];
  await engine.converge(model);
  for (const dport of [8080, 8081]) assert.equal(backend.probe({ from: 'outside', to: '198.51.100.2', proto: 'tcp', dport, sport: 40000 }).verdict, 'accept');
  model.forwards = model.forwards.filter((f) => f.id !== 'f1');
  await engine.converge(model);
  assert.deepEqual(cuts(events), ['sys-firewall 8080', 'sys-net 8080', 'work 8000']);
  assert.notEqual(backend.probe({ from: 'outside', to: '198.51.100.2', proto: 'tcp', dport: 8080, sport: 40000 }).verdict, 'accept');
  assert.equal((await backend.flows('work')).filter((f) => f.dport === 8081).length, 1, 'f2 kept');
});
