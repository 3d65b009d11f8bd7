// The link-edit path (EngineStore with a `links` effect → Engine.applyLinkEdits, the daemon's, or
// applyLinkEditsAssumed, the offline CLI's): adding or removing a connection or forward loads only
// the nodes on its path, each with a delta of its own keys, and no converge; where it cannot (new
// connection routes, a map that would appear or go), it converges. Either way the kernel ends holding what a full compile gives. On the sim backend,
// which applies the very transactions the netns backend sends (ir/apply.ts).
// Layout: sys-net(1) ─ sys-firewall(2) ─ work(3), personal(4); sys-net ─ fw2(7) ─ other(8), other2(10).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { compile } from '../compile/compile.js';
import { StaticResolver } from '../compile/dns.js';
import { canonicalRuleset } from '../ir/canonical.test-helpers.js';
import type { Connection, PortForward } from '../model/connection.js';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { planNetwork } from '../model/topology.js';
import { MemoryStore } from '../store/memory-store.js';
import { Engine, type EngineEvent } from './engine.js';
import { EngineStore } from './engine-store.js';

const NOW = 1_800_000_000;
const UPLINK = '198.51.100.2'; // sys-net's address on the world link
const ip = (n: number) => `10.137.0.${n}`;
const conn = (id: string, from: string, to: string, port: number): Connection => ({ id, from, to, proto: 'tcp', ports: { start: port, end: port }, bothWays: false });
const fwd = (id: string, qube: string, port: number): PortForward => ({ id, qube, proto: 'tcp', port, from: [], on: [] });

/** A kernel converged to the layout by one engine, and a store over it: the daemon's (that engine) or, `offline`, a fresh engine's. */
async function setup(offline = false, untidyFile?: string) {
  const backend = new SimBackend();
  const events: EngineEvent[] = [];
  const mk = () =>
    new Engine({
      backend,
      resolver: new StaticResolver({}),
      uplink: 'world',
      now: () => NOW,
      emit: (e) => events.push(e),
      ...(untidyFile ? { untidyFile } : {}),
      world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
    });
  let engine = mk();
  const model: Model = defaultLayout();
  model.qubes.delete('vault');
  model.qubes.delete('untrusted');
  model.qubes.set('fw2', newQube(7, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  model.qubes.set('other', newQube(8, 'other', 'orange', { netvm: 'fw2' }));
  model.qubes.set('other2', newQube(10, 'other2', 'orange', { netvm: 'fw2' }));
  for (const q of model.qubes.values()) q.state = 'Running';
  model.connections = [conn('c1', 'work', 'other', 22), conn('c2', 'personal', 'other', 23)];
  model.forwards = [fwd('f1', 'work', 8080), fwd('f2', 'personal', 8081)];
  await engine.converge(model);
  if (offline) engine = mk();
  const loads: string[] = [];
  const apply = backend.apply.bind(backend);
  backend.apply = (node, before, after, opts) => (loads.push(node), apply(node, before, after, opts));
  let converges = 0;
  const converge = engine.converge.bind(engine);
  engine.converge = (m, o) => (converges++, converge(m, o));
  const store = new EngineStore(new MemoryStore(model, { now: () => NOW * 1000 }), async () => engine, offline);
  return { backend, store, loads, events, converges: () => converges };
}

/** The kernel holds, node by node, what a full compile of the stored model gives. */
async function holdsFullCompile(backend: SimBackend, store: EngineStore): Promise<void> {
  const m = await store.load();
  const running = new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
  const want = compile({ model: m, plan: planNetwork(m, { uplink: 'world', only: running }), resolutions: new Map(), now: NOW }).rulesets;
  for (const [node, rs] of want) assert.deepEqual(canonicalRuleset(backend.rulesets.get(node)), canonicalRuleset(rs), node);
}

const addConn = (c: Connection) => (m: Model) => void (m.connections = [...(m.connections ?? []), c]);
const links = { kind: 'links' } as const;

test('adding a connection loads its hops only, no converge; the kernel is a full compile and lets it through', async () => {
  const { backend, store, loads, converges } = await setup();
  assert.equal(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 24 }).verdict, 'drop');
  await store.update(addConn(conn('c3', 'work', 'other', 24)), links);
  assert.equal(converges(), 0, 'no converge');
  assert.deepEqual([...loads].sort(), ['fw2', 'other', 'sys-firewall', 'sys-net']);
  await holdsFullCompile(backend, store);
  assert.equal(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 24 }).verdict, 'accept');
  assert.equal(backend.probe({ from: 'personal', to: ip(8), proto: 'tcp', dport: 24 }).verdict, 'drop', 'only from work');
});

