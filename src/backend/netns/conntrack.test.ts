import test from 'node:test';
import assert from 'node:assert/strict';
import { deleteArgv, deleteFlows, listFlows, parseFlowLine } from './conntrack.js';
import { NetnsError } from './links.js';
import { ScriptedRunner } from './runner.js';

// Lines as conntrack-tools 1.4.7 prints them.
const TCP = 'tcp      6 431999 ESTABLISHED src=10.137.0.3 dst=10.137.0.1 sport=49092 dport=8080 src=10.137.0.1 dst=10.137.0.2 sport=8080 dport=49092 [ASSURED] mark=0 use=1';
const ICMP = 'icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=18383 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=18383 mark=0 use=1';
const UDP = 'udp      17 29 src=10.137.0.3 dst=10.139.1.1 sport=5353 dport=53 [UNREPLIED] src=192.0.2.53 dst=10.137.0.3 sport=53 dport=5353 mark=0 zone=3 use=1';
const TCP6 = 'tcp      6 119 TIME_WAIT src=::1 dst=::1 sport=42764 dport=8081 src=::1 dst=::1 sport=8081 dport=42764 [ASSURED] mark=0 use=1';

test('a TCP flow: state, both tuples with numeric ports, flags', () => {
  // Ports are numbers (deepEqual is strict): Qubes compares strings, where 8080 could pass for "80"-and-more.
  assert.deepEqual(parseFlowLine(TCP, 4), {
    family: 4, proto: 'tcp', protoNum: 6, timeout: 431999, state: 'ESTABLISHED', flags: ['ASSURED'], mark: 0,
    src: '10.137.0.3', dst: '10.137.0.1', sport: 49092, dport: 8080,
    reply: { src: '10.137.0.1', dst: '10.137.0.2', sport: 8080, dport: 49092 },
  });
});

test('ICMP, UDP (NATed, unreplied, zone) and IPv6 lines', () => {
  const icmp = parseFlowLine(ICMP, 4)!;
  assert.deepEqual([icmp.type, icmp.code, icmp.id, icmp.state, icmp.reply.type], [8, 0, 18383, undefined, 0]);
  const udp = parseFlowLine(UDP, 4)!;
  assert.deepEqual([udp.flags, udp.zone, udp.reply.src, udp.dport], [['UNREPLIED'], 3, '192.0.2.53', 53]);
  assert.equal(parseFlowLine(TCP6, 6)!.src, '::1');
  assert.equal(parseFlowLine('conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.', 4), undefined);
});

test('list runs one conntrack per family in the namespace', async () => {
  const r = new ScriptedRunner([{ argv: ['conntrack', '-L', '-f', 'ipv4'], netns: 'qn-fw', result: { stdout: `${TCP}\n${ICMP}\n` } }]);
  assert.equal((await listFlows(r, 'qn-fw', 4)).length, 2);
});

test('delete is precise: family, protocol, both addresses and ports', async () => {
  assert.deepEqual(deleteArgv({ proto: 'tcp', src: '10.137.0.3', dst: '10.137.0.1', sport: 49092, dport: 8080 }), [
    'conntrack', '-D', '-f', 'ipv4', '-p', 'tcp', '--orig-src', '10.137.0.3', '--orig-dst', '10.137.0.1',
    '--orig-port-src', '49092', '--orig-port-dst', '8080',
  ]);
  assert.deepEqual(deleteArgv({ proto: 'icmpv6', src: '::1', dst: '::2' }).slice(2, 6), ['-f', 'ipv6', '-p', 'icmpv6']);
  for (const bad of [
    { proto: 'tcp', src: '10.0.0.1', dst: '::1' },
    { proto: 'tcp; rm', src: '10.0.0.1', dst: '10.0.0.2' },
    { proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', dport: 70000 },
  ])
    assert.throws(() => deleteArgv(bad), NetnsError);
  const r = new ScriptedRunner([
    { argv: deleteArgv({ proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' }), netns: 'qn-fw', result: { stdout: TCP, stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n' } },
    { argv: deleteArgv({ proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' }), netns: 'qn-fw', result: { code: 1, stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' } },
    { argv: deleteArgv({ proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' }), netns: 'qn-fw', result: { code: 1, stderr: 'Operation not permitted\n' } },
  ]);
  const sel = { proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' };
  assert.equal(await deleteFlows(r, 'qn-fw', sel), 1);
  assert.equal(await deleteFlows(r, 'qn-fw', sel), 0);
  await assert.rejects(deleteFlows(r, 'qn-fw', sel, 'sys-firewall'), (e: unknown) => e instanceof NetnsError && e.diagnostic.qube === 'sys-firewall');
});

test('deleting a flow that ended between list and delete counts as 0, not an error', async () => {
  const runner = new ScriptedRunner([
    {
      argv: ['conntrack', '-D', '-f', 'ipv4', '-p', 'tcp', '--orig-src', '10.137.0.3', '--orig-dst', '203.0.113.10', '--orig-port-src', '40000', '--orig-port-dst', '80'],
      netns: 'qnet-sys-firewall',
      result: { code: 1, stderr: "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist\n" },
    },
  ]);
  assert.equal(await deleteFlows(runner, 'qnet-sys-firewall', { proto: 'tcp', src: '10.137.0.3', dst: '203.0.113.10', sport: 40000, dport: 80 }), 0);
  runner.assertDone();
});
