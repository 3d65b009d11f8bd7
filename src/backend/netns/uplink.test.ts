// The real uplinks on the host's side, with ScriptedRunner only: every command qnet would run in
// the host's namespace is asserted here, argv and batch text exactly. Nothing here touches the host.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Naming, NetnsError, planBringUp, planLinks, runBatch, runSweep } from './links.js';
import { NetnsBackend } from './netns-backend.js';
import { ScriptedRunner, type ExpectedCommand } from './runner.js';
import {
  deviceOwner,
  hostTableName,
  hostTableText,
  hostUpstreamDns,
  lastHostLinkGoes,
  parseResolvConf,
  RESOLV_CONF,
  RESOLVED_UPSTREAM_CONF,
  usableUpstream,
} from './uplink.js';
import { defaultLayout } from '../../model/layout.js';
import { hostLinkTag, planNetwork } from '../../model/topology.js';
import type { NetPlan } from '../../model/netplan.js';

const PREFIX = 'qn-';
const TAG = hostLinkTag(PREFIX);
const HIF = `qnh${TAG}-1`;
const naming = new Naming(PREFIX);

/** sys-net ← sys-firewall ← work …, sys-net's eth0 to the host, as the planner makes it. */
const vethPlan = (): NetPlan => planNetwork(defaultLayout(), { uplink: 'veth-host', hostTag: TAG, upstreamDns: ['192.168.1.1'] });
const movePlan = (): NetPlan => planNetwork(defaultLayout(), { uplink: 'move', moveDev: 'enp3s0' });

