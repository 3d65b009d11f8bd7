import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gateway, ipv6Enabled, netvmName, qubeIp, qubeIp6, vmidToIpv4 } from './addressing.js';
import { defaultLayout, newQube } from './layout.js';
import { clientsOf, netvmChain, planNetwork, validateNetvm, validateQubeName } from './topology.js';

test('vmid_to_ipv4 follows the R4.2 formula, never ending in .0 or .255', () => {
  assert.equal(vmidToIpv4('10.137', 3), '10.137.0.3');
  assert.equal(vmidToIpv4('10.137', 254), '10.137.0.254');
  assert.equal(vmidToIpv4('10.137', 255), '10.137.1.1');
  assert.equal(vmidToIpv4('10.137', 508), '10.137.1.254');
  assert.equal(vmidToIpv4('10.137', 509), '10.137.2.1');
  for (let id = 255; id < 5000; id++) assert.doesNotMatch(vmidToIpv4('10.137', id), /\.(0|255)$/);
});

test('default layout: addresses, gateways, default netvm and the vault without one', () => {
  const m = defaultLayout();
  const q = (n: string) => m.qubes.get(n)!;
  assert.equal(netvmName(m, q('work')), 'sys-firewall');
  assert.equal(netvmName(m, q('sys-firewall')), 'sys-net');
  assert.equal(netvmName(m, q('vault')), null);
  assert.equal(qubeIp(m, q('work')), '10.137.0.3');
  assert.equal(gateway(m, q('work')), '10.137.0.2');
  assert.equal(qubeIp(m, q('sys-net')), '10.137.0.1');
  assert.equal(gateway(m, q('sys-net')), null);
  assert.equal(qubeIp(m, q('vault')), null, 'a qube that is not networked has no ip');
  assert.deepEqual(netvmChain(m, q('work')).map((x) => x.name), ['sys-firewall', 'sys-net']);
  assert.deepEqual(clientsOf(m, 'sys-firewall').map((x) => x.name), ['work', 'personal', 'untrusted']);
});

test('ipv6 feature propagates down from the netvm and can be cleared per qube', () => {
  const m = defaultLayout();
  m.qubes.get('sys-net')!.features['ipv6'] = '1';
  const work = m.qubes.get('work')!;
  assert.equal(ipv6Enabled(m, work), true);
  assert.equal(qubeIp6(m, work), 'fd09:24ef:4179::a89:3');
  work.features['ipv6'] = '';
  assert.equal(qubeIp6(m, work), null);
});

test('disposables use 10.138 from their dispid', () => {
  const m = defaultLayout();
  const d = newQube(40, 'disp12', 'red', { klass: 'DispVM', dispid: 12 });
  m.qubes.set(d.name, d);
  assert.equal(qubeIp(m, d), '10.138.0.12');
});

test('netvm must provide network and loops are refused', () => {
  const m = defaultLayout();
  const r1 = validateNetvm(m, m.qubes.get('work')!, 'personal');
  assert.equal(r1.ok, false);
  assert.match(!r1.ok ? r1.error.message : '', /does not provide network/);
  const r2 = validateNetvm(m, m.qubes.get('sys-net')!, 'sys-firewall');
  assert.equal(r2.ok, false);
  assert.match(!r2.ok ? r2.error.message : '', /loops/);
  assert.equal(validateNetvm(m, m.qubes.get('work')!, 'sys-net').ok, true);
});

test('qube names follow Qubes rules', () => {
  for (const good of ['work', 'a', 'sys-net', 'A_b.c-1', 'x'.repeat(31)]) assert.equal(validateQubeName(good).ok, true, good);
  for (const bad of ['', '1abc', '-x', 'a b', 'x'.repeat(32), 'a/b', 'dom0', 'none']) assert.equal(validateQubeName(bad).ok, false, bad);
});

test('network plan: /32 links, vif names, groups and routes as in Qubes', () => {
  const plan = planNetwork(defaultLayout(), { uplink: 'world' });
  const n = (name: string) => plan.nodes.find((x) => x.name === name)!;
  assert.deepEqual(n('work').ifaces, [
    { name: 'eth0', group: 0, addrs: [{ addr: '10.137.0.3', len: 32 }], peer: { node: 'sys-firewall', iface: 'vif3.0' } },
  ]);
  assert.deepEqual(n('work').routes, [
    { dst: '10.137.0.2/32', dev: 'eth0', family: 4 },
    { dst: 'default', dev: 'eth0', via: '10.137.0.2', family: 4 },
  ]);
  const fw = n('sys-firewall');
  assert.equal(fw.forwarding, true);
  assert.deepEqual(fw.ifaces.map((i) => [i.name, i.group]), [['eth0', 1], ['vif3.0', 2], ['vif4.0', 2], ['vif5.0', 2]]);
  assert.deepEqual(n('sys-net').ifaces.map((i) => [i.name, i.group, i.peer?.node]), [['eth0', 1, 'world'], ['vif2.0', 2, 'sys-firewall']]);
  assert.equal(plan.nodes.some((x) => x.name === 'vault'), false, 'vault has no link at all');
  assert.deepEqual(plan.upstreamDns, ['192.0.2.53']);
});
