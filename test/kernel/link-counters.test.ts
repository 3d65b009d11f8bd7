// `qnet connections -v` / `qnet forward list -v` with real packets (issue 10 item 3): N new flows
// through a connection across branches and through a port forward from the world namespace, and
// each hop's kernel counters, summed per connection/forward by the rules' origins, show at least N.
import test from 'node:test';
import assert from 'node:assert/strict';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';

const PORT = 8000;
const N = 5;
const WEB = '203.0.113.10'; // a world address (documentation range)
const UPLINK = worldUplinkAddresses.v4.netvm;

type Hop = { node: string; packets: number | null; bytes: number | null };

const probe = async (s: LiveSystem, from: string, host: string, port: number, localAddress?: string) =>
  (await s.tcpProbe(from, host, port, { timeoutMs: 1500, ...(localAddress ? { localAddress } : {}) })).result;

const why = kernelUnavailable();
if (why) test('kernel link counters', { skip: why }, () => {});
else {
  test('-v counts every new flow of a connection and a forward at each hop of its path', async () => {
    await withLiveSystem('qk', async (s) => {
      await s.ok('init');
      await s.secondBranch();
      await s.ok(`connect work other --proto tcp --port ${PORT}`);
      await s.ok(`forward add work --proto tcp --port 8080 --to-port ${PORT}`);
      await s.ok('start work other');
      await s.echoServer('other', '0.0.0.0', PORT);
      await s.echoServer('work', '0.0.0.0', PORT);
      // Before any packet: every hop counts 0 (the rules are there and counting).
      const zero = JSON.parse(await s.ok('connections -v --json')) as { hops: Hop[] }[];
      assert.deepEqual(zero[0]!.hops, ['sys-firewall', 'sys-net', 'fw2', 'other'].map((node) => ({ node, packets: 0, bytes: 0 })));
      // N separate flows each way: the accepts sit after `established,related accept` and nat sees
      // a flow once, so each counts a flow's first packet (a retransmitted SYN may add more).
      for (let k = 0; k < N; k++) assert.equal(await probe(s, 'work', '10.137.0.8', PORT), 'ok');
      for (let k = 0; k < N; k++) assert.equal(await probe(s, 'world', UPLINK, 8080, WEB), 'ok');
      const conns = JSON.parse(await s.ok('connections -v --json')) as { id: string; hops: Hop[] }[];
      assert.deepEqual(conns[0]!.hops.map((h) => h.node), ['sys-firewall', 'sys-net', 'fw2', 'other']);
      for (const h of conns[0]!.hops) {
        assert.ok(h.packets! >= N && h.packets! <= 2 * N, `connection c1 at ${h.node}: ${h.packets} packets for ${N} flows`);
        assert.ok(h.bytes! >= N * 40, `connection c1 at ${h.node}: ${h.bytes} bytes`);
      }
      const fwds = JSON.parse(await s.ok('forward list -v --json')) as { hops: Hop[] }[];
      assert.deepEqual(fwds[0]!.hops.map((h) => h.node), ['sys-net', 'sys-firewall', 'work']);
      // DNAT (nat prerouting) and the forward accept both count at a netvm: 2 rules per flow.
      const [net, fw, work] = fwds[0]!.hops;
      assert.ok(net!.packets! >= 2 * N && fw!.packets! >= 2 * N, `forward f1: ${JSON.stringify(fwds[0]!.hops)}`);
      assert.ok(work!.packets! >= N && work!.packets! <= 2 * N, `forward f1 at work: ${work!.packets}`);
      // The connection's flows are not the forward's, and the other way round.
      assert.ok(conns[0]!.hops[0]!.packets! <= 2 * N);
      // The table: a row per hop with its numbers.
      const text = await s.ok('forward list -v');
      assert.match(text, /^ID +FORWARD +FROM +STATE +COMMENT +HOP +PKTS +BYTES\n/);
      assert.match(text, new RegExp(`f1 .* active +sys-net +${net!.packets} +${net!.bytes}\\n +sys-firewall +${fw!.packets} +\\d+\\n +work +${work!.packets} +\\d+\\n$`));
      // qnet counters for work shows its connection and forward too.
      const rows = JSON.parse(await s.ok('counters work --json')) as { hop: string; rule: string; packets: number }[];
      assert.ok(rows.some((r) => r.hop === 'work' && r.rule === 'forward f1' && r.packets >= N), JSON.stringify(rows));
      // A halted hop shows '-': stop other (fw2 keeps running).
      await s.ok('shutdown other');
      const after = JSON.parse(await s.ok('connections -v --json')) as { hops: Hop[] }[];
      assert.deepEqual(after[0]!.hops.at(-1), { node: 'other', packets: null, bytes: null });
      assert.match(await s.ok('connections -v'), /\n +other +- +-\n$/);
    });
  });
}