/** A directory that is not there: the backend then asks `ip netns list`, which the scripts answer. */
const NO_DIR = '/nonexistent/qnet-netns';
const LIST: ExpectedCommand = { argv: ['ip', 'netns', 'list'] };
const listed = (...nss: string[]): ExpectedCommand => ({ ...LIST, result: { stdout: nss.map((x) => `${x}\n`).join('') } });
const FWD = ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];
const HOST_FWD: ExpectedCommand = { argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'] };
const HOST_TABLE: ExpectedCommand = { argv: ['nft', '-f', '-'], stdin: hostTableText(TAG) };
const HOST_VETHS = (links: object[], ids: object[]): ExpectedCommand[] => [
  { argv: ['ip', '-j', 'link', 'show', 'type', 'veth'], result: { stdout: JSON.stringify(links) } },
  { argv: ['ip', '-j', 'netns', 'list-id'], result: { stdout: JSON.stringify(ids) } },
];

test('the host table: qnet-owned, replaced atomically, masquerades the link range, blocks new inbound', () => {
  assert.equal(hostTableName(TAG), `qnet-uplink-${TAG}`);
  assert.equal(
    hostTableText('abcde'),
    [
      'table ip qnet-uplink-abcde {}',
      'delete table ip qnet-uplink-abcde',
      'table ip qnet-uplink-abcde {',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      '    ip saddr 100.100.0.0/16 oifname != "qnh*" masquerade',
      '  }',
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      '    iifname "qnhabcde-*" accept',
      '    oifname "qnhabcde-*" ct state established,related accept',
      '    oifname "qnhabcde-*" drop',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  assert.doesNotMatch(hostTableText('abcde'), /flush ruleset|^flush/m, 'never flushes anything but its own table');
});

test('veth-host links: the host creates qnh<tag>-<qid> with eth0 in the netvm; its batch runs without -n', () => {
  const plan = vethPlan();
  assert.deepEqual(planLinks(plan)[0], { creator: { node: 'host', iface: HIF }, peer: { node: 'sys-net', iface: 'eth0' } });
  const steps = planBringUp(plan, { fresh: ['sys-net'], live: new Set() }, naming);
  assert.deepEqual(steps.create, ['qn-sys-net'], 'the host is never created');
  assert.deepEqual(steps.forwarding, ['sys-net'], 'nor sysctl-ed as a namespace');
  assert.deepEqual(steps.levels, [
    [{ node: 'host', ns: '', host: true, lines: [`link add ${HIF} type veth peer name eth0 netns qn-sys-net`, `link set dev ${HIF} group 0 up`, `address add 100.100.1.1/32 dev ${HIF}`, `route add 100.100.1.2/32 dev ${HIF}`] }],
    [{ node: 'sys-net', ns: 'qn-sys-net', lines: ['link set dev lo up', 'link set dev eth0 group 1 up', 'address add 100.100.1.2/32 dev eth0', 'route add 100.100.1.1/32 dev eth0', 'route add 0.0.0.0/0 via 100.100.1.1 dev eth0'] }],
  ]);
  assert.throws(() => planBringUp(plan, { fresh: ['host'], live: new Set() }, naming), (e: unknown) => e instanceof NetnsError && /never created/.test(e.message));
});

test('veth-host: a restarted top netvm sweeps the old host end (ip -force -batch without -n)', async () => {
  const steps = planBringUp(vethPlan(), { fresh: ['sys-net'], live: new Set(['sys-firewall']) }, naming);
  assert.deepEqual(steps.sweep, [
    { node: 'host', ns: '', host: true, lines: [`link del dev ${HIF}`] },
    { node: 'sys-firewall', ns: 'qn-sys-firewall', lines: ['link del dev eth0'] },
  ]);
  const r = new ScriptedRunner([
    { argv: ['ip', '-force', '-batch', '-'], stdin: `link del dev ${HIF}\n`, result: { code: 1, stderr: `Cannot find device "${HIF}"\nCommand failed -:1\n` } },
    { argv: ['ip', '-batch', '-'], stdin: 'x\n' },
  ]);
  await runSweep(r, steps.sweep[0]!);
  await runBatch(r, { node: 'host', ns: '', host: true, lines: ['x'] });
  r.assertDone();
});

test('veth-host bring-up: forwarding and the host table before the first link, then the host batch, then sys-net', async () => {
  const r = new ScriptedRunner([
    listed('other'),
    { argv: ['ip', '-batch', '-'], stdin: 'netns add qn-sys-net\n' },
    { argv: FWD, netns: 'qn-sys-net' },
    { argv: ['nft', '-f', '-'], netns: 'qn-sys-net', stdin: 'table inet t {}\n' },
    // The host end of sys-net's last life, if it is still dying.
    { argv: ['ip', '-force', '-batch', '-'], stdin: `link del dev ${HIF}\n`, result: { code: 1, stderr: `Cannot find device "${HIF}"\nCommand failed -:1\n` } },
    HOST_FWD,
    HOST_TABLE,
    { argv: ['ip', '-batch', '-'], stdin: `link add ${HIF} type veth peer name eth0 netns qn-sys-net\nlink set dev ${HIF} group 0 up\naddress add 100.100.1.1/32 dev ${HIF}\nroute add 100.100.1.2/32 dev ${HIF}\n` },
    { argv: ['ip', '-n', 'qn-sys-net', '-batch', '-'], stdin: (s) => s.endsWith('route add 0.0.0.0/0 via 100.100.1.1 dev eth0\n') },
  ]);
  const be = new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' });
  assert.equal(be.hostTag, TAG);
  await be.bringUp(vethPlan(), ['sys-net'], { rules: new Map([['sys-net', 'table inet t {}\n']]) });
  r.assertDone();
});

test('veth-host: clients coming up later do not touch the host', async () => {
  const r = new ScriptedRunner([
    listed('qn-sys-net'),
    { argv: ['ip', '-batch', '-'], stdin: 'netns add qn-sys-firewall\n' },
    { argv: FWD, netns: 'qn-sys-firewall' },
    { argv: ['ip', '-n', 'qn-sys-net', '-force', '-batch', '-'], stdin: 'link del dev vif2.0\n' },
    { argv: ['ip', '-n', 'qn-sys-net', '-batch', '-'], stdin: (s) => s.startsWith('link add vif2.0') },
    { argv: ['ip', '-n', 'qn-sys-firewall', '-batch', '-'], stdin: () => true },
  ]);
  await new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' }).bringUp(vethPlan(), ['sys-firewall']);
  r.assertDone();
});

test('veth-host tear-down: the host table goes with the last link to the host, not before', async () => {
  const links = [
    { ifname: HIF, link_netnsid: 0 },
    { ifname: `qnh${TAG}-9`, link_netnsid: 1 },
    { ifname: 'qnhzzzzz-1', link_netnsid: 2 }, // another prefix's: not ours to count
    { ifname: 'veth0', link_netnsid: 3 },
  ];
  const ids = [{ nsid: 0, name: 'qn-sys-net' }, { nsid: 1, name: 'qn-sys-net2' }, { nsid: 2, name: 'other-sys-net' }, { nsid: 3, name: 'docker' }];
  // sys-net goes while sys-net2 keeps its link: the table stays.
  const keep = new ScriptedRunner([...HOST_VETHS(links, ids), { argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-sys-net\n' }]);
  await new NetnsBackend({ runner: keep, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' }).tearDown(['sys-net']);
  keep.assertDone();
  // Both go: the table goes after the namespaces.
  const last = new ScriptedRunner([
    ...HOST_VETHS(links, ids),
    { argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-sys-net\nnetns del qn-sys-net2\n' },
    { argv: ['nft', 'delete', 'table', 'ip', `qnet-uplink-${TAG}`] },
  ]);
  await new NetnsBackend({ runner: last, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' }).tearDown(['sys-net', 'sys-net2']);
  last.assertDone();
  // A client going never removes it.
  const client = new ScriptedRunner([...HOST_VETHS(links, ids), { argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-work\n' }]);
  await new NetnsBackend({ runner: client, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' }).tearDown(['work']);
  client.assertDone();
  // A table already gone is fine; a host end whose peer has no name any more is on its way out.
  const gone = new ScriptedRunner([
    ...HOST_VETHS([{ ifname: HIF, link_netnsid: 0 }, { ifname: `qnh${TAG}-9`, link_netnsid: 5 }], [{ nsid: 0, name: 'qn-sys-net' }]),
    { argv: ['ip', '-force', '-batch', '-'] },
    { argv: ['nft', 'delete', 'table', 'ip', `qnet-uplink-${TAG}`], result: { code: 1, stderr: 'Error: No such file or directory\n' } },
  ]);
  await new NetnsBackend({ runner: gone, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'veth-host' }).tearDown(['sys-net']);
  gone.assertDone();
});

test('other uplinks never look at the host on tear-down', async () => {
  for (const uplink of [undefined, 'world', 'none', 'move'] as const) {
    const r = new ScriptedRunner([{ argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-sys-net\n' }]);
    await new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR, ...(uplink ? { uplink } : {}) }).tearDown(['sys-net']);
    r.assertDone();
  }
});

test('lastHostLinkGoes reads the host with two read-only commands', async () => {
  const r = new ScriptedRunner(HOST_VETHS([], []));
  assert.equal(await lastHostLinkGoes(r, naming, TAG, new Set(['qn-sys-net'])), false);
  r.assertDone();
});

test('move:DEV bring-up: rules first, then the device is moved in and brought up in group 1; no routes, no host batch', async () => {
  const plan = movePlan();
  const steps = planBringUp(plan, { fresh: ['sys-net'], live: new Set() }, naming);
  assert.deepEqual(steps.moves, [{ node: 'sys-net', ns: 'qn-sys-net', dev: 'enp3s0' }]);
  assert.deepEqual(steps.levels, [[{ node: 'sys-net', ns: 'qn-sys-net', lines: ['link set dev lo up', 'link set dev enp3s0 group 1 up'] }]]);
  const r = new ScriptedRunner([
    listed(),
    { argv: ['ip', '-batch', '-'], stdin: 'netns add qn-sys-net\n' },
    { argv: FWD, netns: 'qn-sys-net' },
    { argv: ['nft', '-f', '-'], netns: 'qn-sys-net', stdin: 'table inet t {}\n' },
    { argv: ['ip', 'link', 'set', 'dev', 'enp3s0', 'netns', 'qn-sys-net'] },
    { argv: ['ip', '-n', 'qn-sys-net', '-batch', '-'], stdin: 'link set dev lo up\nlink set dev enp3s0 group 1 up\n' },
  ]);
  await new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'move' }).bringUp(plan, ['sys-net'], { rules: new Map([['sys-net', 'table inet t {}\n']]) });
  r.assertDone();
});

test('move:DEV: a second top netvm is refused, naming the owner; the new namespace is removed again', async () => {
  const r = new ScriptedRunner([
    listed('qn-sys-net2', 'qn-work'),
    { argv: ['ip', '-batch', '-'], stdin: 'netns add qn-sys-net\n' },
    { argv: FWD, netns: 'qn-sys-net' },
    { argv: ['ip', 'link', 'set', 'dev', 'enp3s0', 'netns', 'qn-sys-net'], result: { code: 1, stderr: 'Cannot find device "enp3s0"\n' } },
    { argv: ['ip', '-n', 'qn-sys-net2', 'link', 'show', 'dev', 'enp3s0'], result: { code: 0, stdout: '7: enp3s0: <BROADCAST>\n' } },
    { argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-sys-net\n' },
  ]);
  await assert.rejects(
    new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR, uplink: 'move' }).bringUp(movePlan(), ['sys-net']),
    (e: unknown) => e instanceof NetnsError && e.code === 'QNET5220' && /enp3s0 already belongs to sys-net2; only one top netvm can own it/.test(e.message),
  );
  r.assertDone();
});

test('move:DEV: a device the host does not have is reported as such', async () => {
  const r = new ScriptedRunner([
    listed(),
    { argv: ['ip', '-batch', '-'] },
    { argv: FWD, netns: 'qn-sys-net' },
    { argv: ['ip', 'link', 'set', 'dev', 'enp3s0', 'netns', 'qn-sys-net'], result: { code: 1, stderr: 'Cannot find device "enp3s0"\n' } },
    { argv: ['ip', '-force', '-batch', '-'] },
  ]);
  await assert.rejects(new NetnsBackend({ runner: r, prefix: PREFIX, netnsDir: NO_DIR }).bringUp(movePlan(), ['sys-net']), /the host has no network interface enp3s0/);
  r.assertDone();
  const none = new ScriptedRunner([{ argv: ['ip', '-n', 'qn-a', 'link', 'show', 'dev', 'x'], result: { code: 1, stderr: 'Device "x" does not exist.\n' } }]);
  assert.equal(await deviceOwner(none, naming, 'x', ['a']), undefined);
});

test('host resolvers: resolv.conf, or resolved upstream behind the 127.0.0.53 stub; IPv4 only, never loopback', () => {
  assert.deepEqual(parseResolvConf('# c\nnameserver 192.168.1.1\n  nameserver   10.0.0.53 # x\noptions edns0\nsearch lan\n'), ['192.168.1.1', '10.0.0.53']);
  assert.deepEqual(usableUpstream(['127.0.0.1', '192.168.1.1', '::1', '2001:db8::1', 'fe80::1%eth0', '192.168.1.1', '0.0.0.0', '300.1.1.1', '9.9.9.9']), ['192.168.1.1', '9.9.9.9']);
  const files = (main?: string, resolved?: string) => (p: string) => (p === RESOLV_CONF ? main : p === RESOLVED_UPSTREAM_CONF ? resolved : undefined);
  assert.deepEqual(hostUpstreamDns(files('nameserver 192.168.1.1\nnameserver 127.0.0.1\n')), ['192.168.1.1']);
  assert.deepEqual(hostUpstreamDns(files('nameserver 127.0.0.53\noptions edns0 trust-ad\n', 'nameserver 192.168.1.1\nnameserver 1.1.1.1\n')), ['192.168.1.1', '1.1.1.1']);
  assert.deepEqual(hostUpstreamDns(files('nameserver 127.0.0.53\n', undefined)), [], 'resolved without its upstream file: none');
  assert.deepEqual(hostUpstreamDns(files('nameserver 127.0.0.1\n', 'nameserver 192.168.1.1\n')), [], 'another local resolver is not systemd-resolved: none');
  assert.deepEqual(hostUpstreamDns(files(undefined, undefined)), []);
});
