// The daemon's HTTP API over real HTTP (node's fetch and node:http for headers fetch will not send):
// roles from the op's kind, tokens, Host and Origin checks, bounded bodies, Server-Sent Events,
// the OpenAPI document, `qnet manager` — and that the listener on the host's 127.0.0.1 cannot be
// reached from inside any qube. An in-process Daemon on a live system, stopped before cleanup.
import test from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { MAX_BODY } from '../../src/daemon/routes.js';
import { httpTokenPath, readHttpToken } from '../../src/daemon/http.js';
import { runDir } from '../../src/store/paths.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { describeOps } from '../../src/ops/registry.js';

async function newDaemon(s: LiveSystem): Promise<Daemon> {
  const d = new Daemon({
    stateDir: s.dir,
    runtime: await runtimeFor(s.dir, s.env),
    sysctls: NO_ICMP_RATELIMIT,
    http: { host: '127.0.0.1', port: 0, keepaliveMs: 300 },
  });
  await d.start();
  return d;
}

interface Reply {
  status: number;
  body: { diagnostics?: { code: string }[]; value?: unknown; [k: string]: unknown };
}

/** One request with node:http, any headers (fetch refuses to set Host), bounded. */
function raw(port: number, o: { method?: string; path: string; headers?: Record<string, string | number>; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: o.headers ?? {}, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? (JSON.parse(text) as Reply['body']) : {} }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

const why = kernelUnavailable();
if (why) test('kernel http', { skip: why }, () => {});
else {
  test('the HTTP API: roles, tokens, Host and Origin, bounded bodies, SSE, OpenAPI, manager; unreachable from qubes', async () => {
    await withLiveSystem('qh', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      let d = await newDaemon(s);
      try {
        const port = d.httpAddress!.port;
        const base = `http://127.0.0.1:${port}`;
        const editor = (await readHttpToken(s.dir, 'editor'))!;
        const viewer = (await readHttpToken(s.dir, 'viewer'))!;
        assert.match(editor, /^[0-9a-f]{64}$/);
        assert.notEqual(editor, viewer);
        for (const role of ['editor', 'viewer'] as const) assert.equal(statSync(httpTokenPath(runDir(s.dir), role)).mode & 0o777, 0o600, `${role} token is 0600`);

        const call = async (token: string | undefined, path: string, body?: unknown, headers: Record<string, string> = {}) => {
          const r = await fetch(base + path, {
            method: body === undefined ? 'GET' : 'POST',
            headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            signal: AbortSignal.timeout(10_000),
          });
          return { status: r.status, body: (await r.json()) as Reply['body'] };
        };
        const code = (r: Reply) => r.body.diagnostics?.[0]?.code;

        // The event stream, as a viewer, read with fetch (what a page does: EventSource cannot send a bearer token).
        const ac = new AbortController();
        const sse = await fetch(base + '/v1/events', { headers: { authorization: `Bearer ${viewer}` }, signal: ac.signal });
        assert.equal(sse.status, 200);
        assert.match(sse.headers.get('content-type') ?? '', /^text\/event-stream/);
        let sseText = '';
        const reading = (async () => {
          const dec = new TextDecoder();
          for await (const chunk of sse.body!) sseText += dec.decode(chunk as Uint8Array, { stream: true });
        })().catch(() => {});
        const sseEvents = () => sseText.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)) as { type: string; op?: string; effect?: unknown });
        const waitSse = async (pred: () => boolean, what: string) => {
          const deadline = Date.now() + 5000;
          while (!pred()) {
            if (Date.now() > deadline) throw new Error(`no ${what} on the event stream; got: ${JSON.stringify(sseText.slice(0, 2000))}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        };
        await waitSse(() => sseEvents().some((e) => e.type === 'hello'), 'hello');

        // Viewer: reads yes, changes no (403 with a code), and nothing changed.
        assert.equal((await call(viewer, '/v1/status')).status, 200);
        const listed = await call(viewer, '/v1/ops/firewall.list', { qube: 'work' });
        assert.equal(listed.status, 200, JSON.stringify(listed.body));
        const before = JSON.stringify(listed.body.value);
        const refused = await call(viewer, '/v1/ops/firewall.add', { qube: 'work', rule: 'action=accept dsthost=192.0.2.7' });
        assert.equal(refused.status, 403);
        assert.equal(code(refused), 'QNET6110');
        assert.equal(JSON.stringify((await call(viewer, '/v1/ops/firewall.list', { qube: 'work' })).body.value), before, "the viewer's change did not happen");
        assert.equal((await call(viewer, '/v1/ops/no.such.op', {})).status, 404);
        assert.equal((await call(viewer, '/v1/ops/firewall.list', { qube: 3 })).status, 400);

        // Editor: the change happens (the CLI, through the socket, sees it) and the viewer's stream says so.
        const added = await call(editor, '/v1/ops/firewall.add', { qube: 'work', rule: 'action=accept dsthost=192.0.2.7' });
        assert.equal(added.status, 200, JSON.stringify(added.body));
        assert.match(await s.ok('firewall work list'), /192\.0\.2\.7/);
        await waitSse(() => sseEvents().some((e) => e.type === 'changed' && e.op === 'firewall.add'), 'changed event');
        assert.deepEqual(sseEvents().find((e) => e.type === 'changed')!.effect, { kind: 'rules', qubes: ['work'] });
        await waitSse(() => sseText.includes(': keepalive\n\n'), 'keepalive comment');

        // Tokens: missing, wrong, the socket's own (another door's) — all 401.
        assert.equal((await call(undefined, '/v1/status')).status, 401);
        assert.equal(code(await call('0'.repeat(64), '/v1/status')), 'QNET6107');
        assert.equal((await call(editor.slice(1) + 'x', '/v1/ops/firewall.list', { qube: 'work' })).status, 401);

        // Host (DNS rebinding): only this listener's names, else 421 — even with a good token.
        const auth = { authorization: `Bearer ${editor}` };
        for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) assert.equal((await raw(port, { path: '/v1/status', headers: { ...auth, host } })).status, 200, host);
        for (const host of [`evil.example:${port}`, `127.0.0.1:${port + 1}`, 'localhost', `attacker.example`]) {
          const r = await raw(port, { path: '/v1/status', headers: { ...auth, host } });
          assert.equal(r.status, 421, host);
          assert.equal(code(r), 'QNET6111');
        }

        // Origin: a cross-site POST is refused before it runs; the page's own origin passes.
        const post = (origin: string) =>
          raw(port, { method: 'POST', path: '/v1/ops/firewall.add', headers: { ...auth, host: `127.0.0.1:${port}`, origin, 'content-type': 'application/json' }, body: JSON.stringify({ qube: 'work', rule: 'action=accept dsthost=192.0.2.8' }) });
        for (const origin of ['http://evil.example', `http://127.0.0.1:${port + 1}`, 'null', `https://127.0.0.1:${port}`]) {
          const r = await post(origin);
          assert.equal(r.status, 403, origin);
          assert.equal(code(r), 'QNET6112');
        }
        assert.doesNotMatch(await s.ok('firewall work list'), /192\.0\.2\.8/, 'no cross-origin change happened');
        assert.equal((await post(`http://localhost:${port}`)).status, 200);
        assert.match(await s.ok('firewall work list'), /192\.0\.2\.8/);

        // Bounded bodies: a declared length over the bound is refused unread; so is one that streams past it.
        const big = await raw(port, { method: 'POST', path: '/v1/ops/firewall.list', headers: { ...auth, 'content-length': MAX_BODY + 1 } });
        assert.equal(big.status, 413);
        assert.equal(code(big), 'QNET6105');
        // Chunked, no length: read up to the bound, then 413 and the connection closed (a client still
        // writing may see the close first, hence the errors also taken).
        const chunk = new Uint8Array(1 << 20);
        let pulled = 0;
        const body = new ReadableStream({ pull: (c) => (pulled++ * chunk.length > MAX_BODY + chunk.length ? c.close() : c.enqueue(chunk)) });
        const streamed = await fetch(base + '/v1/ops/firewall.list', { method: 'POST', headers: auth, body, duplex: 'half' } as RequestInit).then(
          (r) => String(r.status),
          (e: Error & { cause?: { code?: string } }) => `error:${e.cause?.code ?? e.message}`,
        );
        assert.ok(['413', 'error:EPIPE', 'error:ECONNRESET', 'error:UND_ERR_SOCKET'].includes(streamed), `an oversize streamed body is cut off: ${streamed}`);
        assert.equal((await call(viewer, '/v1/status')).status, 200, 'and the next request is served');

        // OpenAPI: a 3.1 document with every op as a POST path, its schema, kind and refusals.
        const doc = await call(viewer, '/v1/openapi.json');
        assert.equal(doc.status, 200);
        const d3 = doc.body as { openapi: string; paths: Record<string, { post?: Record<string, unknown> }>; components: { schemas: Record<string, unknown> } };
        assert.equal(d3.openapi, '3.1.0');
        const ops = await describeOps();
        for (const op of ops) {
          const p = d3.paths[`/v1/ops/${op.name}`]?.post as { operationId: string; 'x-qnet-kind': string; requestBody: { content: Record<string, { schema: unknown }> }; responses: Record<string, unknown> } | undefined;
          assert.ok(p, `${op.name} is in the document`);
          assert.equal(p.operationId, op.name);
          assert.equal(p['x-qnet-kind'], op.kind);
          assert.ok(p.requestBody.content['application/json']?.schema, `${op.name} has its input schema`);
          for (const st of ['200', '400', '401', '403', '404', '422']) assert.ok(p.responses[st], `${op.name} answers ${st}`);
        }
        assert.equal(Object.keys(d3.paths).filter((k) => k.startsWith('/v1/ops/')).length, ops.length);
        assert.ok(d3.components.schemas['Refusal']);

        // qnet manager: the URL with the token in its fragment (never sent to a server).
        assert.equal((await s.ok('manager')).trim(), `http://127.0.0.1:${port}/#token=${editor}`);
        assert.equal((await s.ok('manager --viewer')).trim(), `http://127.0.0.1:${port}/#token=${viewer}`);

        // Unreachable from every qube's namespace; reachable from the host's.
        const script = `const c = require('node:net').connect({ host: '127.0.0.1', port: ${port} });
          c.setTimeout(3000, () => { console.log('error:timeout'); c.destroy(); });
          c.on('connect', () => { console.log('connected'); c.destroy(); }); c.on('error', (e) => console.log('error:' + e.code));`;
        for (const q of ['work', 'sys-firewall', 'sys-net']) assert.match((await s.sh(q, [process.execPath, '-e', script])).stdout.trim(), /^error:/, `from ${q}`);
        assert.equal(spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 }).stdout.trim(), 'connected', 'the host namespace reaches it');

        ac.abort();
        await reading;

        // Stable across restarts: a new daemon serves the same tokens; manager refuses once it is gone.
        await d.stop();
        assert.equal((await s.q('manager')).code !== 0, true, 'no URL without a daemon serving HTTP');
        d = await newDaemon(s);
        assert.equal(await readHttpToken(s.dir, 'editor'), editor);
        assert.equal((await fetch(`http://127.0.0.1:${d.httpAddress!.port}/v1/status`, { headers: { authorization: `Bearer ${viewer}` } })).status, 200);
      } finally {
        await d.stop();
      }
    });
  });
}
