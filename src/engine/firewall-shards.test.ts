// Sharding the firewall tables (compile/passes/firewall.ts) moves client chains into tables of
// their own, never a verdict: for random policies on eight app qubes behind sys-firewall, every
// probe gets the same verdict from the simulator on the sharded and the unsharded kernel. And the
// layout itself: the guard lets on every client and nobody else, each shard dispatches only its own.
// Address plan: 10.137.0.0/16 qubes, 203.0.113.0/24 and 198.51.100.0/24 outside hosts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { StaticResolver } from '../compile/dns.js';
import { FIREWALL_TABLE, firewallShards, firewallTableFor, isFirewallTable } from '../compile/names.js';
import { qubeIp } from '../model/addressing.js';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { parseApiRule } from '../model/rule-parse.js';
import type { Rule } from '../model/rule.js';
import { planNetwork, startSet } from '../model/topology.js';
import { compile } from '../compile/compile.js';
import { canonicalRuleset } from '../ir/canonical.test-helpers.js';
import { Engine } from './engine.js';

const APPS = ['work', 'personal', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
const DSTS = ['203.0.113.10', '203.0.113.20', '198.51.100.7'];
const PORTS = [22, 80, 443];

const arbLine = fc
  .record({
    action: fc.constantFrom('accept', 'drop'),
    dst: fc.option(fc.constantFrom(...DSTS, '203.0.113.0/24'), { nil: undefined }),
    proto: fc.option(fc.constantFrom('tcp', 'udp', 'icmp'), { nil: undefined }),
    port: fc.option(fc.constantFrom(...PORTS), { nil: undefined }),
  })
  .map(({ action, dst, proto, port }) => [`action=${action}`, dst && `dsthost=${dst}`, proto && `proto=${proto}`, port && proto !== 'icmp' && proto && `dstports=${port}`].filter(Boolean).join(' '));

const rules = (lines: string[]): Rule[] =>
  lines.map((l) => {
    const r = parseApiRule(l);
    if (!r.ok) throw new Error(`${l}: ${r.error.message}`);
    return r.value;
  });

function layout(policies: string[][]): Model {
  const m = defaultLayout();
  APPS.slice(2).forEach((n, i) => m.qubes.set(n, newQube(20 + i, n, 'red', { netvm: 'sys-firewall' })));
  APPS.forEach((n, i) => (m.qubes.get(n)!.rules = rules(policies[i]!)));
  for (const q of startSet(m, APPS)) q.state = 'Running';
  return m;
}

function engineOn(backend: SimBackend, shardClients?: number): Engine {
  return new Engine({
    backend,
    resolver: new StaticResolver({}),
    uplink: 'world',
    now: () => 1_800_000_000,
    world: { ensure: async (plan) => backend.bringUp(plan, ['world']), destroy: async () => backend.tearDown(['world']) },
    ...(shardClients ? { shardClients } : {}),
  });
}

/** A kernel converged to `m`. */
async function kernel(m: Model, shardClients?: number): Promise<SimBackend> {
  const backend = new SimBackend();
  await engineOn(backend, shardClients).converge(m);
  return backend;
}

test('sharded firewall tables give every probe the verdict the unsharded ones give, for random policies', async () => {
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(arbLine, { maxLength: 6 }), { minLength: APPS.length, maxLength: APPS.length }), fc.constantFrom(1, 2, 3), async (policies, per) => {
      const plain = await kernel(layout(policies));
      const sharded = await kernel(layout(policies), per);
      const fw = sharded.rulesets.get('sys-firewall')!;
      assert.equal(fw.tables.filter((t) => t.family === 'ip' && isFirewallTable(t.name) && t.name !== FIREWALL_TABLE).length, firewallShards(APPS.length, per));
      let sport = 40000;
      for (const from of APPS)
        for (const to of DSTS)
          for (const proto of ['tcp', 'udp', 'icmp'] as const)
            for (const dport of proto === 'icmp' ? [undefined] : PORTS) {
              const p = { from, to, proto, ...(dport ? { dport } : {}), sport: sport++ };
              const want = plain.probe(p).verdict;
              assert.equal(sharded.probe(p).verdict, want, `${from} → ${to} ${proto}/${dport ?? ''} (${per} per shard)`);
              seen.set(want, (seen.get(want) ?? 0) + 1);
            }
    }),
    { numRuns: 40 },
  );
  assert.ok((seen.get('accept') ?? 0) > 100 && (seen.get('reject') ?? 0) > 100, `verdicts seen: ${JSON.stringify([...seen])}`);
});

