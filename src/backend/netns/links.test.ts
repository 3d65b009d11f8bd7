import test from 'node:test';
import assert from 'node:assert/strict';
import {
  Naming,
  NetnsError,
  parseNetnsList,
  parseUplinks,
  planBringUp,
  planLinks,
  routeLines,
  runLimited,
  runSweep,
  deleteNamespaces,
  ifaceLines,
} from './links.js';
import { ScriptedRunner } from './runner.js';
import type { NetNode, NetPlan } from '../../model/netplan.js';

// sys-net 10.137.0.1 ← sys-firewall 10.137.0.2 ← work 10.137.0.3 (IPv6 on), personal 10.137.0.4
function smallPlan(): NetPlan {
  const n = (name: string, forwarding = false): NetNode => ({ name, kind: 'qube', ifaces: [], routes: [], forwarding });
  const net = n('sys-net', true);
  const fw = n('sys-firewall', true);
  const work = n('work');
  const personal = n('personal');
  const attach = (c: NetNode, cq: number, nv: NetNode, nq: number, v6 = false) => {
    const vif = `vif${cq}.0`;
    c.ifaces.push({
      name: 'eth0',
      group: c.forwarding ? 1 : 0,
      addrs: [{ addr: `10.137.0.${cq}`, len: 32 }, ...(v6 ? [{ addr: `fd09:24ef:4179::a89:${cq}`, len: 128 }] : [])],
      peer: { node: nv.name, iface: vif },
    });
    c.routes.push({ dst: 'default', dev: 'eth0', via: `10.137.0.${nq}`, family: 4 }, { dst: `10.137.0.${nq}/32`, dev: 'eth0', family: 4 });
    nv.ifaces.push({ name: vif, group: 2, addrs: [{ addr: `10.137.0.${nq}`, len: 32 }], peer: { node: c.name, iface: 'eth0' } });
    nv.routes.push({ dst: `10.137.0.${cq}/32`, dev: vif, family: 4 });
  };
  attach(fw, 2, net, 1);
  attach(work, 3, fw, 2, true);
  attach(personal, 4, fw, 2);
  return { nodes: [net, fw, work, personal], virtualDns: [], upstreamDns: [], uplink: 'none' };
}

const naming = new Naming('qn-');
const ALL = ['sys-net', 'sys-firewall', 'work', 'personal'];

