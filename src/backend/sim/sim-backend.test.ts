// The sim backend's flow operations, on the default Qubes layout (work 10.137.0.3; outside host 203.0.113.10).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qubesWorld } from '../../sim/testing/qubes.js';
import { SimBackend } from './sim-backend.js';
import { compileCases } from '../../../test/cases/compile/cases.js';
import { compile } from '../../compile/compile.js';
import { describeOrigin } from '../../model/origin.js';
import { planNetwork } from '../../model/topology.js';

async function running() {
  const world = qubesWorld();
  const be = new SimBackend();
  await be.bringUp(world.plan, ['world', 'sys-net', 'sys-firewall', 'work'], world.rulesets);
  for (const [proto, sport] of [['tcp', 40000], ['tcp', 40001], ['udp', 40000]] as const)
    assert.equal(be.probe({ from: 'work', to: '203.0.113.10', proto, dport: 80, sport }).verdict, 'accept');
  return be;
}

const flowsAt = async (be: SimBackend) => (await be.flows('sys-firewall')).map((f) => `${f.proto} ${f.sport}`).sort();

test('deleteFlow cuts only the flow of its protocol and source port, as conntrack -D does', async () => {
  const be = await running();
  assert.deepEqual(await flowsAt(be), ['tcp 40000', 'tcp 40001', 'udp 40000']);
  await be.deleteFlow('sys-firewall', { family: 4, proto: 'tcp', src: '10.137.0.3', dst: '203.0.113.10', sport: 40000, dport: 80 });
  assert.deepEqual(await flowsAt(be), ['tcp 40001', 'udp 40000']);
  assert.equal((await be.flows('sys-net')).length, 3, 'other nodes keep their flows');
});

test('deleteFlow without ports cuts every flow of that protocol between the two addresses', async () => {
  const be = await running();
  await be.deleteFlow('sys-firewall', { family: 4, proto: 'tcp', src: '10.137.0.3', dst: '203.0.113.10' });
  assert.deepEqual(await flowsAt(be), ['udp 40000']);
});

test('counters carry the raw comment and the origin parsed from it, as the kernel would report them', async () => {
  const c = compileCases().find((x) => x.name === 'packed')!;
  const plan = planNetwork(c.model, { uplink: c.uplink });
  const out = compile({ model: c.model, plan, resolutions: c.resolutions, now: c.now, layout: c.layout });
  const be = new SimBackend();
  await be.bringUp(plan, plan.nodes.map((n) => n.name), out.rulesets);
  // rule 0 drops 203.0.113.66; rules 1-6 (packed into one set lookup) accept 203.0.113.1-6 tcp/443
  assert.equal(be.probe({ from: 'work', to: '203.0.113.66', proto: 'tcp', dport: 443, sport: 40000 }).verdict, 'reject');
  assert.equal(be.probe({ from: 'work', to: '203.0.113.3', proto: 'tcp', dport: 443, sport: 40000 }).verdict, 'accept');
  const counted = (await be.counters('sys-firewall')).filter((x) => x.packets > 0 && x.origin?.kind !== 'base');
  assert.deepEqual(
    counted.map((x) => [x.comment, x.origin, x.packets]),
    [
      ['qube=work rule=0', { kind: 'rule', qube: 'work', index: 0 }, 1],
      ['qube=work rules=1-9,20', { kind: 'rules', qube: 'work', ranges: [[1, 9], [20, 20]] }, 1],
    ],
  );
  assert.deepEqual(counted.map((x) => describeOrigin(x.origin!)), ['work rule 0', 'work rules 1-9,20 packed']);
});

test('a counted rule without a comment (not written by qnet) has origin null', async () => {
  const c = compileCases().find((x) => x.name === 'packed')!;
  const plan = planNetwork(c.model, { uplink: c.uplink });
  const out = compile({ model: c.model, plan, resolutions: c.resolutions, now: c.now, layout: c.layout });
  const fw = out.rulesets.get('sys-firewall')!;
  // The kernel knows only the comment: without it, nothing is parsed, whatever the IR said.
  const bare = { tables: fw.tables.map((t) => ({ ...t, chains: t.chains.map((ch) => ({ ...ch, rules: ch.rules.map(({ comment: _, ...r }) => r) })) })) };
  const be = new SimBackend();
  await be.bringUp(plan, plan.nodes.map((n) => n.name), new Map([...out.rulesets, ['sys-firewall', bare]]));
  be.probe({ from: 'work', to: '203.0.113.66', proto: 'tcp', dport: 443, sport: 40000 });
  const all = await be.counters('sys-firewall');
  assert.ok(all.some((x) => x.packets > 0));
  for (const x of all) assert.deepEqual([x.comment, x.origin], ['', null]);
});

// apply() runs the netns backend's transaction on what the node holds, so a caller that is wrong
// about what the kernel holds is refused, as nft would refuse it, and nothing changes.
test('apply runs the delta from `before` on what the node holds: a wrong `before` is refused and changes nothing', async () => {
  const be = await running();
  const held = be.rulesets.get('sys-firewall')!;
  const fw = held.tables.find((t) => t.name === 'qubes-firewall' && t.family === 'ip')!;
  // The caller believes the node holds a set it does not: the delta deletes it, which nft refuses.
  const ghost = { kind: 'set' as const, name: 'ghost', keyType: ['ipv4_addr' as const], interval: false, elements: [] };
  const believed = { tables: held.tables.map((t) => (t === fw ? { ...t, sets: [...t.sets, ghost] } : t)) };
  await assert.rejects(be.apply('sys-firewall', believed, held), /no such set ghost/);
  assert.equal(be.rulesets.get('sys-firewall'), held, 'the node holds what it held');
  // The right `before`: accepted, and the node then holds `after`.
  assert.ok(fw.chains.some((c) => !c.base && c.rules.length > 1), 'the fixture has a client chain to shorten');
  const after = { tables: held.tables.map((t) => (t === fw ? { ...t, chains: t.chains.map((c) => (c.base ? c : { ...c, rules: c.rules.slice(-1) })) } : t)) };
  assert.equal(await be.apply('sys-firewall', held, after), after);
  const now = be.rulesets.get('sys-firewall')!.tables.find((t) => t.name === 'qubes-firewall' && t.family === 'ip')!;
  assert.ok(now.chains.filter((c) => !c.base).every((c) => c.rules.length === 1));
});
