// The engine on the sim backend: lifecycle, reattachment, deltas, flow cutting and fail-closed,
// with packets through the simulator. (The same behaviours with real packets: test/kernel.)
// Address plan: 10.137.0.0/16 qubes (sys-net .1, sys-firewall .2, work .3, personal .4),
// 203.0.113.0/24 outside hosts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { StaticResolver } from '../compile/dns.js';
import { emitFull } from '../ir/emit-text.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { Engine, type EngineEvent } from './engine.js';
import { compile, namesToResolve } from '../compile/compile.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planNetwork, runningClients, startSet } from '../model/topology.js';

function setup(opts: { overlay?: boolean; untidyFile?: string; shardClients?: number } = {}) {
  const backend = new SimBackend();
  const events: EngineEvent[] = [];
  const engine = new Engine({
    backend,
    resolver: new StaticResolver({ 'web.example.com': { a: ['203.0.113.10'] } }),
    uplink: 'world',
    now: () => 1_800_000_000,
    emit: (e) => events.push(e),
    world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
    ...opts,
  });
  const model: Model = defaultLayout();
  return { backend, engine, model, events };
}

async function start(model: Model, engine: Engine, ...names: string[]) {
  for (const q of startSet(model, names)) q.state = 'Running';
  await engine.converge(model);
}

const ALL_NETVMS = ['sys-net', 'sys-firewall', 'world'];
const web = { to: '203.0.113.10', proto: 'tcp' as const, dport: 80 };

test('starting work starts its netvm chain first and links it', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work');
  assert.deepEqual([...(await backend.live())].sort(), ['sys-firewall', 'sys-net', 'work', 'world']);
  assert.deepEqual(Object.fromEntries(await backend.links(ALL_NETVMS)), { 'sys-net': 'world', 'sys-firewall': 'sys-net', work: 'sys-firewall' });
  assert.deepEqual(events.find((e) => e.type === 'started'), { type: 'started', qubes: ['sys-net', 'sys-firewall', 'work'] });
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'accept');
});

test('a rule change reaches the kernel and cuts the established flow it forbids', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work', 'personal');
  const flow = { from: 'work', ...web, sport: 40000 };
  assert.equal(backend.probe(flow).verdict, 'accept');
  assert.equal((await backend.flows('sys-firewall')).length, 1);
  const personalBefore = JSON.stringify(backend.rulesets.get('personal'));
  model.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }];
  await engine.converge(model);
  assert.deepEqual(events.filter((e) => e.type === 'flow-cut').map((e) => e.type === 'flow-cut' && e.qube), ['work']);
  assert.equal(backend.probe(flow).verdict, 'reject', 'the same flow is now new and refused');
  assert.equal(JSON.stringify(backend.rulesets.get('personal')), personalBefore, 'other qubes untouched');
});

test('an established flow the new rules still allow survives', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work');
  backend.probe({ from: 'work', ...web, sport: 40001 });
  model.qubes.get('work')!.rules = [{ action: 'accept', proto: 'tcp', dstports: { start: 80, end: 80 } }];
  await engine.converge(model);
  assert.equal(events.filter((e) => e.type === 'flow-cut').length, 0);
  assert.equal((await backend.flows('sys-firewall')).length, 1);
});

test('a netvm that dies detaches its clients; when it starts again they are reattached', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work');
  await backend.tearDown(['sys-firewall']); // killed behind our back
  assert.deepEqual(await engine.noticeDeaths(model), ['sys-firewall']);
  assert.equal(model.qubes.get('sys-firewall')!.state, 'Halted');
  assert.deepEqual(events.find((e) => e.type === 'detached'), { type: 'detached', qubes: ['work'] });
  await engine.converge(model);
  assert.equal((await backend.links(ALL_NETVMS)).get('work'), undefined);
  await start(model, engine, 'sys-firewall');
  assert.deepEqual(events.find((e) => e.type === 'reattached'), { type: 'reattached', qubes: ['work'] });
  assert.equal((await backend.links(ALL_NETVMS)).get('work'), 'sys-firewall');
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'accept');
});

