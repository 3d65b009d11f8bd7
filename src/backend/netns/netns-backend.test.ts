import test from 'node:test';
import assert from 'node:assert/strict';
import { NetnsBackend } from './netns-backend.js';
import { NetnsError } from './links.js';
import { NftError } from './nft.js';
import { ScriptedRunner, toolPath, type ExpectedCommand } from './runner.js';
import { NO_ICMP_RATELIMIT } from './sysctl.js';
import type { InteractiveRunner } from './exec.js';
import type { NetNode, NetPlan } from '../../model/netplan.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// sys-net 10.137.0.1 ← sys-firewall 10.137.0.2 ← work 10.137.0.3; sys-firewall2 10.137.0.5 ← sys-net
function plan(workNetvm: 'sys-firewall' | 'sys-firewall2' = 'sys-firewall'): NetPlan {
  const n = (name: string, forwarding = false): NetNode => ({ name, kind: 'qube', ifaces: [], routes: [], forwarding });
  const nodes = { 'sys-net': n('sys-net', true), 'sys-firewall': n('sys-firewall', true), 'sys-firewall2': n('sys-firewall2', true), work: n('work') };
  const qid = { 'sys-net': 1, 'sys-firewall': 2, work: 3, 'sys-firewall2': 5 };
  const attach = (c: keyof typeof nodes, nv: keyof typeof nodes) => {
    const vif = `vif${qid[c]}.0`;
    nodes[c].ifaces.push({ name: 'eth0', group: nodes[c].forwarding ? 1 : 0, addrs: [{ addr: `10.137.0.${qid[c]}`, len: 32 }], peer: { node: nv, iface: vif } });
    nodes[c].routes.push({ dst: `10.137.0.${qid[nv]}/32`, dev: 'eth0', family: 4 }, { dst: 'default', dev: 'eth0', via: `10.137.0.${qid[nv]}`, family: 4 });
    nodes[nv].ifaces.push({ name: vif, group: 2, addrs: [{ addr: `10.137.0.${qid[nv]}`, len: 32 }], peer: { node: c, iface: 'eth0' } });
    nodes[nv].routes.push({ dst: `10.137.0.${qid[c]}/32`, dev: vif, family: 4 });
  };
  attach('sys-firewall', 'sys-net');
  attach('sys-firewall2', 'sys-net');
  attach('work', workNetvm);
  return { nodes: Object.values(nodes), virtualDns: [], upstreamDns: [], uplink: 'none' };
}

/** A directory that is not there: the backend then asks `ip netns list`, which the scripts answer. */
const NO_DIR = '/nonexistent/qnet-netns';
const LIST: ExpectedCommand = { argv: ['ip', 'netns', 'list'] };
const listed = (...nss: string[]): ExpectedCommand => ({ ...LIST, result: { stdout: nss.map((x, i) => `${x} (id: ${i})\n`).join('') } });
const batch = (ns: string, stdin: string | ((s: string) => boolean)): ExpectedCommand => ({ argv: ['ip', '-n', ns, '-batch', '-'], stdin });
const FWD = ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];

test('listNamespaces: only ours, prefix stripped, sorted', async () => {
  const r = new ScriptedRunner([listed('qn-work', 'other', 'qn-sys-net', 'qn-9bad', 'qnet-x')]);
  assert.deepEqual(await new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR }).listNamespaces(), ['sys-net', 'work']);
});

test('listNamespaces reads the namespace directory when it can, with no process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-netns-dir-'));
  try {
    for (const f of ['qn-work', 'other', 'qn-sys-net', 'qn-9bad']) writeFileSync(join(dir, f), '');
    const r = new ScriptedRunner([]);
    assert.deepEqual(await new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: dir }).listNamespaces(), ['sys-net', 'work']);
    assert.equal(r.calls.length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bringUp spawns: list, one netns batch, sysctls, rules, then one ip batch per namespace', async () => {
  const r = new ScriptedRunner([
    listed('other'),
    { argv: ['ip', '-batch', '-'], stdin: 'netns add qn-sys-net\nnetns add qn-sys-firewall\nnetns add qn-work\n' },
    { argv: FWD, netns: 'qn-sys-net' },
    { argv: FWD, netns: 'qn-sys-firewall' },
    { argv: ['nft', '-f', '-'], netns: 'qn-sys-firewall', stdin: 'table inet t {}\n' },
    batch('qn-sys-net', (s) => s.startsWith('link set dev lo up\nlink add vif2.0 type veth peer name eth0 netns qn-sys-firewall\n')),
    batch('qn-sys-firewall', (s) => s.includes('link add vif3.0 type veth peer name eth0 netns qn-work\n') && s.endsWith('route add 0.0.0.0/0 via 10.137.0.1 dev eth0\n')),
    batch(
      'qn-work',
      'link set dev lo up\nlink set dev eth0 group 0 up\naddress add 10.137.0.3/32 dev eth0\nroute add 10.137.0.2/32 dev eth0\nroute add 0.0.0.0/0 via 10.137.0.2 dev eth0\n',
    ),
  ]);
  const be = new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR });
  await be.bringUp(plan(), ['sys-net', 'sys-firewall', 'work'], { rules: new Map([['sys-firewall', 'table inet t {}\n']]) });
  r.assertDone();
  assert.equal(r.calls.length, 8, '1 list + 1 netns batch + 2 sysctl + 1 nft + 3 namespace batches');
});

