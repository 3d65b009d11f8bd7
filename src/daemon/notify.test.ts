import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolPath } from '../backend/netns/runner.js';
import { notifyReady, notifyReloading, notifyStatus, sdNotify, takeNotifySocket } from './notify.js';

// A stand-in service manager: an AF_UNIX datagram socket with SO_PASSCRED (node has none, python
// does). One JSON line per message, with the sender's PID; barrier fds are closed at once, as
// systemd does, so systemd-notify returns.
const RECEIVER = `
import socket, struct, sys, os, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"ready": True}), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    pid = None
    for lvl, typ, data in anc:
        if typ == socket.SCM_CREDENTIALS: pid = struct.unpack("iII", data[:12])[0]
        if typ == socket.SCM_RIGHTS:
            for i in range(0, len(data) - len(data) % 4, 4): os.close(struct.unpack("i", data[i:i+4])[0])
    print(json.dumps({"pid": pid, "msg": msg.decode()}), flush=True)
`;

const python = spawnSync('python3', ['-c', 'import socket; socket.SCM_CREDENTIALS'], { stdio: 'ignore' }).status === 0;
const notifyBin = spawnSync(toolPath('systemd-notify'), ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !python ? 'needs python3 (a datagram receiver)' : !notifyBin ? 'needs systemd-notify (apt-get install systemd)' : undefined;
if (skip) console.error(`# SKIP notify tests: ${skip}`);

async function withManager(fn: (env: NodeJS.ProcessEnv, messages: () => Promise<{ pid: number | null; msg: string }[]>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-notify-'));
  const path = join(dir, 'notify');
  const rx: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  const ready = new Promise<void>((resolve) =>
    rx.stdout!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) (l.includes('"ready"') ? resolve() : lines.push(l));
    }),
  );
  try {
    await ready;
    const messages = async () => {
      await new Promise((r) => setTimeout(r, 50));
      return lines.splice(0).map((l) => JSON.parse(l) as { pid: number | null; msg: string }).filter((m) => !m.msg.startsWith('BARRIER='));
    };
    await fn({ NOTIFY_SOCKET: path }, messages);
  } finally {
    rx.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('notify: READY=1 reaches the manager, sent as this process when root', { skip: skip ?? false }, async () => {
  await withManager(async (env, messages) => {
    await notifyReady('serving 3 qubes', { env });
    const got = await messages();
    assert.deepEqual(got.map((m) => m.msg), ['READY=1\nSTATUS=serving 3 qubes']);
    // Root may send with its parent's PID: then NotifyAccess=main would do too.
    if (process.getuid?.() === 0) assert.equal(got[0]!.pid, process.pid);
  });
});

test('notify: reloading carries MONOTONIC_USEC; a status cannot smuggle a field', { skip: skip ?? false }, async () => {
  await withManager(async (env, messages) => {
    const before = process.hrtime.bigint() / 1000n;
    await notifyReloading({ env });
    await notifyStatus('qube a\nREADY=1', { env });
    const got = (await messages()).map((m) => m.msg);
    assert.equal(got.length, 2);
    const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(got[0]!);
    assert.ok(m, got[0]);
    assert.ok(BigInt(m[1]!) >= before && BigInt(m[1]!) <= process.hrtime.bigint() / 1000n, 'CLOCK_MONOTONIC in µs');
    assert.equal(got[1], 'STATUS=qube a READY=1');
  });
});

test('notify: nothing to do without NOTIFY_SOCKET; a bad address or field is refused', async () => {
  await notifyReady('x', { env: {} });
  await assert.rejects(notifyReady('x', { env: { NOTIFY_SOCKET: 'relative/path' } }), /not a socket address/);
  await assert.rejects(sdNotify({ 'A\nB': '1' }, { env: { NOTIFY_SOCKET: '/x' } }), /not a variable name/);
});

test('takeNotifySocket: read once, then gone from the environment children inherit', () => {
  const orig = process.env['NOTIFY_SOCKET'];
  process.env['NOTIFY_SOCKET'] = '/run/systemd/notify-test';
  try {
    assert.equal(takeNotifySocket(), '/run/systemd/notify-test');
    assert.equal(process.env['NOTIFY_SOCKET'], undefined);
    assert.equal(takeNotifySocket(), '/run/systemd/notify-test');
  } finally {
    if (orig === undefined) delete process.env['NOTIFY_SOCKET'];
    else process.env['NOTIFY_SOCKET'] = orig;
  }
});