test('a failure to load one qube\'s rules blocks that qube only (fail closed)', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work', 'personal');
  const fw = () => backend.rulesets.get('sys-firewall')!;
  const personalChain = () => JSON.stringify(fw().tables.find((t) => t.name === 'qubes-firewall' && t.family === 'ip')!.chains.find((c) => c.name === 'qbs-10-137-0-4'));
  const before = personalChain();
  backend.failApplies.set('sys-firewall', 2); // the delta and the full load both fail
  model.qubes.get('work')!.rules = [{ action: 'accept', proto: 'tcp' }];
  await engine.converge(model);
  assert.equal(engine.status.get('work')?.state, 'blocked-fallback');
  assert.ok(events.some((e) => e.type === 'blocked' && e.qube === 'work'));
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'reject', 'work is blocked, not open');
  assert.equal(personalChain(), before, "personal's chain is byte-identical");
  assert.equal(backend.probe({ from: 'personal', ...web }).verdict, 'accept');
  assert.match(emitFull(fw()), /comment "qube=work base=blocked"/);
});

test('shutting down a netvm tears down its namespace; running clients stay, detached', async () => {
  const { backend, engine, model } = setup();
  await start(model, engine, 'work');
  assert.deepEqual(runningClients(model, 'sys-firewall').map((q) => q.name), ['work']);
  model.qubes.get('sys-firewall')!.state = 'Halted';
  await engine.converge(model);
  assert.equal((await backend.live()).has('sys-firewall'), false);
  assert.equal((await backend.live()).has('work'), true);
});

test('a name that does not resolve disables only its rule, with a warning', async () => {
  const { backend, engine, model, events } = setup();
  model.qubes.get('work')!.rules = [
    { action: 'accept', dsthost: { type: 'dsthost', text: 'nosuch.example.com' } },
    { action: 'accept', dsthost: { type: 'dsthost', text: 'web.example.com' }, proto: 'tcp' },
  ];
  await start(model, engine, 'work');
  assert.ok(events.some((e) => e.type === 'warning' && /nosuch\.example\.com/.test(e.diag.message)));
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'accept');
  assert.equal(backend.probe({ from: 'work', to: '203.0.113.20', proto: 'tcp', dport: 80 }).verdict, 'reject');
});

// Unsharded, and with the firewall tables sharded as finely as they go (a shard per client).
for (const shardClients of [undefined, 1])
test(`a rule edit takes the fast path: one chain recompiled, the same bytes a full compile gives${shardClients ? ' (sharded)' : ''}`, async () => {
  const { backend, engine, model, events } = setup({ shardClients });
  model.qubes.get('personal')!.rules = [{ action: 'accept', proto: 'tcp', dstports: { start: 22, end: 22 } }];
  await start(model, engine, 'work', 'personal');
  const flow = { from: 'work', ...web, sport: 40100 };
  assert.equal(backend.probe(flow).verdict, 'accept');
  const personalChain = () =>
    backend.rulesets.get('sys-firewall')!.tables.flatMap((t) => (t.family === 'ip' && t.name.startsWith('qubes-firewall') ? t.chains : [])).find((c) => c.name === 'qbs-10-137-0-4');
  assert.equal(backend.rulesets.get('sys-firewall')!.tables.filter((t) => t.family === 'ip' && t.name.startsWith('qubes-firewall-')).length, shardClients ? 2 : 0, 'shard tables');
  const untouched = personalChain();
  model.qubes.get('work')!.rules = [
    { action: 'accept', dsthost: { type: 'dsthost', text: 'web.example.com' }, proto: 'tcp', dstports: { start: 443, end: 443 } },
    ...Array.from({ length: 6 }, (_, i) => ({ action: 'accept' as const, dsthost: { type: 'dst4' as const, text: `198.51.100.${i + 10}/32`, addr: `198.51.100.${i + 10}`, prefix: 32 }, proto: 'udp' as const })),
  ];
  assert.equal(await engine.applyRuleEdits(model, ['work']), true);
  assert.equal(personalChain(), untouched, "personal's chain is the very same object: not recompiled");
  const fast = emitFull(backend.rulesets.get('sys-firewall')!);
  const full = new Engine({ backend: new SimBackend(), resolver: new StaticResolver({ 'web.example.com': { a: ['203.0.113.10'] } }), uplink: 'world', now: () => 1_800_000_000 });
  const { compile } = await import('../compile/compile.js');
  const { planNetwork } = await import('../model/topology.js');
  await full.resolve(model, 1_800_000_000);
  const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
  const ref = compile({ model, plan: planNetwork(model, { uplink: 'world', only: running }), resolutions: full.resolutions, now: 1_800_000_000, shardClients });
  assert.equal(fast.split('\n').sort().join('\n'), emitFull(ref.rulesets.get('sys-firewall')!).split('\n').sort().join('\n'));
  assert.ok(events.some((e) => e.type === 'flow-cut' && e.qube === 'work'), 'the flow on port 80 is cut');
  assert.equal(backend.probe(flow).verdict, 'reject');
  assert.equal(backend.probe({ from: 'work', to: '203.0.113.10', proto: 'tcp', dport: 443 }).verdict, 'accept');
});

