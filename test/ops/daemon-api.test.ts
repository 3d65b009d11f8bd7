// The daemon's operations over its socket, with real HTTP (a sim-backend daemon in this process: no
// root needed): the listing with schemas, every kind of refusal with its status and code, garbage
// followed by a normal request, reads that do not wait for a long change, and events that say what
// changed and why. Then the same cases through both transports (local and daemon) must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient } from '../../src/daemon/client.js';
import { Daemon } from '../../src/daemon/server.js';
import { socketName } from '../../src/daemon/socket.js';
import { daemonTransport, localTransport, type Transport } from '../../src/cli/transport.js';
import { bufferIo } from '../../src/cli/io.js';
import { QnetError } from '../../src/model/result.js';
import * as v from 'valibot';
import { findOp, OP_INDEX } from '../../src/ops/registry.js';

const NOW = 1_800_000_000;

async function withDaemon<T>(fn: (c: DaemonClient, dir: string, d: Daemon) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-api-'));
  const local = await localTransport(dir, bufferIo({ now: NOW }).io);
  await local.call('qubes.init', {});
  const d = new Daemon({ stateDir: dir, runtime: { backend: 'sim', prefix: 'qapi-' }, now: () => NOW });
  try {
    await d.start();
    const c = await DaemonClient.connect(dir);
    assert.ok(c, 'the daemon answers');
    return await fn(c, dir, d);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

type Diag = { diagnostics: { code: string; message: string }[] };
const code = (body: unknown) => (body as Diag).diagnostics[0]!.code;

/** A raw request on the daemon's socket (what a misbehaving peer can send). */
function raw(dir: string, path: string, opts: { method?: string; body?: Buffer | string; token?: string }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socketName(dir), path, method: opts.method ?? 'POST', agent: false, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('GET /v1/ops lists every operation with its kind and input JSON Schema; no session is an operation', async () => {
  await withDaemon(async (c) => {
    const r = await c.request('GET', '/v1/ops');
    assert.equal(r.status, 200);
    const ops = r.body as { name: string; kind: string; input: { type?: string } }[];
    assert.deepEqual(ops.map((o) => o.name).sort(), Object.keys(OP_INDEX).sort());
    const add = ops.find((o) => o.name === 'firewall.add')!;
    assert.equal(add.kind, 'change');
    assert.equal(add.input.type, 'object');
    assert.equal(ops.find((o) => o.name === 'check')!.kind, 'read');
    for (const session of ['run', 'daemon', 'events', 'demo', 'cli']) {
      const s = await c.request('POST', `/v1/ops/${session}`, {});
      assert.equal(s.status, 404, session);
      assert.equal(code(s.body), 'QNET6101');
    }
  });
});

test('refusals: schema 400, refused change 422, wrong method 405, no token 401, garbage 400 — and the next request is served', async () => {
  await withDaemon(async (c, dir) => {
    const bad = await c.request('POST', '/v1/ops/firewall.add', { qube: 5, rule: 'action=accept' });
    assert.equal(bad.status, 400);
    assert.equal(code(bad.body), 'QNET6102');
    assert.match((bad.body as Diag).diagnostics[0]!.message, /qube/);
    const extra = await c.request('POST', '/v1/ops/qubes.list', { nmaes: ['work'] });
    assert.equal(extra.status, 400, 'unknown keys are refused, not ignored');
    const refused = await c.request('POST', '/v1/ops/firewall.add', { qube: 'nosuch', rule: 'action=accept' });
    assert.equal(refused.status, 422);
    assert.equal(code(refused.body), 'QNET2003');
    const badRule = await c.request('POST', '/v1/ops/firewall.add', { qube: 'work', rule: 'action=maybe' });
    assert.equal(badRule.status, 422);
    assert.match(code(badRule.body), /^QNET1/);
    const get = await c.request('GET', '/v1/ops/qubes.list');
    assert.equal(get.status, 405);
    assert.equal((await raw(dir, '/v1/ops/qubes.list', { body: '{}' })).status, 401, 'no token');
    assert.equal((await raw(dir, '/v1/ops/qubes.list', { body: '{}', token: 'f'.repeat(64) })).status, 401, 'a wrong token');
    const token = (await import('node:fs')).readFileSync(join(dir, 'run', 'daemon.token'), 'utf8').trim();
    const garbage = await raw(dir, '/v1/ops/qubes.list', { body: '\x00\xff{{{not json', token });
    assert.equal(garbage.status, 400);
    assert.equal(code(JSON.parse(garbage.text)), 'QNET6106');
    const big = await raw(dir, '/v1/ops/firewall.set', { body: Buffer.alloc(65 * 1024 * 1024, 0x20), token }).catch((e: Error) => ({ status: -1, text: e.message }));
    assert.ok(big.status === 413 || big.status === -1, `an oversize body is refused (${big.status})`);
    const after = await c.request('POST', '/v1/ops/qubes.list', {});
    assert.equal(after.status, 200, 'the daemon answers the next request');
    assert.equal((after.body as { value: unknown[] }).value.length, 6);
  });
});

test('reads run beside a long change; events say what changed and why, never argv', async () => {
  await withDaemon(async (c, dir) => {
    const events: Record<string, unknown>[] = [];
    const ac = new AbortController();
    const stream = c.events((l) => events.push(JSON.parse(l) as Record<string, unknown>), ac.signal);
    try {
      // A change that takes a while: 100k rules replace work's, parsed, compiled and written.
      const text = Array.from({ length: 100_000 }, (_, i) => `action=accept dsthost=198.51.100.${i % 250}/32 proto=tcp dstports=${1 + (i % 60000)}\n`).join('');
      let changeDone = 0;
      const change = c.request('POST', '/v1/ops/firewall.set', { qube: 'work', text }).then((r) => ((changeDone = Date.now()), r));
      await new Promise((r) => setTimeout(r, 50));
      const read = await c.request('POST', '/v1/ops/qubes.list', { names: ['personal'] });
      const readDone = Date.now();
      assert.equal(read.status, 200);
      const r = await change;
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      assert.equal((r.body as { value: { count: number } }).value.count, 100_000);
      assert.ok(readDone < changeDone, `the read answered ${changeDone - readDone} ms before the change finished`);
      const until = Date.now() + 3000;
      while (!events.some((e) => e['type'] === 'changed') && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
      const changed = events.find((e) => e['type'] === 'changed')!;
      assert.deepEqual({ ...changed, time: undefined }, { time: undefined, type: 'changed', effect: { kind: 'rules', qubes: ['work'] }, by: 'op', op: 'firewall.set' });
      assert.ok(!events.some((e) => 'argv' in e), 'no event carries argv');
    } finally {
      ac.abort();
      await stream;
    }
  });
});

/** The same cases through both doors give the same values, warnings and refusal codes. */
test('every case gives the same answer through the local and the daemon transport', async () => {
  const cases: [string, unknown][] = [
    ['qubes.list', {}],
    ['qubes.list', { names: ['work', 'nosuch'] }],
    ['qubes.create', { name: 'dev', label: 'purple' }],
    ['qubes.create', { name: '9bad' }],
    ['prefs.set', { qube: 'dev', property: 'netvm', value: 'sys-net' }],
    ['prefs.get', { qube: 'dev', property: 'netvm' }],
    ['prefs.list', { qube: 'dev' }],
    ['global.get', {}],
    ['firewall.add', { qube: 'work', rule: 'action=accept dsthost=web.example.com proto=tcp dstports=443-443' }],
    ['firewall.add', { qube: 'work', rule: 'action=accept proto=icmp', before: 0 }],
    ['firewall.add', { qube: 'work', rule: 'action=accept dsthost=web.example.com proto=tcp dstports=443-443' }],
    ['firewall.list', { qube: 'work' }],
    ['firewall.get', { qube: 'work' }],
    ['firewall.del', { qube: 'work', ruleNo: 0 }],
    ['firewall.del', { qube: 'work', ruleNo: 99 }],
    ['firewall.set', { qube: 'personal', text: 'action=accept proto=icmp\naction=drop\n' }],
    ['firewall.set', { qube: 'personal', text: 'action=accept\nbogus\n' }],
    ['nft', { qube: 'sys-firewall' }],
    ['check', { src: 'work', dst: 'web.example.com', port: 443 }],
    ['check', { src: 'work', dst: 'personal' }],
    ['matrix', { proto: 'tcp', port: 443 }],
    ['preview', { ops: [{ name: 'firewall.reset', input: { qube: 'work' } }] }],
    ['preview', { ops: [{ name: 'qubes.list', input: {} }] }],
    ['start', { qubes: ['work'] }],
    ['shutdown', { qubes: ['sys-firewall'] }],
    ['qubes.list', {}],
    ['shutdown', { all: true }],
    ['qubes.rename', { from: 'dev', to: 'dev2' }],
    ['qubes.clone', { from: 'dev2', to: 'dev3' }],
    ['qubes.remove', { names: ['dev2', 'dev3'] }],
    ['firewall.reset', { qube: 'work' }],
    ['apply', { ops: [{ name: 'firewall.add', input: { qube: 'work', rule: 'action=drop proto=tcp dstports=22-22' } }, { name: 'connections.add', input: { from: 'work', to: 'personal' } }], confirmWithin: 0 }],
    ['apply', { ops: [{ name: 'firewall.add', input: { qube: 'work', rule: 'action=drop' } }, { name: 'firewall.add', input: { qube: 'nosuch', rule: 'action=drop' } }], confirmWithin: 0 }],
    ['history', {}],
    ['undo', { checkpoint: 'cp1' }],
    ['undo', { checkpoint: 'cp1' }],
    ['connections.add', { from: 'work', to: 'personal', proto: 'tcp', ports: '22' }],
    ['connections.add', { from: 'work', to: 'personal', proto: 'tcp', ports: '22' }],
    ['connections.add', { from: 'work', to: 'nosuch' }],
    ['connections.list', {}],
    ['connections.del', { from: 'work', to: 'personal', proto: 'tcp', ports: '22' }],
    ['connections.del', { id: 'c1' }],
    ['forwards.add', { qube: 'work', proto: 'tcp', port: 8080, toPort: 80, from: ['192.0.2.0/24'] }],
    ['forwards.add', { qube: 'work', proto: 'tcp', port: 8080, from: ['not-a-cidr'] }],
    ['forwards.list', {}],
    ['export.qubes', {}],
    ['export.qubes', { qubes: ['work'], iptables: true }],
    ['export.qubes', { qubes: ['nosuch'] }],
    ['forwards.del', { id: 'f1' }],
  ];
  const answer = async (t: Transport, name: string, input: unknown) => {
    try {
      return JSON.parse(JSON.stringify(await t.call(name, input))) as unknown;
    } catch (e) {
      if (e instanceof QnetError) return { refused: e.diag.code, message: e.diag.message };
      throw e;
    }
  };
  const offDir = mkdtempSync(join(tmpdir(), 'qnet-off-'));
  try {
    const io = bufferIo({ now: NOW }).io;
    const off = await localTransport(offDir, io);
    await off.call('qubes.init', {});
    // The offline directory runs on the simulator too, so `start` is bookkeeping on both sides.
    (await import('node:fs')).writeFileSync(join(offDir, 'runtime.json'), JSON.stringify({ backend: 'sim', prefix: 'qoff-' }) + '\n');
    await withDaemon(async (_c, dir) => {
      const viaDaemon = (await daemonTransport(dir))!;
      assert.equal(viaDaemon.kind, 'daemon');
      for (const [name, input] of cases) {
        const a = await answer(off, name, input);
        const b = await answer(viaDaemon, name, input);
        const op = (await findOp(name))!;
        if (op.output && !(a as { refused?: string }).refused) {
          const check = v.safeParse(op.output, (a as { value: unknown }).value);
          assert.ok(check.success, `${name}'s value fits its declared output: ${JSON.stringify(check.issues?.slice(0, 2))}`);
        }
        assert.deepEqual(b, JSON.parse(JSON.stringify(a).replaceAll(offDir, dir)), `${name} ${JSON.stringify(input)}`);
      }
    });
  } finally {
    rmSync(offDir, { recursive: true, force: true });
  }
});

test('the drop log differs by door on purpose: offline refused (nobody reads the kernel), the daemon answers', async () => {
  const offDir = mkdtempSync(join(tmpdir(), 'qnet-off-'));
  try {
    const off = await localTransport(offDir, bufferIo({ now: NOW }).io);
    await off.call('qubes.init', {});
    await assert.rejects(off.call('log', {}), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET6120');
    await withDaemon(async (_c, dir) => {
      // The simulator has no kernel to log: an empty log, in the declared shape, and a warning saying why.
      const r = await (await daemonTransport(dir))!.call('log', { qube: 'work' });
      assert.deepEqual(r.value, { entries: [], groups: [] });
      assert.deepEqual(r.warnings.map((w) => w.code), ['QNET6121']);
      assert.ok(v.safeParse((await findOp('log'))!.output!, r.value).success);
    });
  } finally {
    rmSync(offDir, { recursive: true, force: true });
  }
});

test('while the daemon runs it is the only writer: a CLI that does not reach it (QNET_NO_DAEMON) is refused at once, naming it', async () => {
  await withDaemon(async (_c, dir) => {
    const io = bufferIo({ now: NOW, env: { QNET_NO_DAEMON: '1' } }).io;
    const off = await localTransport(dir, io);
    const t0 = Date.now();
    await assert.rejects(off.call('firewall.add', { qube: 'work', rule: 'action=accept' }), (e: unknown) => {
      assert.ok(e instanceof QnetError);
      assert.equal(e.diag.code, 'QNET3001');
      assert.match(e.diag.message, new RegExp(`daemon \\(pid ${process.pid}\\)`));
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, 'no waiting for a lock the daemon holds for its life');
    // Reads need no lock: they still answer.
    assert.equal(((await off.call('qubes.list', {})).value as unknown[]).length, 6);
  });
});
