// The HTTP listener's pieces that need no daemon: only loopback addresses are taken, the Host names
// it accepts, the tokens (made 0600 on first use, then kept; a loose one refused), and the
// /proc/net/tcp look-up `qnet manager` trusts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { allowedHosts, HttpListener, httpTokenPath, httpTokens, parseHttpAddress, tcpListeningInodes } from './http.js';
import { MAX_BODY, type EventSink, type Served } from './routes.js';
import { QnetError } from '../model/result.js';
import { runDir } from '../store/paths.js';

test('--http takes loopback addresses only', () => {
  assert.deepEqual(parseHttpAddress('127.0.0.1:8765'), { host: '127.0.0.1', port: 8765 });
  assert.deepEqual(parseHttpAddress('127.1.2.3:1'), { host: '127.1.2.3', port: 1 });
  assert.deepEqual(parseHttpAddress('[::1]:8765'), { host: '::1', port: 8765 });
  assert.deepEqual(parseHttpAddress('LocalHost:0'), { host: '127.0.0.1', port: 0 });
  for (const bad of ['0.0.0.0:8765', '192.0.2.1:80', '[::]:8765', '[2001:db8::1]:80', '127.0.0.1', '127.0.0.1:65536', ':8765', 'example.com:80', '127.0.0.1:80/x', '128.0.0.1:80', '::1:80'])
    assert.throws(() => parseHttpAddress(bad), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET6113', bad);
});

test("Host: the listener's own name and the loopback names, with its port", () => {
  assert.deepEqual([...allowedHosts({ host: '127.0.0.2', port: 8765 })].sort(), ['127.0.0.1:8765', '127.0.0.2:8765', '[::1]:8765', 'localhost:8765']);
  assert.ok(allowedHosts({ host: '::1', port: 80 }).has('localhost'), 'browsers leave out port 80');
});

test('tokens are made 0600 on first use, kept after, and a loose one is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-http-'));
  try {
    mkdirSync(runDir(dir), { mode: 0o700 });
    const a = await httpTokens(dir);
    assert.match(a.editor, /^[0-9a-f]{64}$/);
    assert.notEqual(a.editor, a.viewer);
    assert.equal(statSync(httpTokenPath(runDir(dir), 'viewer')).mode & 0o777, 0o600);
    assert.deepEqual(await httpTokens(dir), a, 'stable');
    chmodSync(httpTokenPath(runDir(dir), 'editor'), 0o644);
    await assert.rejects(httpTokens(dir), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET6010');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/proc/net/tcp shows a listening socket on exactly its address', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  try {
    const port = (server.address() as { port: number }).port;
    assert.equal((await tcpListeningInodes({ host: '127.0.0.1', port })).length, 1);
    assert.equal((await tcpListeningInodes({ host: '127.0.0.2', port })).length, 0);
  } finally {
    server.close();
  }
});

test('the listener checks Host, Origin, token and role before anything runs (no daemon behind it)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-http-'));
  mkdirSync(runDir(dir), { mode: 0o700 });
  const tokens = { editor: 'e'.repeat(64), viewer: 'b'.repeat(64) };
  const ran: string[] = [];
  const served = {
    token: () => '',
    // Any op reaching the host is recorded: the refusals below must reach none.
    host: new Proxy({}, { get: (_t, k) => (ran.push(String(k)), () => Promise.reject(new Error('no host here'))) }),
    serial: <T>(f: () => Promise<T>) => f(),
    emit: () => {},
    log: () => {},
    listeners: new Set<EventSink>(),
    status: () => ({ up: true }),
    afterChange: () => {},
    takeEffects: () => [],
  } as unknown as Served;
  const l = new HttpListener(served, tokens);
  const { port } = await l.listen({ host: '127.0.0.1', port: 0 }, dir);
  const get = (headers: Record<string, string>, path = '/v1/status', method = 'GET') =>
    new Promise<{ status: number; code?: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
        let t = '';
        res.setEncoding('utf8').on('data', (c: string) => (t += c));
        res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(t) as { diagnostics?: { code: string }[] }).diagnostics?.[0]?.code }));
      });
      req.on('error', reject);
      req.end();
    });
  try {
    const ed = { authorization: `Bearer ${tokens.editor}` };
    assert.deepEqual(await get({ ...ed, host: `127.0.0.1:${port}` }), { status: 200, code: undefined });
    assert.deepEqual(await get({ authorization: `Bearer ${tokens.viewer}`, host: `localhost:${port}` }), { status: 200, code: undefined });
    assert.deepEqual(await get({ ...ed, host: `rebind.example:${port}` }), { status: 421, code: 'QNET6111' });
    assert.deepEqual(await get({ ...ed, host: `127.0.0.1:${port}`, origin: 'http://evil.example' }, '/v1/ops/firewall.add', 'POST'), { status: 403, code: 'QNET6112' });
    assert.deepEqual(await get({ host: `127.0.0.1:${port}`, authorization: `Bearer ${'f'.repeat(64)}` }), { status: 401, code: 'QNET6107' });
    assert.deepEqual(await get({ host: `127.0.0.1:${port}`, authorization: `Bearer ${tokens.viewer}` }, '/v1/ops/firewall.add', 'POST'), { status: 403, code: 'QNET6110' });
    assert.deepEqual(await get({ ...ed, host: `127.0.0.1:${port}`, 'content-length': String(MAX_BODY + 1) }, '/v1/ops/firewall.list', 'POST'), { status: 413, code: 'QNET6105' });
    assert.deepEqual(ran, [], 'no refused request reached the host');
  } finally {
    await l.close(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});
