// explain: check for the stored policy and for what the kernel holds, side by side (a sim daemon:
// its engine's mirror is the kernel). They agree on a running qube; a halted qube is reachable in
// the stored policy (as if every qube ran) but not in the kernel, and the disagreement is said.
// Offline the kernel's side is refused with a code, never assumed. Deciding rules map back to the
// qube's rule number and text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonTransport, localTransport } from '../../src/cli/transport.js';
import { bufferIo } from '../../src/cli/io.js';
import { Daemon } from '../../src/daemon/server.js';
import { QnetError } from '../../src/model/result.js';

type Ref = { text: string; rules?: { qube: string; no: number; text: string }[] };
type Result = { verdict: string; node: string; hops: { node: string; steps: { by?: Ref }[] }[]; reply?: Result };
type Explained = { policy: Result[]; kernel: Result[] | null; kernelRefused: { code: string } | null; agree: boolean | null; differences: string[] };

test('explain: stored policy and kernel side by side; a halted qube is the disagreement; offline the kernel side is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-explain-'));
  try {
    const local = await localTransport(dir, bufferIo({ now: 1_800_000_000 }).io);
    await local.call('qubes.init', {});
    await local.call('firewall.set', { qube: 'work', text: 'action=drop proto=tcp dstports=22-22\naction=accept\n' });
    const off = await local.call<Explained>('explain', { src: 'work', dst: '192.0.2.5', port: 22 });
    assert.equal(off.value.kernel, null);
    assert.equal(off.value.kernelRefused?.code, 'QNET4206');
    assert.equal(off.value.agree, null);
    await assert.rejects(local.call('check', { src: 'work', dst: '192.0.2.5', against: 'kernel' }), (e) => e instanceof QnetError && e.diag.code === 'QNET4206');

    const daemon = new Daemon({ stateDir: dir, runtime: { backend: 'sim', prefix: 'qex-' } });
    await daemon.start();
    try {
      const d = (await daemonTransport(dir))!;
      await d.call('start', { qubes: ['work'] });
      const r = (await d.call<Explained>('explain', { src: 'work', dst: '192.0.2.5', proto: 'tcp', port: 22 })).value;
      assert.equal(r.agree, true, r.differences.join('\n'));
      for (const side of [r.policy, r.kernel!]) {
        assert.equal(side[0]!.verdict, 'reject');
        const fw = side[0]!.hops.find((h) => h.node === 'sys-firewall')!;
        const decided = fw.steps.flatMap((s) => (s.by?.rules ? [s.by] : []));
        assert.deepEqual(decided[0]!.rules, [{ qube: 'work', no: 0, text: 'action=drop proto=tcp dstports=22-22' }]);
        assert.equal(decided[0]!.text, 'work rule 0');
      }
      // personal is halted: the stored policy answers as if it ran; the kernel has no such node.
      const h = (await d.call<Explained>('explain', { src: 'personal', dst: '192.0.2.5', port: 443 })).value;
      assert.equal(h.agree, false);
      assert.equal(h.policy[0]!.verdict, 'accept');
      assert.equal(h.kernel![0]!.verdict, 'drop');
      assert.match(h.differences[0]!, /accept at world in the stored policy, drop at personal in the kernel/);
      const t = performance.now();
      for (let k = 0; k < 20; k++) await d.call('explain', { src: 'work', dst: 'sys-net', proto: 'icmp' });
      const ms = (performance.now() - t) / 20;
      console.log(`explain over the socket: ${ms.toFixed(1)} ms`);
      assert.ok(ms < 200, `explain took ${ms} ms`);
    } finally {
      await daemon.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
