// Trust between the CLI and the daemon, with real processes: an impostor run as another user
// (`runuser -u nobody`) binds the daemon's abstract name first, and the client must refuse it
// without ever connecting (the impostor logs every connection and request it gets); a stale or
// lying pid file is not believed; the verified daemon gets the token; a daemon that dies mid-request
// gives QNET6006. Needs root (the daemon's run files are root's) and runuser.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DaemonClient } from '../../src/daemon/client.js';
import { Daemon } from '../../src/daemon/server.js';
import { claimSocket, listeningInodes, newToken, pidPath, publishDaemon, socketName, startTime, tokenPath, withdrawDaemon } from '../../src/daemon/socket.js';
import { runtimeFor } from '../../src/engine/wiring.js';
import { QnetError } from '../../src/model/result.js';
import { runDir } from '../../src/store/paths.js';

const NOBODY = 'nobody';

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root: the daemon\'s run files are root\'s, and the impostor runs as another user';
  if (spawnSync('sh', ['-c', 'command -v runuser']).status !== 0) return 'needs runuser (util-linux) to run the impostor as nobody';
  const r = spawnSync('runuser', ['-u', NOBODY, '--', process.execPath, '-e', 'process.stdout.write(String(process.getuid()))'], { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout === '0') return `runuser -u ${NOBODY} does not run node as another user: ${r.stderr.trim()}`;
  return null;
}

// The impostor: an HTTP server on the daemon's name that answers like a daemon and logs everything.
// The name travels without its leading NUL (argv cannot hold one).
const IMPOSTOR = `
const http = require('node:http'), fs = require('node:fs');
const [name, log] = process.argv.slice(2);
const note = (x) => fs.appendFileSync(log, JSON.stringify(x) + '\\n');
const srv = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    note({ request: req.method + ' ' + req.url, authorization: req.headers.authorization, body });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"value":"pwned"}\\n');
  });
});
srv.on('connection', () => note({ connection: true }));
srv.on('error', (e) => { console.log('error:' + e.code); process.exit(1); });
srv.listen('\\0' + name, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
`;

/** Per-test scratch: a root-only state dir and a dir the impostor (nobody) may use. */
interface Scratch {
  dir: string;
  shared: string;
  cleanups: (() => Promise<void> | void)[];
}

async function withScratch(fn: (s: Scratch) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'qnet-trust-'));
  const s: Scratch = { dir: join(root, 'state'), shared: join(root, 'shared'), cleanups: [] };
  await mkdir(s.dir, { mode: 0o700 });
  await mkdir(s.shared);
  chmodSync(root, 0o755);
  chownSync(s.shared, Number(spawnSync('id', ['-u', NOBODY], { encoding: 'utf8' }).stdout.trim()), 0);
  try {
    await fn(s);
  } finally {
    for (const c of s.cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

/** Wait (bounded) until `pred`, polling. */
async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kill one process we started, by its pid, and wait for it to be gone. */
async function killPid(pid: number | undefined): Promise<void> {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  await until(`pid ${pid} to exit`, () => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 3000).catch(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
}

interface Impostor {
  log: string;
  /** What the impostor saw besides starting. */
  seen(): unknown[];
}

/** Start the impostor as nobody on the name for `s.dir`; it is killed (runuser and node, by pid) at cleanup. */
async function impostor(s: Scratch): Promise<Impostor> {
  const script = join(s.shared, 'impostor.cjs');
  writeFileSync(script, IMPOSTOR, { mode: 0o644 });
  const log = join(s.shared, 'impostor.log');
  writeFileSync(log, '');
  chownSync(log, Number(spawnSync('id', ['-u', NOBODY], { encoding: 'utf8' }).stdout.trim()), 0);
  const child: ChildProcess = spawn('runuser', ['-u', NOBODY, '--', process.execPath, script, socketName(s.dir).slice(1), log], { stdio: ['ignore', 'pipe', 'pipe'] });
  // runuser forks: the node process is its child. Both are ours to stop.
  s.cleanups.push(async () => {
    const kids = existsSync(`/proc/${child.pid}/task/${child.pid}/children`) ? readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
    for (const k of kids) await killPid(k);
    await killPid(child.pid);
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  await until('the impostor to listen', () => out.includes('ready') || out.includes('error') || child.exitCode !== null);
  assert.ok(out.includes('ready'), `impostor: ${out}`);
  return { log, seen: () => readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown) };
}

/** A root HTTP server in this process on the name for `dir`, logging what it gets; closed at cleanup. */
async function rootServer(s: Scratch, handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ server: Server; got: { url: string; authorization?: string; body: string }[] }> {
  const got: { url: string; authorization?: string; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ url: `${req.method} ${req.url}`, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), body });
      if (handler) return handler(req, res, body);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: { echo: body ? (JSON.parse(body) as unknown) : null } }) + '\n');
    });
  });
  await claimSocket(server, s.dir);
  s.cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { server, got };
}

