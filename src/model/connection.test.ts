import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkConnectionShape, checkForwardShape, checkLinks, connectionPath, dropLinksOf, nextId, parsePortRange, renameInLinks, validCidr, type Connection, type PortForward } from './connection.js';
import { defaultLayout, newQube } from './layout.js';
import { removeQube, renameQube } from './ops.js';

const conn = (x: Partial<Connection> = {}): Connection => ({ id: 'c1', from: 'work', to: 'personal', bothWays: false, ...x });
const fwd = (x: Partial<PortForward> = {}): PortForward => ({ id: 'f1', qube: 'work', proto: 'tcp', port: 443, from: [], on: [], ...x });

test('port ranges: N or N-M within 1-65535, N <= M', () => {
  assert.deepEqual(parsePortRange('22'), { ok: true, value: { start: 22, end: 22 } });
  assert.deepEqual(parsePortRange('1000-2000'), { ok: true, value: { start: 1000, end: 2000 } });
  for (const bad of ['0', '65536', '20-10', '-1', '1-', 'a', '1 - 2', '1-2-3', '080000']) assert.equal(parsePortRange(bad).ok, false, bad);
});

test('CIDRs: addresses and prefixes of either family, nothing else', () => {
  for (const ok of ['192.0.2.0/24', '192.0.2.7', '2001:db8::/32', '0.0.0.0/0']) assert.ok(validCidr(ok), ok);
  for (const bad of ['192.0.2.0/33', '192.0.2', 'x', '192.0.2.0/24/1', '2001:db8::/129', '1.2.3.4/ 8', '']) assert.ok(!validCidr(bad), bad);
});

test('connection shapes: names, protocols, ports only with tcp/udp, comments printable', () => {
  assert.equal(checkConnectionShape(conn()), null);
  assert.equal(checkConnectionShape(conn({ proto: 'tcp', ports: { start: 1, end: 2 } })), null);
  const bad: Partial<Connection>[] = [
    { id: 'x1' }, { id: 'c0' }, { from: '../etc' }, { to: 'work' }, { proto: 'sctp' as never },
    { proto: 'icmp', ports: { start: 1, end: 1 } }, { ports: { start: 1, end: 1 } }, { proto: 'tcp', ports: { start: 5, end: 1 } },
    { bothWays: 'yes' as never }, { comment: 'a\nb' }, { comment: 'x'.repeat(129) },
  ];
  for (const b of bad) assert.ok(checkConnectionShape(conn(b)), JSON.stringify(b));
});

test('forward shapes: tcp/udp, ports, CIDRs, interface names', () => {
  assert.equal(checkForwardShape(fwd({ toPort: 8443, from: ['192.0.2.0/24'], on: ['eth0'] })), null);
  const bad: Partial<PortForward>[] = [
    { proto: 'icmp' as never }, { port: 0 }, { toPort: 70000 }, { from: ['nope'] }, { from: ['192.0.2.0/24', '192.0.2.0/24'] },
    { on: ['eth0; rm -rf'] }, { on: ['a-very-long-interface-name'] }, { from: 'x' as never }, { id: 'f01' },
  ];
  for (const b of bad) assert.ok(checkForwardShape(fwd(b)), JSON.stringify(b));
});

test('links against the model: unknown qubes, duplicates, two forwards on one port of one uplink', () => {
  const m = defaultLayout();
  m.connections = [conn(), conn({ id: 'c2' }), conn({ id: 'c3', to: 'nosuch' })];
  m.forwards = [fwd(), fwd({ id: 'f2', qube: 'personal' }), fwd({ id: 'f3', qube: 'personal', port: 444 })];
  const msgs = checkLinks(m).map((d) => `${d.code} ${d.message}`);
  assert.deepEqual(msgs, [
    'QNET2202 connection c2 is the same as c1',
    "QNET2003 connection c3: no such qube 'nosuch'",
    'QNET2202 forward f2 claims tcp port 443 of sys-net, as f1 does',
  ]);
});

test('ids: the lowest unused', () => {
  assert.equal(nextId('c', []), 'c1');
  assert.equal(nextId('c', [{ id: 'c1' }, { id: 'c3' }]), 'c2');
});

test('paths: same netvm, across branches, a netvm as an end, separate trees', () => {
  const m = defaultLayout();
  m.qubes.set('fw2', newQube(7, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  m.qubes.set('other', newQube(8, 'other', 'red', { netvm: 'fw2' }));
  const names = (p: ReturnType<typeof connectionPath>) => p && { up: p.up.map((q) => q.name), x: p.x.name, down: p.down.map((q) => q.name) };
  assert.deepEqual(names(connectionPath(m, 'work', 'personal')), { up: [], x: 'sys-firewall', down: [] });
  assert.deepEqual(names(connectionPath(m, 'work', 'other')), { up: ['sys-firewall'], x: 'sys-net', down: ['fw2'] });
  assert.deepEqual(names(connectionPath(m, 'work', 'sys-net')), { up: ['sys-firewall'], x: 'sys-net', down: [] });
  assert.deepEqual(names(connectionPath(m, 'sys-net', 'other')), { up: [], x: 'sys-net', down: ['fw2'] });
  assert.equal(connectionPath(m, 'work', 'vault'), null);
});

test('a rename follows into connections and forwards; a removal takes them along', () => {
  const m = defaultLayout();
  m.connections = [conn(), conn({ id: 'c2', from: 'untrusted', to: 'work' })];
  m.forwards = [fwd()];
  renameQube(m, 'work', 'job');
  assert.deepEqual(m.connections.map((c) => [c.from, c.to]), [['job', 'personal'], ['untrusted', 'job']]);
  assert.equal(m.forwards[0]!.qube, 'job');
  removeQube(m, 'personal');
  assert.deepEqual(m.connections.map((c) => c.id), ['c2']);
  removeQube(m, 'job');
  assert.deepEqual([m.connections, m.forwards], [[], []]);
  renameInLinks(m, 'a', 'b');
  dropLinksOf(m, 'a');
});
