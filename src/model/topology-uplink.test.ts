// The real uplinks in the network plan: `veth-host` (a veth into the host's namespace, NATed there)
// and `move:DEV` (a physical interface moved into the top netvm). Pure planner tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout, newQube } from './layout.js';
import { QnetError } from './result.js';
import { DEFAULT_HOST_TAG, hostIfaceName, hostLinkTag, planNetwork, validateQubeName } from './topology.js';

test('`host` is a reserved qube name', () => {
  const r = validateQubeName('host');
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.error.code, 'QNET2002');
});

test('host link tag: 5 base-36 characters, stable, different per prefix; interface names fit IFNAMSIZ', () => {
  assert.match(DEFAULT_HOST_TAG, /^[0-9a-z]{5}$/);
  assert.equal(hostLinkTag('qnet-'), DEFAULT_HOST_TAG);
  assert.equal(hostLinkTag('qt-1234-'), hostLinkTag('qt-1234-'));
  const tags = new Set(['qnet-', 'qnet2-', 'qt-1-', 'qt-2-', 'x', 'X'.repeat(32)].map(hostLinkTag));
  assert.equal(tags.size, 6);
  const q = newQube(254, 'sys-net', 'red', { provides_network: true });
  assert.ok(hostIfaceName(hostLinkTag('x'.repeat(32)), q).length <= 15);
  assert.equal(hostIfaceName('abcde', q), 'qnhabcde-254');
});

test('veth-host: the top netvm gets eth0 (group 1) to a `host` node, /32 link addresses from 100.100.<qid>.x', () => {
  const plan = planNetwork(defaultLayout(), { uplink: 'veth-host', hostTag: 'tag01', upstreamDns: ['192.168.1.1', '2001:db8::1'] });
  const n = (name: string) => plan.nodes.find((x) => x.name === name)!;
  assert.equal(plan.uplink, 'veth-host');
  assert.equal(plan.nodes.some((x) => x.kind === 'world'), false, 'no world with a real uplink');
  assert.deepEqual(n('sys-net').ifaces[0], { name: 'eth0', group: 1, addrs: [{ addr: '100.100.1.2', len: 32 }], peer: { node: 'host', iface: 'qnhtag01-1' } });
  assert.deepEqual(n('sys-net').routes.slice(0, 2), [
    { dst: '100.100.1.1/32', dev: 'eth0', family: 4 },
    { dst: 'default', dev: 'eth0', via: '100.100.1.1', family: 4 },
  ]);
  assert.deepEqual(n('host'), {
    name: 'host',
    kind: 'host',
    ifaces: [{ name: 'qnhtag01-1', group: 0, addrs: [{ addr: '100.100.1.1', len: 32 }], peer: { node: 'sys-net', iface: 'eth0' } }],
    routes: [{ dst: '100.100.1.2/32', dev: 'qnhtag01-1', family: 4 }],
    forwarding: true,
  });
  assert.deepEqual(plan.upstreamDns, ['192.168.1.1', '2001:db8::1'], 'the host resolvers, as given');
  // Clients are planned exactly as with any other uplink.
  assert.deepEqual(n('sys-net').ifaces.map((i) => [i.name, i.group, i.peer?.node]), [['eth0', 1, 'host'], ['vif2.0', 2, 'sys-firewall']]);
});

test('veth-host: two top netvms, one host node with one link each; addresses follow the qid, not the order', () => {
  const m = defaultLayout();
  m.qubes.set('sys-net2', newQube(9, 'sys-net2', 'red', { provides_network: true, netvm: null }));
  const all = planNetwork(m, { uplink: 'veth-host' });
  const host = all.nodes.filter((x) => x.kind === 'host');
  assert.equal(host.length, 1);
  assert.deepEqual(host[0]!.ifaces.map((i) => [i.name, i.addrs[0]!.addr, i.peer!.node]), [
    [`qnh${DEFAULT_HOST_TAG}-1`, '100.100.1.1', 'sys-net'],
    [`qnh${DEFAULT_HOST_TAG}-9`, '100.100.9.1', 'sys-net2'],
  ]);
  // sys-net2 alone (sys-net halted) keeps its address.
  const alone = planNetwork(m, { uplink: 'veth-host', only: new Set(['sys-net2']) });
  assert.equal(alone.nodes.find((x) => x.name === 'sys-net2')!.ifaces[0]!.addrs[0]!.addr, '100.100.9.2');
  assert.deepEqual(planNetwork(m, { uplink: 'veth-host' }).upstreamDns, [], 'no resolvers given: none (the top netvm drops DNS)');
});

test('veth-host: a top netvm whose qid does not fit the link range is refused with a readable error', () => {
  const m = defaultLayout();
  m.qubes.set('big', newQube(300, 'big', 'red', { provides_network: true, netvm: null }));
  assert.throws(() => planNetwork(m, { uplink: 'veth-host' }), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET2020' && /big's qid 300/.test(e.message));
});

test('move:DEV: the physical interface in the top netvm, group 1, no address, a DHCP (dynamic) default route', () => {
  const plan = planNetwork(defaultLayout(), { uplink: 'move', moveDev: 'enp3s0', upstreamDns: ['192.168.1.1'] });
  const net = plan.nodes.find((x) => x.name === 'sys-net')!;
  assert.deepEqual(net.ifaces[0], { name: 'enp3s0', group: 1, addrs: [], physical: true });
  assert.deepEqual(net.routes[0], { dst: 'default', dev: 'enp3s0', family: 4, dynamic: true });
  assert.equal(plan.nodes.some((x) => x.kind !== 'qube'), false, 'no host or world node');
  assert.deepEqual(plan.upstreamDns, ['192.168.1.1']);
});

test('move:DEV: only the first top netvm (by qid) gets the device', () => {
  const m = defaultLayout();
  m.qubes.set('sys-net2', newQube(9, 'sys-net2', 'red', { provides_network: true, netvm: null }));
  const plan = planNetwork(m, { uplink: 'move', moveDev: 'eth1' });
  const owners = plan.nodes.filter((n) => n.ifaces.some((i) => i.physical)).map((n) => n.name);
  assert.deepEqual(owners, ['sys-net']);
});

test('none and world ignore the real-uplink options', () => {
  assert.deepEqual(planNetwork(defaultLayout(), { uplink: 'none', upstreamDns: ['192.168.1.1'] }).upstreamDns, []);
  assert.deepEqual(planNetwork(defaultLayout(), { uplink: 'world', upstreamDns: ['192.168.1.1'] }).upstreamDns, ['192.0.2.53']);
});
