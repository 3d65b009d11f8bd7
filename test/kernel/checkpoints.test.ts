// Safe apply with a real daemon and real packets: an apply nobody confirms is rolled back when its
// time runs out — the rule that blocked traffic stops blocking and `qnet firewall work list` is as
// before; a confirmed one stays past its time; undo puts it back; a batch with a bad step changes
// neither the files nor the kernel; a pending apply is rolled back when the daemon stops. `qnet
// history`, `qnet confirm` and `qnet undo` reach the daemon from the command line.
import test from 'node:test';
import assert from 'node:assert/strict';
import { kernelUnavailable } from './ns.js';
import { until, withLiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { daemonTransport } from '../../src/cli/transport.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { QnetError } from '../../src/model/result.js';

const WEB = '203.0.113.10';
const DROP = 'action=drop dst4=203.0.113.10/32 proto=tcp dstports=80-80';
const step = { name: 'firewall.add', input: { qube: 'work', rule: DROP, before: 0 } };

const why = kernelUnavailable();
if (why) test('checkpoints with a real kernel', { skip: why }, () => {});
else {
  test('apply with a real daemon: rolled back when unconfirmed (packets and CLI), kept when confirmed, undone; a bad batch changes nothing', async () => {
    await withLiveSystem('qk', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const daemon = new Daemon({ stateDir: s.dir, runtime: await runtimeFor(s.dir, s.env), sysctls: NO_ICMP_RATELIMIT });
      await daemon.start();
      try {
        const d = (await daemonTransport(s.dir))!;
        const probe = async () => (await s.tcpProbe('work', WEB, 80, { timeoutMs: 1500 })).result;
        const list = () => s.ok('firewall work list');
        const before = await list();
        assert.equal(await probe(), 'ok');

        // One bad step: nothing changes, in the files or the kernel.
        await assert.rejects(d.call('apply', { ops: [step, { name: 'firewall.add', input: { qube: 'work', rule: 'action=maybe' } }], confirmWithin: 0 }), (e) => e instanceof QnetError && /^step 2/.test(e.diag.message));
        assert.equal(await list(), before);
        assert.equal(await probe(), 'ok');

        // Unconfirmed: blocked for two seconds, then back as before.
        const a = await d.call<{ checkpoint: string; state: string }>('apply', { ops: [step], confirmWithin: 2 });
        assert.equal(a.value.state, 'pending');
        assert.equal(await probe(), 'error:EHOSTUNREACH');
        assert.notEqual(await list(), before);
        assert.ok(await until(async () => (await probe()) === 'ok', 8000, 200), 'the rollback reopened traffic');
        assert.equal(await list(), before);
        assert.match(await s.ok('history'), /^cp1 .* rolled-back +the rules of work/m);

        // Confirmed: it stays past its time.
        const b = await d.call<{ checkpoint: string }>('apply', { ops: [step], confirmWithin: 2 });
        assert.match(await s.ok('history'), /^cp2 .* pending \(rolls back at .*\) +the rules of work +yes$/m);
        assert.equal(await s.ok(`confirm ${b.value.checkpoint}`), 'cp2: confirmed\n');
        await new Promise((r) => setTimeout(r, 3000));
        assert.equal(await probe(), 'error:EHOSTUNREACH');
        // Undo: as before again.
        assert.equal(await s.ok(`undo ${b.value.checkpoint}`), 'cp2: undone\n');
        assert.equal(await probe(), 'ok');
        assert.equal(await list(), before);

        // Pending when the daemon stops: rolled back, not left in the kernel.
        await d.call('apply', { ops: [step], confirmWithin: 600 });
        assert.equal(await probe(), 'error:EHOSTUNREACH');
      } finally {
        await daemon.stop();
      }
      assert.equal((await s.tcpProbe('work', WEB, 80, { timeoutMs: 1500 })).result, 'ok', 'the daemon rolled back its pending apply as it stopped');
      assert.doesNotMatch(await s.ok('firewall work list'), /203\.0\.113\.10/);
    });
  });
}