test('adding and removing a forward loads its hops only; the removal cuts its flows on every hop', async () => {
  const { backend, store, loads, events, converges } = await setup();
  await store.update((m) => void (m.forwards = [...(m.forwards ?? []), fwd('f3', 'work', 8082)]), links);
  assert.equal(converges(), 0);
  assert.deepEqual([...loads].sort(), ['sys-firewall', 'sys-net', 'work']);
  await holdsFullCompile(backend, store);
  assert.equal(backend.probe({ from: 'outside', to: UPLINK, proto: 'tcp', dport: 8082, sport: 40000 }).verdict, 'accept');
  loads.length = 0;
  await store.update((m) => void (m.forwards = m.forwards!.filter((f) => f.id !== 'f3')), links);
  assert.equal(converges(), 0);
  assert.deepEqual([...loads].sort(), ['sys-firewall', 'sys-net', 'work']);
  await holdsFullCompile(backend, store);
  const cut = events.flatMap((e) => (e.type === 'flow-cut' ? [`${e.node} ${e.flow.dport}`] : [])).sort();
  assert.deepEqual(cut, ['sys-firewall 8082', 'sys-net 8082', 'work 8082']);
  assert.notEqual(backend.probe({ from: 'outside', to: UPLINK, proto: 'tcp', dport: 8082, sport: 40001 }).verdict, 'accept');
  assert.equal(backend.probe({ from: 'outside', to: UPLINK, proto: 'tcp', dport: 8081 }).verdict, 'accept', 'f2 untouched');
});

test('removing a connection cuts its flows and keeps the other connection to the same qube', async () => {
  const { backend, store, events, converges } = await setup();
  assert.equal(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 22, sport: 40000 }).verdict, 'accept');
  await store.update((m) => void (m.connections = m.connections!.filter((c) => c.id !== 'c1')), links);
  assert.equal(converges(), 0);
  await holdsFullCompile(backend, store);
  assert.ok(events.some((e) => e.type === 'flow-cut' && e.flow.dport === 22));
  assert.notEqual(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 22, sport: 40001 }).verdict, 'accept');
  assert.equal(backend.probe({ from: 'personal', to: ip(8), proto: 'tcp', dport: 23 }).verdict, 'accept', 'c2 kept');
});

test('where the patch does not apply it converges: new connection routes, a map that would go', async () => {
  const { backend, store, converges } = await setup();
  // Within fw2's branch, other2's first connection: no route anywhere; its input map appears (converge).
  await store.update(addConn(conn('c3', 'other', 'other2', 22)), links);
  assert.equal(converges(), 1, 'a map appears: converge');
  // From work, other2 is across branches: sys-net needs a route to it through fw2. Its chains and
  // maps are there already: only the plan's routes differ.
  await store.update(addConn(conn('c4', 'work', 'other2', 22)), links);
  assert.equal(converges(), 2, 'routes: converge');
  await holdsFullCompile(backend, store);
  assert.equal(backend.probe({ from: 'work', to: ip(10), proto: 'tcp', dport: 22 }).verdict, 'accept');
  // Its removal takes the route back: converge again.
  await store.update((m) => void (m.connections = m.connections!.filter((c) => c.id !== 'c4')), links);
  assert.equal(converges(), 3, 'route goes: converge');
  await holdsFullCompile(backend, store);
  assert.notEqual(backend.probe({ from: 'work', to: ip(10), proto: 'tcp', dport: 22 }).verdict, 'accept');
  // The last forward goes: the DNAT chain and its maps go with it.
  await store.update((m) => void (m.forwards = []), links);
  assert.equal(converges(), 4, 'maps go: converge');
  await holdsFullCompile(backend, store);
  assert.notEqual(backend.probe({ from: 'outside', to: UPLINK, proto: 'tcp', dport: 8080 }).verdict, 'accept');
});

test('offline (a fresh engine that assumes the kernel holds the model read): the same deltas, no converge', async () => {
  const { backend, store, loads, events, converges } = await setup(true);
  await store.update(addConn(conn('c3', 'work', 'other', 24)), links);
  assert.equal(converges(), 0, 'no converge');
  assert.deepEqual([...loads].sort(), ['fw2', 'other', 'sys-firewall', 'sys-net']);
  await holdsFullCompile(backend, store);
  assert.equal(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 24, sport: 40000 }).verdict, 'accept');
  loads.length = 0;
  await store.update((m) => void (m.connections = m.connections!.filter((c) => c.id !== 'c3')), links);
  assert.equal(converges(), 0);
  assert.deepEqual([...loads].sort(), ['fw2', 'other', 'sys-firewall', 'sys-net']);
  await holdsFullCompile(backend, store);
  assert.ok(events.some((e) => e.type === 'flow-cut' && e.flow.dport === 24), 'its flow cut');
  // The first connection to other2 needs routes: converge, from the model read.
  await store.update(addConn(conn('c4', 'work', 'other2', 22)), links);
  assert.equal(converges(), 1);
  await holdsFullCompile(backend, store);
});

test('offline, a node that refuses its delta: converge, and the nodes patched already are loaded whole (not patched twice)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-link-edit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { backend, store, converges } = await setup(true, join(dir, 'untidy'));
  backend.failApplies.set('fw2', 1);
  await store.update(addConn(conn('c3', 'work', 'other', 24)), links);
  assert.equal(converges(), 1, 'fell back to converge');
  await holdsFullCompile(backend, store);
  assert.equal(backend.probe({ from: 'work', to: ip(8), proto: 'tcp', dport: 24 }).verdict, 'accept');
});