test('namespace names are <prefix><qube>; names are validated before any command', () => {
  assert.equal(new Naming().ns('work'), 'qnet-work');
  assert.equal(naming.ns('sys-firewall'), 'qn-sys-firewall');
  assert.equal(naming.node('qn-work'), 'work');
  assert.equal(naming.node('other-work'), undefined);
  assert.equal(naming.node('qn-'), undefined);
  for (const bad of ['', '1abc', 'a b', 'a/b', 'x'.repeat(32), 'work\nnetns del x', '-rf'])
    assert.throws(() => naming.ns(bad), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5201', bad);
  for (const bad of ['', 'a/b', 'q n-', '../'])
    assert.throws(() => new Naming(bad), NetnsError, bad);
});

test('ip netns list output is parsed with or without ids', () => {
  assert.deepEqual(parseNetnsList('qn-work (id: 3)\nqn-sys-net\n\nother\n'), ['qn-work', 'qn-sys-net', 'other']);
});

test('the vif side creates each veth pair, and each pair appears once', () => {
  const links = planLinks(smallPlan());
  assert.deepEqual(
    links.map((l) => `${l.creator.node}:${l.creator.iface} -> ${l.peer.node}:${l.peer.iface}`),
    ['sys-net:vif2.0 -> sys-firewall:eth0', 'sys-firewall:vif3.0 -> work:eth0', 'sys-firewall:vif4.0 -> personal:eth0'],
  );
});

test('the world side creates the link to a top netvm (uplink group 1 is the downstream end)', () => {
  const plan: NetPlan = {
    nodes: [
      { name: 'sys-net', kind: 'qube', forwarding: true, routes: [], ifaces: [{ name: 'eth0', group: 1, addrs: [], peer: { node: 'world', iface: 'up1' } }] },
      { name: 'world', kind: 'world', forwarding: true, routes: [], ifaces: [{ name: 'up1', group: 0, addrs: [], peer: { node: 'sys-net', iface: 'eth0' } }] },
    ],
    virtualDns: [],
    upstreamDns: [],
    uplink: 'world',
  };
  assert.deepEqual(planLinks(plan), [{ creator: { node: 'world', iface: 'up1' }, peer: { node: 'sys-net', iface: 'eth0' } }]);
});

test('inconsistent plans are refused with QNET5203', () => {
  const p = smallPlan();
  p.nodes[2]!.ifaces[0]!.peer = { node: 'sys-firewall', iface: 'vif9.0' };
  assert.throws(() => planLinks(p), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5203');
  const q = smallPlan();
  delete q.nodes[3]!.ifaces[0]!.peer;
  assert.throws(() => planLinks(q), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5203');
});

test('batch lines: group and up in one line, IPv6 nodad, on-link routes before routes via them', () => {
  assert.deepEqual(ifaceLines(smallPlan().nodes[2]!.ifaces[0]!), [
    'link set dev eth0 group 0 up',
    'address add 10.137.0.3/32 dev eth0',
    'address add fd09:24ef:4179::a89:3/128 dev eth0 nodad',
  ]);
  assert.deepEqual(
    routeLines([
      { dst: 'default', dev: 'eth0', via: 'fd09::1', family: 6 },
      { dst: 'default', dev: 'eth0', via: '10.137.0.2', family: 4 },
      { dst: '10.137.0.2/32', dev: 'eth0', family: 4 },
    ]),
    ['route add 10.137.0.2/32 dev eth0', 'route add ::/0 via fd09::1 dev eth0', 'route add 0.0.0.0/0 via 10.137.0.2 dev eth0'],
  );
  assert.throws(() => routeLines([{ dst: '10.0.0.1/33', dev: 'eth0', family: 4 }]), NetnsError);
  assert.throws(() => routeLines([{ dst: '10.0.0.1/32', dev: 'eth0 x', family: 4 }]), NetnsError);
  assert.throws(() => routeLines([{ dst: 'fd09::1/128', dev: 'eth0', family: 4 }]), NetnsError);
});

test('a full bring-up: one netns batch, then one batch per namespace, netvm before clients', () => {
  const steps = planBringUp(smallPlan(), { fresh: ALL, live: new Set() }, naming);
  assert.deepEqual(steps.create, ['qn-sys-net', 'qn-sys-firewall', 'qn-work', 'qn-personal']);
  assert.deepEqual(steps.sweep, []);
  assert.deepEqual(steps.forwarding, ['sys-net', 'sys-firewall']);
  assert.deepEqual(
    steps.levels.map((l) => l.map((b) => b.node)),
    [['sys-net'], ['sys-firewall'], ['work', 'personal']],
  );
  assert.deepEqual(steps.levels[1]![0]!.lines, [
    'link set dev lo up',
    'link add vif3.0 type veth peer name eth0 netns qn-work',
    'link add vif4.0 type veth peer name eth0 netns qn-personal',
    'link set dev eth0 group 1 up',
    'address add 10.137.0.2/32 dev eth0',
    'link set dev vif3.0 group 2 up',
    'address add 10.137.0.2/32 dev vif3.0',
    'link set dev vif4.0 group 2 up',
    'address add 10.137.0.2/32 dev vif4.0',
    'route add 10.137.0.1/32 dev eth0',
    'route add 10.137.0.3/32 dev vif3.0',
    'route add 10.137.0.4/32 dev vif4.0',
    'route add 0.0.0.0/0 via 10.137.0.1 dev eth0',
  ]);
  assert.deepEqual(steps.levels[2]![0]!.lines, [
    'link set dev lo up',
    'link set dev eth0 group 0 up',
    'address add 10.137.0.3/32 dev eth0',
    'address add fd09:24ef:4179::a89:3/128 dev eth0 nodad',
    'route add 10.137.0.2/32 dev eth0',
    'route add 0.0.0.0/0 via 10.137.0.2 dev eth0',
  ]);
});

test('a client behind a halted netvm gets only lo; its netvm coming back reattaches it', () => {
  const alone = planBringUp(smallPlan(), { fresh: ['work'], live: new Set(['sys-net']) }, naming);
  assert.deepEqual(alone.levels, [[{ node: 'work', ns: 'qn-work', lines: ['link set dev lo up'] }]]);

  const back = planBringUp(smallPlan(), { fresh: ['sys-firewall'], live: new Set(['sys-net', 'work', 'personal']) }, naming);
  // The clients' old eth0 (peer of the dead netvm's vif) may still be dying: removed first.
  assert.deepEqual(back.sweep.map((b) => `${b.ns}: ${b.lines.join('; ')}`), [
    'qn-sys-net: link del dev vif2.0',
    'qn-work: link del dev eth0',
    'qn-personal: link del dev eth0',
  ]);
  assert.deepEqual(back.levels.map((l) => l.map((b) => b.node)), [['sys-net'], ['sys-firewall'], ['work', 'personal']]);
  assert.deepEqual(back.levels[0]![0]!.lines, [
    'link add vif2.0 type veth peer name eth0 netns qn-sys-firewall',
    'link set dev vif2.0 group 2 up',
    'address add 10.137.0.1/32 dev vif2.0',
    'route add 10.137.0.2/32 dev vif2.0',
  ]);
  assert.deepEqual(back.levels[2]![1]!.lines, [
    'link set dev eth0 group 0 up',
    'address add 10.137.0.4/32 dev eth0',
    'route add 10.137.0.2/32 dev eth0',
    'route add 0.0.0.0/0 via 10.137.0.2 dev eth0',
  ]);
});

test('relink (touch) remakes only the uplinks of the touched node, no sweep', () => {
  const steps = planBringUp(smallPlan(), { fresh: [], touch: ['sys-firewall'], live: new Set(ALL) }, naming);
  assert.deepEqual(steps.create, []);
  assert.deepEqual(steps.sweep, []);
  assert.deepEqual(steps.levels.map((l) => l.map((b) => b.lines[0])), [
    ['link add vif2.0 type veth peer name eth0 netns qn-sys-firewall'],
    ['link set dev eth0 group 1 up'],
  ]);
});

test('bringing up a live namespace is refused with QNET5202', () => {
  assert.throws(
    () => planBringUp(smallPlan(), { fresh: ['work'], live: new Set(['work']) }, naming),
    (e: unknown) => e instanceof NetnsError && e.code === 'QNET5202' && e.diagnostic.qube === 'work',
  );
  assert.throws(() => planBringUp(smallPlan(), { fresh: ['vault'], live: new Set() }, naming), /not in the plan/);
});

test('a sweep tolerates missing devices only', async () => {
  const ok = new ScriptedRunner([
    {
      argv: ['ip', '-n', 'qn-work', '-force', '-batch', '-'],
      stdin: 'link del dev eth0\n',
      result: { code: 1, stderr: 'Cannot find device "eth0"\nCommand failed -:1\n' },
    },
  ]);
  await runSweep(ok, { node: 'work', ns: 'qn-work', lines: ['link del dev eth0'] });
  const bad = new ScriptedRunner([
    { argv: ['ip', '-n', 'qn-work', '-force', '-batch', '-'], result: { code: 1, stderr: 'RTNETLINK answers: Operation not permitted\n' } },
  ]);
  await assert.rejects(runSweep(bad, { node: 'work', ns: 'qn-work', lines: ['link del dev eth0'] }), /Operation not permitted/);
});

test('tearing down namespaces that are gone is not an error', async () => {
  const r = new ScriptedRunner([
    {
      argv: ['ip', '-force', '-batch', '-'],
      stdin: 'netns del qn-work\nnetns del qn-personal\n',
      result: { code: 1, stderr: 'Cannot remove namespace file "/run/netns/qn-work": No such file or directory\nCommand failed -:1\n' },
    },
  ]);
  await deleteNamespaces(r, ['qn-work', 'qn-personal']);
  r.assertDone();
});

test('uplinks are the veths not in group 2', () => {
  const json = JSON.stringify([
    { ifname: 'eth0', group: '1' },
    { ifname: 'vif3.0', group: '2' },
    { ifname: 'eth1', group: 'default' },
  ]);
  assert.deepEqual(parseUplinks(json), ['eth0', 'eth1']);
});

test('runLimited keeps order, bounds concurrency and reports the first failure', async () => {
  let inFlight = 0;
  let peak = 0;
  const tasks = Array.from({ length: 10 }, (_, i) => async () => {
    peak = Math.max(peak, ++inFlight);
    await new Promise((r) => setTimeout(r, 2));
    inFlight--;
    return i;
  });
  assert.deepEqual(await runLimited(tasks, 3), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(peak, 3);
  await assert.rejects(runLimited([async () => 1, async () => { throw new Error('boom'); }], 2), /boom/);
});

test('connection routes: stale ones deleted, wanted ones replaced, both families, marked proto 188', async () => {
  const { linkRouteLines } = await import('./links.js');
  const lines = linkRouteLines(
    [
      { family: 4, json: '[{"dst":"10.137.0.8","gateway":"10.137.0.7","dev":"vif7.0","protocol":"188"},{"dst":"10.137.0.9","gateway":"10.137.0.7","dev":"vif7.0"}]' },
      { family: 6, json: 'not json' },
    ],
    [
      { dst: '10.137.0.8/32', dev: 'vif7.0', via: '10.137.0.7', family: 4, forLink: true },
      { dst: 'fd09:24ef:4179::a89:8/128', dev: 'vif7.0', via: 'fd09:24ef:4179::a89:7', family: 6, forLink: true },
    ],
  );
  assert.deepEqual(lines, [
    'route del 10.137.0.9/32 proto 188',
    'route replace 10.137.0.8/32 via 10.137.0.7 dev vif7.0 proto 188',
    'route replace fd09:24ef:4179::a89:8/128 via fd09:24ef:4179::a89:7 dev vif7.0 proto 188',
  ]);
  assert.throws(() => linkRouteLines([{ family: 4, json: '[{"dst":"1.2.3.4; rm"}]' }], []));
});
