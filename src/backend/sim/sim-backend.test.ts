// The sim backend's flow operations, on the default Qubes layout (work 10.137.0.3; outside host 203.0.113.10).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qubesWorld } from '../../sim/testing/qubes.js';
import { SimBackend } from './sim-backend.js';

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
