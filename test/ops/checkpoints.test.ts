// Safe apply (ops/checkpoints.ts) without root: all or nothing, undo and its refusal offline; the
// confirm timer, confirm, rollback and the rollback of a pending apply at start with a sim daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonTransport, localTransport, type Transport } from '../../src/cli/transport.js';
import { bufferIo } from '../../src/cli/io.js';
import { Daemon } from '../../src/daemon/server.js';
import { QnetError } from '../../src/model/result.js';
import { checkpointsFilePath } from '../../src/store/checkpoints-file.js';

const NOW = 1_800_000_000;

async function withDir<T>(fn: (local: Transport, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-cp-'));
  try {
    const local = await localTransport(dir, bufferIo({ now: NOW }).io);
    await local.call('qubes.init', {});
    return await fn(local, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function refused(p: Promise<unknown>, code: string): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof QnetError, String(e));
    assert.equal(e.diag.code, code, e.diag.message);
    return e.diag.message;
  }
  assert.fail(`expected ${code}`);
}

const rules = async (t: Transport, qube: string) => ((await t.call<{ api: string }[]>('firewall.list', { qube })).value).map((r) => r.api);
const add = (qube: string, rule: string) => ({ name: 'firewall.add', input: { qube, rule } });

test('apply offline: a timer is refused, a batch with one bad step changes nothing, a good one is one checkpoint that undo puts back', async () => {
  await withDir(async (local) => {
    const before = await rules(local, 'work');
    await refused(local.call('apply', { ops: [add('work', 'action=drop proto=tcp dstports=22-22')] }), 'QNET6201');
    // Step 2 names a qube that does not exist: step 1 must not stay.
    const msg = await refused(local.call('apply', { ops: [add('work', 'action=drop proto=tcp dstports=22-22'), add('nosuch', 'action=accept')], confirmWithin: 0 }), 'QNET2003');
    assert.match(msg, /^step 2 \(firewall\.add\)/);
    assert.deepEqual(await rules(local, 'work'), before);
    await refused(local.call('apply', { ops: [{ name: 'firewall.list', input: { qube: 'work' } }], confirmWithin: 0 }), 'QNET6205');
    await refused(local.call('apply', { ops: [{ name: 'apply', input: { ops: [] } }], confirmWithin: 0 }), 'QNET6205');
    // Whether a qube runs is not part of what an apply puts back: starting one is not a step.
    await refused(local.call('apply', { ops: [{ name: 'start', input: { qubes: ['work'] } }], confirmWithin: 0 }), 'QNET6205');

    const r = await local.call<{ checkpoint: string; state: string; changed: string[] }>('apply', {
      ops: [add('work', 'action=drop proto=tcp dstports=22-22'), add('personal', 'action=drop proto=udp dstports=53-53'), { name: 'connections.add', input: { from: 'work', to: 'personal' } }],
      confirmWithin: 0,
      label: 'three steps',
    });
    assert.equal(r.value.state, 'confirmed');
    assert.deepEqual(r.value.changed.sort(), ['connection c1', 'the rules of personal', 'the rules of work']);
    assert.equal((await rules(local, 'work')).length, before.length + 1);
    const h = await local.call<{ id: string; undoable: boolean; label?: string }[]>('history', {});
    assert.deepEqual(h.value.map((x) => [x.id, x.undoable, x.label]), [[r.value.checkpoint, true, 'three steps']]);
    await refused(local.call('confirm', { checkpoint: r.value.checkpoint }), 'QNET6203');
    await refused(local.call('undo', { checkpoint: 'cp99' }), 'QNET6202');

    await local.call('undo', { checkpoint: r.value.checkpoint });
    assert.deepEqual(await rules(local, 'work'), before);
    assert.deepEqual((await local.call<unknown[]>('connections.list', {})).value, []);
    await refused(local.call('undo', { checkpoint: r.value.checkpoint }), 'QNET6203');

    // A preview of an apply records nothing.
    await refused(local.call('preview', { ops: [{ name: 'apply', input: { ops: [add('work', 'action=accept')], confirmWithin: 0 } }] }), 'QNET6208');
  });
});

test('undo is refused, naming what changed since, when a later change touched the same part; a part it did not touch is no obstacle', async () => {
  await withDir(async (local) => {
    const a = await local.call<{ checkpoint: string }>('apply', { ops: [add('work', 'action=drop proto=tcp dstports=22-22')], confirmWithin: 0 });
    await local.call('firewall.add', { qube: 'personal', rule: 'action=drop proto=tcp dstports=23-23' });
    await local.call('firewall.add', { qube: 'work', rule: 'action=drop proto=tcp dstports=24-24' });
    const h = (await local.call<{ undoable: boolean; why?: string }[]>('history', {})).value[0]!;
    assert.equal(h.undoable, false);
    assert.equal(h.why, 'the rules of work changed since');
    const msg = await refused(local.call('undo', { checkpoint: a.value.checkpoint }), 'QNET6204');
    assert.match(msg, /the rules of work changed since/);
    await local.call('firewall.del', { qube: 'work', rule: 'action=drop proto=tcp dstports=24-24' });
    await local.call('undo', { checkpoint: a.value.checkpoint });
    assert.ok(!(await rules(local, 'work')).some((x) => x.includes('dstports=22-22')));
    assert.ok((await rules(local, 'personal')).some((x) => x.includes('dstports=23-23')), 'the other qube keeps its later change');
  });
});

async function withDaemon<T>(dir: string, fn: (d: Transport, daemon: Daemon) => Promise<T>): Promise<T> {
  const daemon = new Daemon({ stateDir: dir, runtime: { backend: 'sim', prefix: 'qcp-' } });
  await daemon.start();
  try {
    const t = await daemonTransport(dir);
    assert.ok(t);
    return await fn(t, daemon);
  } finally {
    await daemon.stop();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('with the daemon: an unconfirmed apply rolls back when its time runs out (event by rollback); confirm keeps one; rollback now; a pending one is rolled back at start', async () => {
  await withDir(async (local, dir) => {
    const before = await rules(local, 'work');
    await withDaemon(dir, async (d, daemon) => {
      await d.call('start', { qubes: ['work'] }); // the simulator's kernel: rules reach an engine
      const events: string[] = [];
      daemon.listeners.add({ write: (l: string) => events.push(l), end: () => {} });
      const a = await d.call<{ checkpoint: string; state: string; confirmBy: number }>('apply', { ops: [add('work', 'action=drop proto=tcp dstports=22-22')], confirmWithin: 1 });
      assert.equal(a.value.state, 'pending');
      assert.equal((await rules(d, 'work')).length, before.length + 1);
      const deadline = Date.now() + 5000;
      while ((await rules(d, 'work')).length !== before.length && Date.now() < deadline) await sleep(100);
      assert.deepEqual(await rules(d, 'work'), before, 'rolled back by the timer');
      const said = () => events.some((l) => /"type":"changed".*"by":"rollback","checkpoint":"cp1"/.test(l));
      while (!said() && Date.now() < deadline) await sleep(50); // the event follows the change
      assert.ok(said(), events.join(''));
      assert.equal((await d.call<{ state: string }[]>('history', {})).value[0]!.state, 'rolled-back');

      const b = await d.call<{ checkpoint: string }>('apply', { ops: [add('work', 'action=drop proto=tcp dstports=23-23')], confirmWithin: 3 });
      // One unconfirmed apply at a time.
      await refused(d.call('apply', { ops: [add('personal', 'action=drop')], confirmWithin: 0 }), 'QNET6210');
      await d.call('confirm', { checkpoint: b.value.checkpoint });
      await sleep(3500);
      assert.equal((await rules(d, 'work')).length, before.length + 1, 'confirmed: it stays');

      const c = await d.call<{ checkpoint: string }>('apply', { ops: [add('work', 'action=drop proto=tcp dstports=25-25')], confirmWithin: 60 });
      await d.call('rollback', { checkpoint: c.value.checkpoint });
      assert.equal((await rules(d, 'work')).length, before.length + 1);
      await d.call('undo', { checkpoint: b.value.checkpoint });
      assert.deepEqual(await rules(d, 'work'), before);
    });
    // A checkpoint left pending on disk (a daemon that died before its timer): the next daemon rolls it back.
    const x = await local.call<{ checkpoint: string }>('apply', { ops: [add('work', 'action=drop proto=tcp dstports=26-26')], confirmWithin: 0 });
    const file = checkpointsFilePath(dir);
    const data = JSON.parse(readFileSync(file, 'utf8')) as { checkpoints: { id: string; state: string; confirmBy?: number }[] };
    const cp = data.checkpoints.find((c) => c.id === x.value.checkpoint)!;
    cp.state = 'pending';
    cp.confirmBy = NOW + 3600;
    writeFileSync(file, JSON.stringify(data));
    await withDaemon(dir, async (d) => {
      assert.deepEqual(await rules(d, 'work'), before, 'rolled back at start');
      assert.equal((await d.call<{ id: string; state: string }[]>('history', {})).value.find((h) => h.id === x.value.checkpoint)!.state, 'rolled-back');
    });
  });
});

test('a broken checkpoints file is refused with its code, naming the file; history and apply say so, nothing changes', async () => {
  await withDir(async (local, dir) => {
    const before = await rules(local, 'work');
    for (const text of ['not json', '{"next": 1, "checkpoints": [{"id": "../x"}]}', '{"next": -1, "checkpoints": []}', '[]']) {
      writeFileSync(checkpointsFilePath(dir), text);
      const msg = await refused(local.call('history', {}), 'QNET3401');
      assert.ok(msg.startsWith(checkpointsFilePath(dir)), msg);
      await refused(local.call('apply', { ops: [add('work', 'action=drop')], confirmWithin: 0 }), 'QNET3401');
      assert.deepEqual(await rules(local, 'work'), before);
    }
  });
});

test('undo of an apply that creates, renames, removes and re-links qubes gives back exactly the state before', async () => {
  await withDir(async (local) => {
    await local.call('firewall.set', { qube: 'untrusted', text: 'action=accept proto=icmp\naction=drop\n' });
    const snapshot = async () => ({
      qubes: (await local.call('qubes.list', {})).value,
      rules: await Promise.all(['work', 'personal', 'untrusted', 'vault'].map((q) => rules(local, q).catch((e: Error) => e.message))),
      connections: (await local.call('connections.list', {})).value,
      forwards: (await local.call('forwards.list', {})).value,
      global: (await local.call('global.get', {})).value,
    });
    const before = await snapshot();
    const step = (name: string, input: object) => ({ name, input });
    const a = await local.call<{ checkpoint: string; changed: string[] }>('apply', {
      confirmWithin: 0,
      ops: [
        step('qubes.create', { name: 'dev', label: 'purple' }),
        step('firewall.set', { qube: 'dev', text: 'action=accept proto=tcp dstports=443-443\naction=drop\n' }),
        step('connections.add', { from: 'work', to: 'dev', proto: 'tcp', ports: '22' }),
        step('forwards.add', { qube: 'dev', proto: 'tcp', port: 8080 }),
        step('qubes.rename', { from: 'personal', to: 'home' }),
        step('qubes.remove', { names: ['untrusted'] }),
        step('prefs.set', { qube: 'work', property: 'label', value: 'red' }),
        step('global.set', { property: 'default_netvm', value: 'sys-net' }),
      ],
    });
    assert.ok(a.value.changed.includes('qube dev') && a.value.changed.includes('qube home') && a.value.changed.includes('the global properties'), a.value.changed.join(', '));
    assert.notDeepEqual(await snapshot(), before);
    await local.call('undo', { checkpoint: a.value.checkpoint });
    assert.deepEqual(await snapshot(), before);
  });
});

