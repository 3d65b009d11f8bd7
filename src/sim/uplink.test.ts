// The simulator on plans with a real uplink (no world node): with `veth-host` the top netvm's eth0
// leads to the `host` node, where the outside begins ("delivered to the outside via the host");
// with `move:DEV` probes leave through the physical interface and are not followed further.
// Address plan: qubes 10.137.0.x (sys-net .1, sys-firewall .2, work .3); the host link
// 100.100.1.1 (host) / 100.100.1.2 (sys-net); the host's resolver 192.168.1.1; outside 1.1.1.1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compile } from '../compile/compile.js';
import { defaultLayout } from '../model/layout.js';
import type { NetPlan } from '../model/netplan.js';
import { planNetwork } from '../model/topology.js';
import { simulate } from './walk.js';

function world(plan: NetPlan) {
  const model = defaultLayout();
  const { rulesets, diagnostics } = compile({ model, plan, resolutions: new Map(), now: 0 });
  assert.deepEqual(diagnostics, []);
  return { plan, rulesets };
}
const veth = () => world(planNetwork(defaultLayout(), { uplink: 'veth-host', upstreamDns: ['192.168.1.1'] }));

test('veth-host: a probe to the internet is delivered to the outside via the host, and answered', () => {
  const r = simulate(veth(), { from: 'work', to: '1.1.1.1', proto: 'tcp', dport: 443 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.node, 'host');
  assert.equal(r.reason, 'delivered to the outside via the host (1.1.1.1)');
  assert.deepEqual(r.hops.map((h) => [h.node, h.outcome]), [['work', 'sent'], ['sys-firewall', 'forwarded'], ['sys-net', 'forwarded'], ['host', 'delivered']]);
  assert.equal(r.hops[3]!.route, 'outside (via the host)');
  assert.equal(r.hops[3]!.packet.saddr, '100.100.1.2', 'sys-net masquerades to its uplink address');
  assert.equal(r.reply?.verdict, 'accept', r.reply?.reason);
  assert.equal(r.reply?.node, 'work');
});

test('veth-host: DNS to 10.139.1.1 is DNATed by sys-net to the host\'s resolver and leaves via the host', () => {
  const r = simulate(veth(), { from: 'work', to: '10.139.1.1', proto: 'udp', dport: 53 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.reason, 'delivered to the outside via the host (192.168.1.1)');
});

test('veth-host: nothing new from the uplink reaches sys-net or a qube, not even from the host', () => {
  const w = veth();
  const r = simulate(w, { from: 'outside', to: '10.137.0.3', proto: 'tcp', dport: 22 });
  assert.equal(r.verdict, 'drop', r.reason);
  assert.equal(r.node, 'host', 'sys-net does not route to work (behind sys-firewall\'s masquerade): back to the host, which cannot either');
  const ping = simulate(w, { from: 'host', to: '100.100.1.2', proto: 'icmp' });
  assert.equal(ping.verdict, 'drop', ping.reason);
  assert.equal(ping.reason, 'dropped at sys-net: input ip qubes input by the policy (drop)');
});

test('move:DEV: probes leave through the physical interface and are not followed beyond it', () => {
  const w = world(planNetwork(defaultLayout(), { uplink: 'move', moveDev: 'enp3s0', upstreamDns: ['192.168.1.1'] }));
  const r = simulate(w, { from: 'work', to: '1.1.1.1', proto: 'tcp', dport: 443 });
  assert.equal(r.verdict, 'drop');
  assert.equal(r.node, 'sys-net');
  assert.equal(r.reason, 'dropped at sys-net: left through enp3s0, a physical uplink: the outside beyond it is not simulated');
  assert.equal(r.hops.at(-1)!.out, 'enp3s0');
  assert.match(simulate(w, { from: 'outside', to: '10.137.0.3', proto: 'tcp', dport: 22 }).reason, /no outside/);
});
