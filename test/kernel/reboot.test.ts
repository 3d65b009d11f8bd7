// A reboot or crash, in real namespaces: the namespaces go (ip netns del behind qnet's back, the
// world's processes stopped by PID, no daemon) while qubes.json still says Running and /etc/netns
// keeps qnet's directories. Then `ls` must say Halted, `start` must work, stale /etc/netns entries
// of qnet's prefix must go (and nothing else), and a daemon must start the autostart qubes before it
// is ready. Also the runtime trap: a state directory first used without root moves to namespaces
// when used as root, while a simulator that was asked for stays, with a warning saying how to leave.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteNamespaces, kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { destroyWorld } from '../../src/backend/netns/world.js';
import { Daemon } from '../../src/daemon/server.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { runDir } from '../../src/store/paths.js';

const WEB = '203.0.113.10';
const ECHO_PORT = 7000;

/** What the kernel has under this system's prefix, as qube names. */
function namespaces(s: LiveSystem): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(s.prefix))
    .map((n) => n.slice(s.prefix.length))
    .sort();
}

/** A reboot as qnet sees it: every namespace of ours gone, the world's services stopped, no daemon. */
async function reboot(s: LiveSystem): Promise<void> {
  await destroyWorld(s.runner, s.ns('world'), { stateDir: runDir(s.dir) });
  deleteNamespaces(s.prefix);
  assert.deepEqual(namespaces(s), [], 'no namespace of ours is left');
}

const states = async (s: LiveSystem): Promise<Record<string, string>> =>
  Object.fromEntries((JSON.parse(await s.ok('ls --json')) as { name: string; state: string }[]).map((q) => [q.name, q.state]));

const fileStates = (s: LiveSystem): Record<string, string> =>
  Object.fromEntries((JSON.parse(readFileSync(join(s.dir, 'qubes.json'), 'utf8')) as { qubes: { name: string; state: string }[] }).qubes.map((q) => [q.name, q.state]));

/** Whether work reaches an echo server in the world with real packets. */
async function reaches(s: LiveSystem): Promise<string> {
  const server = await s.echoServer('world', WEB, ECHO_PORT);
  try {
    return (await s.tcpProbe('work', WEB, ECHO_PORT)).result;
  } finally {
    await server.stop();
  }
}