async function refusal(p: Promise<unknown>, code: string | RegExp): Promise<QnetError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof QnetError, `a QnetError, not ${String(e)}`);
    assert.match(e.diag.code, typeof code === 'string' ? new RegExp(`^${code}$`) : code, e.message);
    return e;
  }
  assert.fail(`expected a refusal with ${code}`);
}

/** A pid no process has: a child that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

const why = unavailable();
if (why) test('daemon trust', { skip: why }, () => {});
else {
  test('an impostor that bound the name first is refused and never even sees a connection', async () => {
    await withScratch(async (s) => {
      const imp = await impostor(s);
      const e = await refusal(DaemonClient.connect(s.dir), 'QNET6005');
      assert.match(e.message, /something else holds qnet's daemon socket/);
      assert.match(e.message, /uid 65534/);
      assert.match(e.message, /not sending the token/);
      assert.deepEqual(imp.seen(), []);
    });
  });

  test('a pid file naming a live root process that does not hold the socket is refused', async () => {
    await withScratch(async (s) => {
      const imp = await impostor(s);
      // The test process itself: alive, root, the right start time, but the impostor holds the name.
      await publishDaemon(s.dir, newToken());
      assert.equal(readFileSync(pidPath(runDir(s.dir)), 'utf8'), `${process.pid} ${await startTime('self')}\n`);
      const e = await refusal(DaemonClient.connect(s.dir), 'QNET6005');
      assert.match(e.message, new RegExp(`pid file names pid ${process.pid}, which does not hold the socket`));
      assert.deepEqual(imp.seen(), []);
    });
  });

  test('a stale pid file: no daemon when nothing listens, a refusal when something does', async () => {
    await withScratch(async (s) => {
      await publishDaemon(s.dir, newToken());
      writeFileSync(pidPath(runDir(s.dir)), `${deadPid()} 12345\n`, { mode: 0o600 });
      assert.equal(await DaemonClient.connect(s.dir), null, 'nothing listens: offline');
      const imp = await impostor(s);
      const e = await refusal(DaemonClient.connect(s.dir), 'QNET6005');
      assert.match(e.message, /which is gone \(stale\)/);
      assert.deepEqual(imp.seen(), []);
    });
  });

  test('a reused pid (the right process, the wrong start time) is not believed', async () => {
    await withScratch(async (s) => {
      const { got } = await rootServer(s);
      await publishDaemon(s.dir, newToken());
      const [pid, start] = readFileSync(pidPath(runDir(s.dir)), 'utf8').trim().split(' ');
      writeFileSync(pidPath(runDir(s.dir)), `${pid} ${Number(start) + 1}\n`, { mode: 0o600 });
      // A root process holds the name: it is taken for a daemon that is starting, and still gets nothing.
      await refusal(DaemonClient.connect(s.dir), 'QNET6011');
      assert.deepEqual(got, []);
    });
  });

  test('a pid file or token that others may write is not believed', async () => {
    await withScratch(async (s) => {
      const { got } = await rootServer(s);
      await publishDaemon(s.dir, newToken());
      chmodSync(pidPath(runDir(s.dir)), 0o666);
      await refusal(DaemonClient.connect(s.dir), 'QNET6005');
      chmodSync(pidPath(runDir(s.dir)), 0o600);
      chmodSync(tokenPath(runDir(s.dir)), 0o644);
      await refusal(DaemonClient.connect(s.dir), 'QNET6005');
      assert.deepEqual(got, []);
    });
  });

  test('the verified daemon gets the token and the request; replies are parsed; files go at withdraw', async () => {
    await withScratch(async (s) => {
      const { server, got } = await rootServer(s);
      const token = newToken();
      await publishDaemon(s.dir, token);
      assert.equal(statSync(runDir(s.dir)).mode & 0o777, 0o700, 'the run dir is root-only');
      const c = await DaemonClient.connect(s.dir);
      assert.ok(c);
      assert.equal(c.pid, process.pid);
      assert.deepEqual(await c.request('POST', '/v1/ops/x', { a: [1, 'b'] }), { status: 200, body: { value: { echo: { a: [1, 'b'] } } } });
      assert.deepEqual(got, [{ url: 'POST /v1/ops/x', authorization: `Bearer ${token}`, body: '{"a":[1,"b"]}' }]);
      assert.deepEqual(await c.request('HEAD', '/v1/ping'), { status: 200, body: null });
      await withdrawDaemon(s.dir, token);
      assert.ok(!existsSync(pidPath(runDir(s.dir))) && !existsSync(tokenPath(runDir(s.dir))));
      await new Promise<void>((r) => server.close(() => r()));
      assert.equal(await DaemonClient.connect(s.dir), null);
    });
  });

  test('a daemon replaced by an impostor between two requests: the next request is refused', async () => {
    await withScratch(async (s) => {
      const { server, got } = await rootServer(s);
      await publishDaemon(s.dir, newToken());
      const c = (await DaemonClient.connect(s.dir))!;
      assert.equal((await c.request('GET', '/v1/status')).status, 200);
      await new Promise<void>((r) => server.close(() => r()));
      await refusal(c.request('GET', '/v1/status'), 'QNET6006');
      const imp = await impostor(s);
      await refusal(c.request('POST', '/v1/ops/firewall.add', { qube: 'work' }), 'QNET6005');
      assert.equal(got.length, 1);
      assert.deepEqual(imp.seen(), []);
    });
  });

  test('a connection closed mid-request is QNET6006, a slow reply past timeoutMs QNET6007, garbage QNET6008', async () => {
    await withScratch(async (s) => {
      await rootServer(s, (req, res) => {
        if (req.url === '/drop') return req.socket.destroy();
        if (req.url === '/half') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
          res.write('{"value":');
          return setTimeout(() => req.socket.destroy(), 20);
        }
        if (req.url === '/slow') return setTimeout(() => res.end('{}'), 2000);
        res.writeHead(200).end('not json');
      });
      await publishDaemon(s.dir, newToken());
      const c = (await DaemonClient.connect(s.dir))!;
      const e = await refusal(c.request('POST', '/drop', {}), 'QNET6006');
      assert.match(e.message, /the qnet daemon for .* went away during the request/);
      await refusal(c.request('GET', '/half'), 'QNET6006');
      await refusal(c.request('GET', '/slow', undefined, { timeoutMs: 100 }), 'QNET6007');
      await refusal(c.request('GET', '/garbage'), 'QNET6008');
    });
  });

  test('events: lines until the signal aborts', async () => {
    await withScratch(async (s) => {
      const server = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"type":"hello"}\n{"type":');
        setTimeout(() => res.write('"applied"}\n'), 20);
      });
      await claimSocket(server, s.dir);
      s.cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
      await publishDaemon(s.dir, newToken());
      const c = (await DaemonClient.connect(s.dir))!;
      const lines: string[] = [];
      const ac = new AbortController();
      const done = c.events((l) => lines.push(l), ac.signal);
      await until('two events', () => lines.length === 2);
      ac.abort();
      await done;
      assert.deepEqual(lines, ['{"type":"hello"}', '{"type":"applied"}']);
    });
  });

  test('a user who may not read the run files gets QNET6001, and the daemon gets nothing', async () => {
    await withScratch(async (s) => {
      const { got } = await rootServer(s);
      await publishDaemon(s.dir, newToken());
      // The compiled client, run as nobody: the state dir is root's (0700).
      const url = pathToFileURL(join(import.meta.dirname, '../../src/daemon/client.js')).href;
      const script = `import(${JSON.stringify(url)}).then((m) => m.DaemonClient.connect(${JSON.stringify(s.dir)})).then((c) => console.log('client:' + !!c), (e) => console.log(e.diag?.code + ' ' + e.message));`;
      const r = spawnSync('runuser', ['-u', NOBODY, '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
      assert.match(r.stdout, /^QNET6001 a qnet daemon serves .*, and talking to it needs root \(EACCES\)/, r.stdout + r.stderr);
      assert.deepEqual(got, []);
    });
  });

  test('the Daemon: a second one refuses to start, an impostor stops it, stop removes its files', async () => {
    await withScratch(async (s) => {
      const runtime = await runtimeFor(s.dir, {}, { backend: 'sim' });
      const d = new Daemon({ stateDir: s.dir, runtime });
      s.cleanups.push(() => d.stop());
      await d.start();
      const c = (await DaemonClient.connect(s.dir))!;
      const st = await c.request('GET', '/v1/status');
      assert.equal(st.status, 200);
      assert.equal((st.body as { pid: number }).pid, process.pid);

      const second = new Daemon({ stateDir: s.dir, runtime });
      await refusal(second.start(), 'QNET6003');
      await second.stop();
      assert.equal((await c.request('GET', '/v1/status')).status, 200, 'the first one still serves, its files intact');

      await d.stop();
      assert.ok(!existsSync(pidPath(runDir(s.dir))), 'no pid file after stop');
      assert.ok(!existsSync(tokenPath(runDir(s.dir))), 'no token after stop');
      assert.equal(await DaemonClient.connect(s.dir), null);
      assert.deepEqual(await listeningInodes(socketName(s.dir)), []);

      const imp = await impostor(s);
      const third = new Daemon({ stateDir: s.dir, runtime });
      const e = await refusal(third.start(), 'QNET6009');
      assert.match(e.message, /another process holds qnet's daemon socket for .* \(pid \d+, uid 65534\): not starting/);
      await third.stop();
      assert.deepEqual(imp.seen(), []);
    });
  });
}
