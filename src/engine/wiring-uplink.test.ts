// The composition root's part in the real uplinks: what the plan gets from the host (its resolvers
// as read from fixed text here, the host link tag, the device), and nothing for world and none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout } from '../model/layout.js';
import { hostLinkTag, startSet } from '../model/topology.js';
import { uplinkPlanOptions, wire } from './wiring.js';
import type { SimBackend } from '../backend/sim/sim-backend.js';
import { emitFull } from '../ir/emit-text.js';

const files = (main: string, resolved = '') => (p: string) => (p === '/etc/resolv.conf' ? main : p === '/run/systemd/resolve/resolv.conf' ? resolved : undefined);

test('uplinkPlanOptions: host resolvers, tag and device for real uplinks only', () => {
  const m = defaultLayout();
  m.uplink = 'veth-host';
  assert.deepEqual(uplinkPlanOptions(m, 'qn-', files('nameserver 127.0.0.53\n', 'nameserver 192.168.1.1\n')), { upstreamDns: ['192.168.1.1'], hostTag: hostLinkTag('qn-') });
  m.uplink = 'move:enp3s0';
  assert.deepEqual(uplinkPlanOptions(m, 'qn-', files('nameserver 10.0.0.1\n')), { upstreamDns: ['10.0.0.1'], hostTag: hostLinkTag('qn-'), moveDev: 'enp3s0' });
  let read = 0;
  for (const u of ['world', 'none', undefined]) {
    const x = defaultLayout();
    if (u) x.uplink = u;
    assert.deepEqual(uplinkPlanOptions(x, 'qn-', () => (read++, undefined)), {});
  }
  assert.equal(read, 0, 'the host files are not even read for world and none');
});

test('wire (sim runtime) with veth-host: the engine plans with the host resolvers; probes leave via the host', async () => {
  const model = defaultLayout();
  model.uplink = 'veth-host';
  const w = wire({ stateDir: '/nonexistent', runtime: { backend: 'sim', prefix: 'qn-' }, model, now: () => 0, readHostFile: files('nameserver 192.168.1.1\n') });
  for (const q of startSet(model, ['work'])) q.state = 'Running';
  await w.engine.converge(model);
  const backend = w.backend as SimBackend;
  assert.deepEqual([...(await backend.live())].sort(), ['sys-firewall', 'sys-net', 'work'], 'no world, and the host is not a namespace');
  assert.match(emitFull(backend.rulesets.get('sys-net')!), /ip daddr 10\.139\.1\.1 udp dport 53 dnat to 192\.168\.1\.1/);
  const r = backend.probe({ from: 'work', to: '10.139.1.1', proto: 'udp', dport: 53 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.reason, 'delivered to the outside via the host (192.168.1.1)');
});