const why = kernelUnavailable();
if (why) test('kernel reboot and runtime', { skip: why }, () => {});
else {
  test('after a reboot ls says Halted, start works, and stale /etc/netns entries of ours go', async () => {
    await withLiveSystem('qrb', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      assert.equal(await reaches(s), 'ok');
      const etc = (n: string) => join('/etc/netns', s.ns(n));
      assert.ok(existsSync(join(etc('work'), 'resolv.conf')), 'start wrote work its resolv.conf');
      await reboot(s);
      // What a reboot leaves on disk, plus entries that are not qnet's to remove.
      mkdirSync(etc('personal'));
      writeFileSync(join(etc('personal'), 'resolv.conf'), 'nameserver 10.139.1.1\n');
      mkdirSync(etc('vault'));
      writeFileSync(join(etc('vault'), 'hosts'), 'someone else put this here\n');
      const foreign = join('/etc/netns', `x${s.prefix}work`);
      mkdirSync(foreign);
      writeFileSync(join(foreign, 'resolv.conf'), 'nameserver 192.0.2.1\n');
      try {
        // Offline, no daemon: the read shows what exists, and does not write (the next change does).
        const st = await states(s);
        assert.deepEqual([st['sys-net'], st['sys-firewall'], st['work'], st['personal']], ['Halted', 'Halted', 'Halted', 'Halted']);
        assert.equal(fileStates(s)['work'], 'Running', 'a read never rewrites qubes.json');
        assert.match(await s.ok('ls work'), /^work\s+Halted/m);
        await assert.rejects(s.ok('counters work'), /not running/);

        await s.ok('start work');
        assert.deepEqual(namespaces(s), ['sys-firewall', 'sys-net', 'work', 'world']);
        assert.equal(await reaches(s), 'ok');
        const after = fileStates(s);
        assert.deepEqual([after['sys-net'], after['sys-firewall'], after['work'], after['personal']], ['Running', 'Running', 'Running', 'Halted']);
        assert.ok(existsSync(join(etc('work'), 'resolv.conf')), 'work has its resolv.conf again');
        assert.ok(!existsSync(etc('personal')), "a stale directory of ours is removed");
        assert.ok(existsSync(join(etc('vault'), 'hosts')), 'a directory holding more than qnet writes is kept');
        assert.ok(existsSync(foreign), 'another prefix is never touched');
      } finally {
        rmSync(foreign, { recursive: true, force: true });
      }
    });
  });

  test('a daemon started after a reboot starts the autostart qubes with their netvm chains before it is ready', async () => {
    await withLiveSystem('qra', async (s) => {
      await s.ok('init');
      assert.match(await s.ok('prefs work'), /^autostart\s+D\s+False$/m);
      await s.ok('prefs work autostart True');
      assert.match(await s.ok('prefs work autostart'), /^True$/m);
      await s.ok('start personal');
      await reboot(s);
      const log: string[] = [];
      const d = new Daemon({ stateDir: s.dir, runtime: await runtimeFor(s.dir, s.env), sysctls: NO_ICMP_RATELIMIT, log: (l) => void log.push(l) });
      try {
        await d.start(); // resolves when the daemon would report ready
        assert.deepEqual(namespaces(s), ['sys-firewall', 'sys-net', 'work', 'world'], 'work and its chain run; personal (not autostart) does not');
        assert.ok(log.some((l) => /"type":"died".*personal/.test(l)), 'personal was noticed dead');
        const st = await states(s); // through the daemon
        assert.deepEqual([st['work'], st['sys-firewall'], st['sys-net'], st['personal']], ['Running', 'Running', 'Running', 'Halted']);
        assert.equal(fileStates(s)['work'], 'Running', 'the daemon recorded the start');
        assert.equal(await reaches(s), 'ok');
      } finally {
        await d.stop();
      }
    });
  });

  test('a state directory first used without root moves to namespaces when started as root', async () => {
    const bin = fileURLToPath(new URL('../../../bin/qnet.js', import.meta.url));
    await withLiveSystem('qrt', async (s) => {
      // The directory nobody made: the simulator, chosen because there was no root.
      const parent = mkdtempSync(join(tmpdir(), 'qnet-nobody-'));
      chmodSync(parent, 0o777);
      const dir = join(parent, 'state');
      const asNobody = (args: string[]) =>
        spawnSync('runuser', ['-u', 'nobody', '--', 'env', `QNET_NETNS_PREFIX=${s.prefix}`, process.execPath, bin, '--state', dir, ...args], { encoding: 'utf8', timeout: 30_000 });
      try {
        for (const args of [['init'], ['start', 'work']]) {
          const r = asNobody(args);
          assert.equal(r.status, 0, `as nobody: qnet ${args.join(' ')}: ${r.stderr}`);
        }
        assert.equal(JSON.parse(readFileSync(join(dir, 'runtime.json'), 'utf8')).backend, 'sim');
        // Now as root, on that directory.
        rmSync(s.dir, { recursive: true, force: true });
        cpState(dir, s.dir);
        const r = await s.q('start personal');
        assert.equal(r.code, 0, r.err);
        assert.match(r.err, /now runs qubes in network namespaces .*creating namespaces needs root.*\(QNET5105\)/);
        assert.deepEqual(JSON.parse(readFileSync(join(s.dir, 'runtime.json'), 'utf8')), { backend: 'netns', prefix: s.prefix });
        assert.deepEqual(namespaces(s), ['personal', 'sys-firewall', 'sys-net', 'world']);
        const st = await states(s);
        assert.equal(st['personal'], 'Running');
        assert.equal(st['work'], 'Halted', 'work ran only on the simulator');
        const run = spawnSync(process.execPath, [bin, '--state', s.dir, 'run', 'personal', '--', 'true'], { env: { ...process.env, ...s.env }, encoding: 'utf8', timeout: 30_000 });
        assert.equal(run.status, 0, `qnet run as root: ${run.stderr}`);
      } finally {
        rmSync(parent, { recursive: true, force: true });
      }
    });
  });

  test('a simulator that was asked for stays, and start says how to switch', async () => {
    await withLiveSystem('qrs', async (s) => {
      await s.ok('init');
      writeFileSync(join(s.dir, 'runtime.json'), JSON.stringify({ backend: 'sim', prefix: s.prefix }) + '\n');
      const r = await s.q('start work');
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /run on the simulator .*\(QNET5106\)/);
      assert.ok(r.err.includes(`rm ${join(s.dir, 'runtime.json')}`), r.err);
      assert.deepEqual(namespaces(s), [], 'nothing was created in the kernel');
      assert.equal(JSON.parse(readFileSync(join(s.dir, 'runtime.json'), 'utf8')).backend, 'sim');
    });
  });
}

/** Copy a flat-ish state directory (qubes.json, runtime.json, appvms/…) as root. */
function cpState(from: string, to: string): void {
  const r = spawnSync('cp', ['-a', from, to]);
  assert.equal(r.status, 0, `cp -a ${from} ${to}`);
}
