// Removing a connection or a port forward cuts the flows it let through (as tightening a qube's
// rules does), and only those; a forward follows its target's address. Real packets in namespaces:
// a held TCP connection carries data before the change and none after it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';

const WEB = '203.0.113.10';
const UPLINK = worldUplinkAddresses.v4.netvm;
const ip = (qid: number) => `10.137.0.${qid}`;
const probe = async (s: LiveSystem, from: string, host: string, port: number, localAddress?: string) =>
  (await s.tcpProbe(from, host, port, { timeoutMs: 1500, ...(localAddress ? { localAddress } : {}) })).result;

/** Flows to `port` (original or reply direction) a node's conntrack tracks as answered. */
async function tracked(s: LiveSystem, node: string, port: number): Promise<number> {
  const out = (await s.sh(node, ['conntrack', '-L', '-p', 'tcp'])).stdout;
  // The held client retransmits after the cut: new unanswered flows (sent on to the world by
  // sys-net's default route) are fine; an answered one would mean the old path still carries.
  return out.split('\n').filter((l) => new RegExp(`(dport|sport)=${port}\\b`).test(l) && !l.includes('[UNREPLIED]')).length;
}

const why = kernelUnavailable();
if (why) test('kernel: removing links cuts their flows', { skip: why }, () => {});
else {
  test('disconnect cuts the held flows of that connection on every hop, and only those', async () => {
    await withLiveSystem('qg', async (s) => {
      await s.ok('init');
      await s.secondBranch();
      await s.ok('connect work personal --proto tcp --port 8000'); // c1: one hop (sys-firewall)
      await s.ok('connect work personal --proto tcp --port 8001'); // c2: stays
      await s.ok('connect work other --proto tcp --port 8000'); // c3: sys-firewall, sys-net, fw2
      await s.ok('start work personal other');
      for (const p of [8000, 8001]) await s.echoServer('personal', '0.0.0.0', p);
      await s.echoServer('other', '0.0.0.0', 8000);
      const c1 = await s.holdTcp('work', ip(4), 8000);
      const c2 = await s.holdTcp('work', ip(4), 8001);
      const c3 = await s.holdTcp('work', ip(8), 8000);
      for (const h of [c1, c2, c3]) assert.ok(await h.send(), 'data flows before');
      await s.ok('disconnect c1');
      assert.equal(await c1.send(2000), false, 'the held flow of c1 carries nothing after disconnect');
      assert.ok(await c2.send(), 'c2 untouched');
      assert.ok(await c3.send(), 'c3 untouched');
      await s.ok('disconnect c3');
      assert.equal(await c3.send(2000), false, 'the held flow across branches is cut too');
      assert.ok(await c2.send(), 'c2 still untouched');
      // Nothing of c3 is left tracked in the hops (a later packet would be judged anew and refused).
      for (const n of ['sys-net', 'fw2', 'other']) assert.equal(await tracked(s, n, 8000), 0, `no flow to 8000 left in ${n}`);
      for (const h of [c1, c2, c3]) await h.proc.stop();
    });
  });

  test('forward del cuts the held flows from the world through it, and only those', async () => {
    await withLiveSystem('qg', async (s) => {
      await s.ok('init');
      await s.ok('forward add work --proto tcp --port 8080 --to-port 8000'); // f1
      await s.ok('forward add work --proto tcp --port 8081 --to-port 8001'); // f2: stays
      await s.ok('start work');
      await s.echoServer('work', '0.0.0.0', 8000);
      await s.echoServer('work', '0.0.0.0', 8001);
      const h1 = await s.holdTcp('world', UPLINK, 8080, { localAddress: WEB });
      const h2 = await s.holdTcp('world', UPLINK, 8081, { localAddress: WEB });
      assert.ok(await h1.send());
      assert.ok(await h2.send());
      await s.ok('forward del f1');
      assert.equal(await h1.send(2000), false, 'the held forwarded flow carries nothing after forward del');
      assert.ok(await h2.send(), 'f2 untouched');
      for (const n of ['sys-net', 'sys-firewall', 'work']) assert.equal(await tracked(s, n, 8000), 0, `no flow of f1 left in ${n}`);
      await h1.proc.stop();
      await h2.proc.stop();
    });
  });

  test('a port forward follows work, then its firewall qube, to a new address while they run', async () => {
    await withLiveSystem('qg', async (s) => {
      await s.ok('init');
      await s.ok('forward add work --proto tcp --port 8080 --to-port 8000 --from 203.0.113.0/28');
      await s.ok('start work');
      await s.echoServer('work', '0.0.0.0', 8000);
      assert.equal(await probe(s, 'world', UPLINK, 8080, WEB), 'ok');
      await s.ok('prefs work ip 10.137.0.77');
      const addrs = (await s.sh('work', ['ip', '-4', '-o', 'addr', 'show'])).stdout;
      assert.match(addrs, /10\.137\.0\.77\//, 'work has its new address');
      assert.equal(await probe(s, 'world', UPLINK, 8080, WEB), 'ok', 'DNATed to the new address');
      assert.equal(await probe(s, 'world', UPLINK, 8080, '203.0.113.20'), 'timeout', 'still only from --from');
      const net = (await s.sh('sys-net', ['nft', 'list', 'ruleset'])).stdout;
      assert.doesNotMatch(net, /10\.137\.0\.3\b/, 'nothing in sys-net names the old address');
      assert.equal((await s.ok('check outside work:8080 --src-addr 203.0.113.10 --json')).includes('"accept"'), true);
      // Its netvm's address too: work's gateway changes, and sys-net DNATs to the new hop.
      await s.ok('prefs sys-firewall ip 10.137.0.66');
      assert.equal(await probe(s, 'world', UPLINK, 8080, WEB), 'ok', 'through sys-firewall at its new address');
      assert.equal(await probe(s, 'world', UPLINK, 8080, '203.0.113.20'), 'timeout');
      assert.equal(await probe(s, 'work', '203.0.113.10', 80), 'ok', 'and work still reaches the world');
    });
  });
}