test('extra sysctls go into the same process as forwarding', async () => {
  const r = new ScriptedRunner([
    listed(),
    { argv: ['ip', '-batch', '-'] },
    { argv: [...FWD, 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0'], netns: 'qn-sys-net' },
    batch('qn-sys-net', 'link set dev lo up\n'),
  ]);
  await new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR, sysctls: NO_ICMP_RATELIMIT }).bringUp(plan(), ['sys-net']);
  r.assertDone();
});

test('a failed bring-up deletes the namespaces it created and rethrows', async () => {
  const r = new ScriptedRunner([
    listed(),
    { argv: ['ip', '-batch', '-'] },
    { argv: FWD, netns: 'qn-sys-net' },
    batch('qn-sys-net', () => true),
    { argv: ['ip', '-n', 'qn-work', '-batch', '-'], result: { code: 2, stderr: 'RTNETLINK answers: File exists\nCommand failed -:2\n' } },
    { argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-sys-net\nnetns del qn-work\n' },
  ]);
  // work's netvm is sys-firewall, which is not up: work gets lo only; fake its batch failing.
  await assert.rejects(
    new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR }).bringUp(plan(), ['sys-net', 'work']),
    (e: unknown) => e instanceof NetnsError && e.code === 'QNET5205' && e.diagnostic.qube === 'work',
  );
  r.assertDone();
});

test('relink: list, read the veths, delete the uplink, then new netvm side, then the client', async () => {
  const r = new ScriptedRunner([
    listed('qn-sys-net', 'qn-sys-firewall', 'qn-sys-firewall2', 'qn-work'),
    { argv: ['ip', '-n', 'qn-work', '-j', 'link', 'show', 'type', 'veth'], result: { stdout: '[{"ifname":"eth0","group":"default"}]' } },
    batch('qn-work', 'link del dev eth0\n'),
    batch('qn-sys-firewall2', 'link add vif3.0 type veth peer name eth0 netns qn-work\nlink set dev vif3.0 group 2 up\naddress add 10.137.0.5/32 dev vif3.0\nroute add 10.137.0.3/32 dev vif3.0\n'),
    batch('qn-work', 'link set dev eth0 group 0 up\naddress add 10.137.0.3/32 dev eth0\nroute add 10.137.0.5/32 dev eth0\nroute add 0.0.0.0/0 via 10.137.0.5 dev eth0\n'),
  ]);
  await new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR }).relink(plan('sys-firewall2'), 'work');
  r.assertDone();
});

test('relink of a qube that is not running is QNET5204', async () => {
  const r = new ScriptedRunner([listed('qn-sys-net')]);
  await assert.rejects(new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR }).relink(plan(), 'work'), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5204');
});

test('tearDown is one process for any number of namespaces', async () => {
  const r = new ScriptedRunner([{ argv: ['ip', '-force', '-batch', '-'], stdin: 'netns del qn-work\nnetns del qn-sys-firewall\n' }]);
  await new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR }).tearDown(['work', 'sys-firewall']);
  r.assertDone();
});

test('rules, counters, flows and deleteFlow run in the qube namespace', async () => {
  const r = new ScriptedRunner([
    { argv: ['nft', '-f', '-'], netns: 'qn-sys-firewall', stdin: 'x', result: { code: 1, stderr: '/dev/stdin:1:1-1: Error: syntax error\nx\n^\n' } },
    { argv: ['nft', '-c', '-f', '-'], stdin: 'y' },
    { argv: ['nft', '-j', 'list', 'ruleset'], netns: 'qn-sys-firewall', result: { stdout: '{"nftables":[]}' } },
    { argv: ['conntrack', '-L', '-f', 'ipv4'], netns: 'qn-sys-firewall', result: { stdout: 'tcp 6 10 ESTABLISHED src=10.137.0.3 dst=10.137.0.1 sport=40000 dport=80 src=10.137.0.1 dst=10.137.0.2 sport=80 dport=40000 [ASSURED] mark=0 use=1\n' } },
    { argv: ['conntrack', '-L', '-f', 'ipv6'], netns: 'qn-sys-firewall' },
    {
      argv: ['conntrack', '-D', '-f', 'ipv4', '-p', 'tcp', '--orig-src', '10.137.0.3', '--orig-dst', '10.137.0.1', '--orig-port-src', '40000', '--orig-port-dst', '80'],
      netns: 'qn-sys-firewall',
      result: { stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n' },
    },
  ]);
  const be = new NetnsBackend({ runner: r, prefix: 'qn-', netnsDir: NO_DIR });
  await assert.rejects(be.loadRules('sys-firewall', 'x'), (e: unknown) => e instanceof NftError && e.diagnostic.qube === 'sys-firewall');
  await be.checkRules('y');
  assert.deepEqual(await be.counters('sys-firewall'), []);
  const flows = await be.flows('sys-firewall');
  assert.equal(flows.length, 1);
  assert.equal(await be.deleteFlow('sys-firewall', flows[0]!), 1);
  r.assertDone();
});

test('exec hands the argv to the interactive runner and returns its code', async () => {
  const seen: (readonly string[])[] = [];
  const interactive: InteractiveRunner = { runInteractive: async (argv) => (seen.push(argv), 42) };
  const be = new NetnsBackend({ runner: new ScriptedRunner([]), prefix: 'qn-', interactive });
  assert.equal(await be.exec('work', ['curl', 'x'], { user: 'user' }), 42);
  assert.deepEqual(seen, [[toolPath('ip'), 'netns', 'exec', 'qn-work', toolPath('runuser'), '-u', 'user', '--', 'curl', 'x']]);
  assert.throws(() => be.exec('../etc', ['true']), NetnsError);
});