for (const shardClients of [undefined, 1])
test(`an overlay engine loads an edit under fresh set names, and tidy() brings back exactly the compiled ruleset${shardClients ? ' (sharded)' : ''}`, async () => {
  const { backend, engine, model } = setup({ overlay: true, shardClients });
  const tcpTo = (addr: string, port: number) => ({ action: 'accept' as const, dsthost: { type: 'dst4' as const, text: `${addr}/32`, addr, prefix: 32 }, proto: 'tcp' as const, dstports: { start: port, end: port } });
  const more = [tcpTo('198.51.100.7', 443), tcpTo('198.51.100.8', 443), tcpTo('198.51.100.9', 443)]; // enough to pack into a set
  model.qubes.get('work')!.rules = [tcpTo('203.0.113.10', 80), ...more];
  await start(model, engine, 'work');
  const compiled = () => {
    const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    return compile({ model, plan: planNetwork(model, { uplink: 'world', only: running }), resolutions: engine.resolutions, now: 1_800_000_000, shardClients }).rulesets.get('sys-firewall')!;
  };
  const sets = () => backend.rulesets.get('sys-firewall')!.tables.flatMap((t) => t.sets.map((x) => x.name)).filter((n) => n.startsWith('qbs-10-137-0-3-'));
  assert.deepEqual(sets(), ['qbs-10-137-0-3-dpt0']);
  model.qubes.get('work')!.rules = [tcpTo('203.0.113.20', 80), ...more];
  assert.equal(await engine.applyRuleEdits(model, ['work']), true);
  assert.ok(engine.needsTidy);
  // What the kernel holds (the sim applies the overlay's transaction): the old set stays for the
  // old rules below the new ones, and the new set comes beside it under a fresh name.
  assert.deepEqual(sets(), ['qbs-10-137-0-3-dpt0', 'qbs-10-137-0-3-dpt0-g1'], 'the set the kernel still has is not replaced in place');
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'reject');
  assert.equal(backend.probe({ from: 'work', ...web, to: '203.0.113.20' }).verdict, 'accept');
  await engine.tidy(model);
  assert.ok(!engine.needsTidy);
  assert.equal(emitFull(backend.rulesets.get('sys-firewall')!), emitFull(compiled()), 'what a full compile gives, byte for byte');
  assert.equal(backend.probe({ from: 'work', ...web, to: '203.0.113.20' }).verdict, 'accept');
});

