// The daemon's link-edit path with real packets (engine/link-edit.ts): once a node has links of a
// shape, adding or removing another one through the daemon patches its keys into each hop without a
// converge, and the kernel lets it through (or stops it) at once. The first link of a shape needs
// new maps and chains: that one converges. Layout: sys-net ← sys-firewall ← work, personal;
// sys-net ← fw2 ← other (LiveSystem.secondBranch). No listener: a reset from the target
// (ECONNREFUSED) means the connection got through, a timeout that it was dropped on the way.
import test from 'node:test';
import assert from 'node:assert/strict';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { Engine } from '../../src/engine/engine.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';

const UPLINK = worldUplinkAddresses.v4.netvm;
const OTHER = '10.137.0.8'; // qid 8: after fw2 (7)

const probe = async (s: LiveSystem, from: string, host: string, port: number) => (await s.tcpProbe(from, host, port, { timeoutMs: 1500 })).result;

/** How many converges `fn` caused in this process's engines. */
async function converges(fn: () => Promise<unknown>): Promise<number> {
  const orig = Engine.prototype.converge;
  let n = 0;
  Engine.prototype.converge = function (this: Engine, ...a: Parameters<Engine['converge']>) {
    n++;
    return orig.apply(this, a);
  };
  try {
    await fn();
  } finally {
    Engine.prototype.converge = orig;
  }
  return n;
}

const why = kernelUnavailable();
if (why) test('kernel links through the daemon', { skip: why }, () => {});
else
  test('through the daemon, a second connection and forward are patched in hop by hop, and removed the same way', { timeout: 240_000 }, async () => {
    await withLiveSystem('qld', async (s) => {
      await s.ok('init');
      await s.secondBranch();
      await s.ok('start work personal other');
      const d = new Daemon({ stateDir: s.dir, runtime: await runtimeFor(s.dir, s.env), sysctls: NO_ICMP_RATELIMIT });
      await d.start();
      try {
        // The first of each shape makes the maps and chains: a converge.
        assert.equal(await converges(() => s.ok('connect work other --proto tcp --port 8000')), 1);
        assert.equal(await converges(() => s.ok('forward add work --proto tcp --port 8080')), 1);
        assert.equal(await probe(s, 'work', OTHER, 8000), 'error:ECONNREFUSED');
        // Another to the same qube, from a qube whose hop already carries one: patched, no converge.
        assert.equal(await probe(s, 'personal', OTHER, 8001), 'timeout', 'before: dropped');
        assert.equal(await converges(() => s.ok('connect personal other --proto tcp --port 8001')), 0);
        assert.equal(await probe(s, 'personal', OTHER, 8001), 'error:ECONNREFUSED');
        assert.equal(await probe(s, 'work', OTHER, 8001), 'timeout', 'only from personal');
        assert.equal(await probe(s, 'world', UPLINK, 8081), 'timeout', 'before: no forward');
        // A second forward to work (its input has the forwards' map): patched. (The first to
        // personal would converge: personal's input needs that map first.)
        assert.equal(await converges(() => s.ok('forward add work --proto tcp --port 8081')), 0);
        assert.equal(await probe(s, 'world', UPLINK, 8081), 'error:ECONNREFUSED');
        // Removed the same way; the first ones stay.
        const conns = JSON.parse(await s.ok('connections --json')) as { id: string; from: string }[];
        assert.equal(await converges(() => s.ok(['disconnect', conns.find((c) => c.from === 'personal')!.id])), 0);
        assert.equal(await probe(s, 'personal', OTHER, 8001), 'timeout');
        const fwds = JSON.parse(await s.ok('forward list --json')) as { id: string; port: number }[];
        assert.equal(await converges(() => s.ok(['forward', 'del', fwds.find((f) => f.port === 8081)!.id])), 0);
        assert.equal(await probe(s, 'world', UPLINK, 8081), 'timeout');
        assert.equal(await probe(s, 'work', OTHER, 8000), 'error:ECONNREFUSED', 'the first connection stays');
        assert.equal(await probe(s, 'world', UPLINK, 8080), 'error:ECONNREFUSED', 'the first forward stays');
        // What the daemon loaded is what a full load gives: the offline check agrees with the kernel.
        assert.equal((JSON.parse(await s.ok('check personal other:8001 --json')) as { verdict: string }).verdict, 'drop');
      } finally {
        await d.stop();
      }
    });
  });
