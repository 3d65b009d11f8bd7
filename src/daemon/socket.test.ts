// What /proc tells about the daemon's name, as any user: the listening socket is found under the
// name Node binds (NUL-padded), and a line forged through another socket's name makes the client
// refuse rather than believe it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient } from './client.js';
import { claimSocket, listeningInodes, newToken, publishDaemon, socketName, startTime } from './socket.js';
import { QnetError } from '../model/result.js';

async function listen(server: Server, name: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(name, () => resolve());
  });
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

/** A name whose /proc/net/unix line carries a second, made-up line claiming `name` on inode 99999. */
function forgery(name: string): string {
  return `\0x\n0000000000000000: 00000002 00000000 00010000 0001 01 99999 @${name.slice(1)}`;
}

test('listeningInodes finds the socket Node bound, and only listening ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-sock-'));
  const server = createServer();
  try {
    assert.deepEqual(await listeningInodes(socketName(dir)), []);
    await listen(server, socketName(dir));
    const found = await listeningInodes(socketName(dir));
    assert.equal(found.length, 1);
    assert.ok(found[0]! > 0);
    assert.deepEqual(await listeningInodes(socketName(dir + 'x')), [], 'another state dir, another name');
  } finally {
    await close(server);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('startTime reads field 22 of /proc/<pid>/stat; a missing process has none', async () => {
  const t = await startTime('self');
  assert.match(t ?? '', /^\d+$/);
  assert.equal(await startTime(process.pid), t);
  assert.equal(await startTime(2 ** 30), null);
});

test('a forged /proc/net/unix line makes the client refuse, never trust', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-sock-'));
  const name = socketName(dir);
  const forger = createServer();
  const real = createServer((_req, res) => res.end('{}'));
  try {
    await listen(forger, forgery(name));
    assert.deepEqual(await listeningInodes(name), [99999], 'the forged line is seen');
    await assert.rejects(DaemonClient.connect(dir), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET6005');
    // With the verified daemon there too, two sockets claim the name: refused all the same.
    await claimSocket(real, dir);
    await publishDaemon(dir, newToken());
    assert.equal((await listeningInodes(name)).length, 2);
    await assert.rejects(DaemonClient.connect(dir), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET6005' && /several sockets/.test(e.message));
    await close(forger);
    const c = await DaemonClient.connect(dir);
    assert.ok(c, 'the daemon alone is trusted again');
    assert.deepEqual(await c.request('GET', '/v1/status'), { status: 200, body: {} });
  } finally {
    await close(forger).catch(() => {});
    await close(real).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