test('a daemon that dies before tidying leaves a note: the next converge loads those nodes whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-untidy-'));
  try {
    const untidyFile = join(dir, 'run', 'untidy');
    const { backend, engine, model } = setup({ overlay: true, untidyFile });
    const tcpTo = (addr: string) => ({ action: 'accept' as const, dsthost: { type: 'dst4' as const, text: `${addr}/32`, addr, prefix: 32 }, proto: 'tcp' as const, dstports: { start: 80, end: 80 } });
    const more = ['198.51.100.7', '198.51.100.8', '198.51.100.9'].map(tcpTo);
    model.qubes.get('work')!.rules = [tcpTo('203.0.113.10'), ...more];
    await start(model, engine, 'work');
    assert.equal(existsSync(untidyFile), false, 'nothing to note after full loads');
    model.qubes.get('work')!.rules = [tcpTo('203.0.113.20'), ...more];
    assert.equal(await engine.applyRuleEdits(model, ['work']), true);
    assert.equal(readFileSync(untidyFile, 'utf8'), 'sys-firewall\n', 'noted before the overlay loaded');
    // The daemon dies here. The offline CLI's engine assumes the kernel holds compile(model)...
    const offline = new Engine({ backend, resolver: new StaticResolver({}), uplink: 'world', now: () => 1_800_000_000, untidyFile });
    await offline.converge(model, { assume: model });
    // ...but not for the noted node, which it loaded whole: exactly the compiled ruleset now.
    const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const want = compile({ model, plan: planNetwork(model, { uplink: 'world', only: running }), resolutions: offline.resolutions, now: 1_800_000_000 }).rulesets.get('sys-firewall')!;
    assert.equal(emitFull(backend.rulesets.get('sys-firewall')!), emitFull(want));
    assert.equal(existsSync(untidyFile), false, 'the note goes once the node is loaded');
    // A daemon that lives tidies up, and the note goes then.
    model.qubes.get('work')!.rules = [tcpTo('203.0.113.30'), ...more];
    const { engine: again } = setup({ overlay: true, untidyFile });
    await start(model, again, 'work');
    assert.equal(await again.applyRuleEdits(model, ['work']), true);
    assert.ok(existsSync(untidyFile));
    await again.tidy(model);
    assert.equal(existsSync(untidyFile), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rule edit for a qube whose netvm the engine has not loaded falls back to the full path', async () => {
  const { engine, model } = setup();
  for (const q of startSet(model, ['work'])) q.state = 'Running';
  model.qubes.get('work')!.rules = [];
  assert.equal(await engine.applyRuleEdits(model, ['work']), false, 'never converged: it cannot know what sys-firewall holds');
  // Converged, but what sys-firewall holds is unknown (as after a failed load): the full path again.
  await engine.converge(model);
  engine.applied.delete('sys-firewall');
  model.qubes.get('work')!.rules = [{ action: 'accept', proto: 'udp' }];
  assert.equal(await engine.applyRuleEdits(model, ['work']), false, "sys-firewall's rules unknown");
});

test('changing the netvm of a running qube moves its link live; a halted netvm is refused', async () => {
  const { backend, engine, model } = setup();
  const { setProp } = await import('../model/ops.js');
  await start(model, engine, 'work');
  const work = model.qubes.get('work')!;
  assert.throws(() => setProp(model, work, 'netvm', 'nosuch'), /no such qube/);
  const { createQube } = await import('../model/ops.js');
  createQube(model, { name: 'sys-vpn', provides_network: true, netvm: 'sys-net' });
  assert.throws(() => setProp(model, work, 'netvm', 'sys-vpn'), /cannot dynamically attach to stopped qube 'sys-vpn'/);
  setProp(model, work, 'netvm', 'sys-net');
  await engine.converge(model);
  assert.equal((await backend.links(ALL_NETVMS)).get('work'), 'sys-net');
  assert.equal(backend.probe({ from: 'work', ...web }).verdict, 'accept');
  const fwChains = backend.rulesets.get('sys-firewall')!.tables.find((t) => t.name === 'qubes-firewall' && t.family === 'ip')!.chains.map((c) => c.name);
  assert.ok(!fwChains.includes('qbs-10-137-0-3'), 'sys-firewall no longer carries a chain for work');
});

test('a netvm whose namespace vanishes just before a converge is reported dead, not silently re-created', async () => {
  const { backend, engine, model, events } = setup();
  await start(model, engine, 'work');
  await backend.tearDown(['sys-firewall']); // between the store's look and the converge
  await engine.converge(model);
  assert.equal(model.qubes.get('sys-firewall')!.state, 'Halted');
  assert.ok(events.some((e) => e.type === 'died' && e.qubes.includes('sys-firewall')));
  assert.equal((await backend.live()).has('sys-firewall'), false);
});