test('the sharded layout: the guard holds every client and drops other sources; each shard dispatches its own clients only', async () => {
  const m = layout(APPS.map(() => ['action=accept']));
  const backend = await kernel(m, 2);
  const fw = backend.rulesets.get('sys-firewall')!;
  const ip = fw.tables.filter((t) => t.family === 'ip' && isFirewallTable(t.name));
  const guard = ip.find((t) => t.name === FIREWALL_TABLE)!;
  const addrOf = (n: string) => qubeIp(m, m.qubes.get(n)!)!;
  // Elements name their qube in a comment.
  const members = (t: (typeof ip)[number], name: string) => t.sets.find((s) => s.name === name)!.elements.map((e) => e.comment).sort();
  assert.deepEqual(members(guard, 'clients'), [...APPS].sort());
  assert.equal(guard.chains.length, 1, 'the guard holds no client chain');
  assert.equal(guard.chains[0]!.base?.policy, 'drop');
  const shards = ip.filter((t) => t !== guard);
  assert.equal(shards.length, firewallShards(APPS.length, 2));
  for (const t of shards) {
    assert.equal(t.chains[0]!.base?.policy, 'accept');
    const mine = APPS.filter((n) => firewallTableFor(addrOf(n), shards.length) === t.name);
    assert.deepEqual(members(t, 'dispatch'), mine.sort(), t.name);
    assert.deepEqual(t.chains.slice(1).map((c) => c.name).sort(), mine.map((n) => `qbs-${addrOf(n).replace(/\./g, '-')}`).sort());
  }
  // What the guard lets on: replies, what no client sent, a client's source; the rest meets its drop.
  assert.deepEqual(guard.chains[0]!.rules.map((r) => r.comment), ['base=replies', 'base=not-from-a-client', 'base=known-client']);
  assert.equal(backend.probe({ from: 'work', to: DSTS[0]!, proto: 'tcp', dport: 80 }).verdict, 'accept');
});

test('the number of shards follows the running clients: tables appear and go, and the kernel holds the full compile each time', async () => {
  const m = layout(APPS.map(() => ['action=accept']));
  const backend = new SimBackend();
  const engine = engineOn(backend, 3);
  const shardTables = () => backend.rulesets.get('sys-firewall')!.tables.filter((t) => t.family === 'ip' && isFirewallTable(t.name) && t.name !== FIREWALL_TABLE).map((t) => t.name);
  const running = (n: number) => APPS.forEach((a, i) => (m.qubes.get(a)!.state = i < n ? 'Running' : 'Halted'));
  for (const n of [8, 2, 5, 8]) {
    running(n);
    await engine.converge(m);
    assert.equal(shardTables().length, n > 3 ? firewallShards(n, 3) : 0, `${n} clients`);
    const only = new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const want = compile({ model: m, plan: planNetwork(m, { uplink: 'world', only }), resolutions: new Map(), now: 1_800_000_000, shardClients: 3 }).rulesets.get('sys-firewall')!;
    // Tables and elements in any order: the kernel keeps them in the order they were made.
    assert.deepEqual(canonicalRuleset(backend.rulesets.get('sys-firewall')), canonicalRuleset(want), `${n} clients: the full compile`);
    const plain = await kernel(m);
    for (const from of APPS.slice(0, n)) assert.equal(backend.probe({ from, to: DSTS[0]!, proto: 'tcp', dport: 80 }).verdict, plain.probe({ from, to: DSTS[0]!, proto: 'tcp', dport: 80 }).verdict, `${from} with ${n} clients`);
  }
});