test('the daemon\'s DNS refresh in two halves: asking changes nothing (an edit meanwhile keeps the held answer, as the kernel), recording applies it', async () => {
  const backend = new SimBackend();
  const zone: Record<string, { a: string[]; ttl: number }> = { 'flip.example.com': { a: ['203.0.113.10'], ttl: 5 } };
  let now = 1_800_000_000;
  const engine = new Engine({
    backend,
    resolver: new StaticResolver(zone),
    uplink: 'world',
    now: () => now,
    overlay: true,
    world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
  });
  const model = defaultLayout();
  const flip = { action: 'accept' as const, dsthost: { type: 'dsthost' as const, text: 'flip.example.com' }, proto: 'tcp' as const };
  model.qubes.get('work')!.rules = [flip];
  await start(model, engine, 'work', 'personal');
  const to = (addr: string, sport: number) => backend.probe({ from: 'work', to: addr, proto: 'tcp', dport: 80, sport }).verdict;
  assert.equal(to('203.0.113.10', 42000), 'accept');
  zone['flip.example.com'] = { a: ['203.0.113.20'], ttl: 5 };
  now += 6;
  const asked = await engine.askNames(namesToResolve(model, now));
  assert.deepEqual([...asked.answers.keys()], ['flip.example.com'], 'the expired name is asked');
  assert.equal(engine.dnsExpiry('flip.example.com'), now - 1, 'asking records nothing');
  // An edit while the answer is out: it compiles with the answer held (what the kernel's sets hold
  // for the name), and asks no resolver in front of the kernel.
  model.qubes.get('work')!.rules = [flip, { action: 'accept', dsthost: { type: 'dst4', text: '198.51.100.7', addr: '198.51.100.7', prefix: 32 }, proto: 'tcp' }];
  assert.equal(await engine.applyRuleEdits(model, ['work']), true);
  assert.equal(to('198.51.100.7', 42001), 'accept', 'the edit is in');
  assert.equal(to('203.0.113.10', 42002), 'accept', 'the held answer still stands');
  assert.equal(await engine.refreshNames(model, { asked }), true);
  assert.equal(to('203.0.113.20', 42003), 'accept', 'recorded: the new answer is in the kernel');
  assert.equal(to('203.0.113.10', 42004), 'reject');
  assert.equal(engine.dnsExpiry('flip.example.com'), now + 5);
});

test('a DNS refresh changes only the sets of the qubes that name the host, and cuts flows to the old address', async () => {
  const backend = new SimBackend();
  const zone: Record<string, { a: string[]; ttl: number }> = { 'flip.example.com': { a: ['203.0.113.10'], ttl: 5 } };
  let now = 1_800_000_000;
  const events: EngineEvent[] = [];
  const zoneResolver = new StaticResolver(zone);
  let asked = 0;
  const engine = new Engine({
    backend,
    resolver: { resolveAll: (names) => (asked++, zoneResolver.resolveAll(names)) },
    uplink: 'world',
    now: () => now,
    emit: (e) => events.push(e),
    world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
  });
  const model = defaultLayout();
  model.qubes.get('work')!.rules = [{ action: 'accept', dsthost: { type: 'dsthost', text: 'flip.example.com' }, proto: 'tcp' }];
  await start(model, engine, 'work', 'personal');
  const flow = { from: 'work', to: '203.0.113.10', proto: 'tcp' as const, dport: 80, sport: 41000 };
  assert.equal(backend.probe(flow).verdict, 'accept');
  const personal = () => backend.rulesets.get('sys-firewall')!.tables.find((t) => t.name === 'qubes-firewall' && t.family === 'ip')!.chains.find((c) => c.name === 'qbs-10-137-0-4');
  const untouched = personal();
  assert.equal(engine.nextDnsRefresh(now), 5);
  zone['flip.example.com'] = { a: ['203.0.113.20'], ttl: 5 };
  const askedBefore = asked;
  assert.equal(await engine.refreshNames(model), true);
  assert.equal(asked, askedBefore, 'nothing due yet: nothing asked');
  assert.equal(backend.probe({ ...flow, sport: 41001 }).verdict, 'accept', 'the old answer still holds before its TTL');
  now += 6;
  assert.equal(await engine.refreshNames(model), true);
  assert.equal(backend.probe({ ...flow, to: '203.0.113.20', sport: 41002 }).verdict, 'accept', 'the new address is allowed');
  assert.equal(backend.probe(flow).verdict, 'reject', 'the flow to the old address was cut and is refused');
  assert.ok(events.some((e) => e.type === 'flow-cut' && e.qube === 'work'));
  assert.equal(personal(), untouched, 'personal was not recompiled');
});
