// The drop log with real packets: a rule of work refuses UDP to 192.0.2.x; the daemon's reader in
// sys-firewall's namespace gets the kernel's NFLOG record, and `qnet log` names the qube, the rule
// (number and text), the destination and the port. A flood is bounded by the kernel's limit; the
// readers stop with their netvm and with the daemon; offline there is no log, said so.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { kernelUnavailable } from './ns.js';
import { alive, until, withLiveSystem, type LiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { DROP_LOG, type DropEntry, type DropGroup } from '../../src/model/drop-log.js';

const PORT = 9999;

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return ''; // ended meanwhile
  }
};

async function log(s: LiveSystem, args = ''): Promise<{ entries: DropEntry[]; groups: DropGroup[] }> {
  return JSON.parse(await s.ok(`log --json ${args}`)) as { entries: DropEntry[]; groups: DropGroup[] };
}

const why = kernelUnavailable() ?? (existsSync('/usr/bin/tcpdump') ? null : 'no tcpdump (apt-get install tcpdump; scripts/quickstart installs it)');
if (why) test('kernel drop log', { skip: why }, () => {});
else {
  test('drop log: a refused packet names qube, rule, destination and port; a flood stays bounded; readers end with their netvm', async () => {
    await withLiveSystem('qg', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      await s.setRules('work', ['action=accept proto=tcp', `action=drop dst4=192.0.2.0/24 proto=udp dstports=${PORT}-${PORT}`, 'action=accept']);

      // Offline: nobody reads the kernel, and the CLI says so.
      const off = await s.q('log');
      assert.notEqual(off.code, 0);
      assert.match(off.err, /the drop log needs the daemon.*QNET6120/);

      const d = new Daemon({ stateDir: s.dir, runtime: await runtimeFor(s.dir, s.env), sysctls: NO_ICMP_RATELIMIT, watchIntervalMs: 500 });
      await d.start();
      let pids: (number | undefined)[] = [];
      try {
        const readers = d.dropReaders;
        assert.deepEqual([...readers.keys()].sort(), ['sys-firewall', 'sys-net'], 'one reader per running netvm');
        pids = [...readers.values()];
        assert.ok(pids.every(alive), 'the readers run');
        // tcpdump binds its group a moment after it starts: send until the first drop is logged.
        assert.ok(
          await until(async () => {
            await s.sendUdp('work', '192.0.2.7', PORT);
            return (await log(s)).entries.some((e) => e.dst === '192.0.2.7');
          }, 8000, 300),
          'a refused packet appears in the log',
        );
        const e = (await log(s)).entries.find((x) => x.dst === '192.0.2.7')!;
        assert.equal(e.qube, 'work');
        assert.equal(e.hop, 'sys-firewall');
        assert.equal(e.rule, 1);
        assert.equal(e.ruleText, `action=drop dst4=192.0.2.0/24 proto=udp dstports=${PORT}-${PORT}`);
        assert.equal(e.decidedBy, 'work rule 1');
        assert.equal(e.proto, 'udp');
        assert.equal(e.dport, PORT);
        assert.match(e.src, /^10\.137\.0\.\d+$/);
        // An accepted flow is not logged; another qube's filter: only work's entries.
        assert.deepEqual((await log(s, '--qube sys-firewall')).entries, []);

        // A flood: 400 datagrams at once; the kernel logs at most burst + rate × time of them.
        const { value: before } = { value: (await s.counters('work')).find((r) => r.rule === 'work rule 1')!.packets };
        const t0 = Date.now();
        await s.sendUdp('work', '192.0.2.8', PORT, 400);
        const secs = (Date.now() - t0) / 1000;
        // The kernel batches NFLOG messages for up to a second: wait for them, then for stragglers.
        assert.ok(await until(async () => (await log(s)).entries.some((x) => x.dst === '192.0.2.8'), 5000, 100), 'the flood is logged');
        await new Promise((r) => setTimeout(r, 1500));
        const flood = (await log(s)).entries.filter((x) => x.dst === '192.0.2.8');
        const after = (await s.counters('work')).find((r) => r.rule === 'work rule 1')!.packets;
        assert.equal(after - before, 400, 'every datagram was refused by rule 1');
        // Sending took `secs`; the limit refills at `rate` a second on top of its burst.
        const bound = DROP_LOG.burst + Math.ceil(DROP_LOG.rate * secs) + 1;
        assert.ok(flood.length <= bound, `at most ${bound} of 400 logged, got ${flood.length}`);
        const g = (await log(s)).groups.find((x) => x.dst === '192.0.2.8')!;
        assert.equal(g.count, flood.length, 'grouped by qube, destination and port');
        assert.equal(g.qube, 'work');
        assert.equal(g.dport, PORT);

        // The human form names the same.
        assert.match(await s.ok('log'), /work\s+192\.0\.2\.8\s+udp\s+9999\s+work rule 1/);

        // --follow: each new drop as it happens (ended as SIGINT would, by calling the listener it added).
        const others = new Set(process.listeners('SIGINT'));
        const following = s.q('log --follow --json --qube work');
        const mine = async () => process.listeners('SIGINT').find((l) => !others.has(l));
        assert.ok(await until(async () => (await mine()) !== undefined, 5000, 20), 'log --follow is following');
        for (let i = 0; i < 6; i++) {
          await new Promise((r) => setTimeout(r, 500));
          await s.sendUdp('work', '192.0.2.9', PORT);
        }
        await new Promise((r) => setTimeout(r, 1500)); // NFLOG's batching, the event's way
        (await mine())!('SIGINT');
        const followed = await following;
        assert.equal(followed.code, 0, followed.err);
        const lines = followed.out.trim().split('\n').map((l) => JSON.parse(l) as DropEntry);
        assert.ok(lines.some((x) => x.dst === '192.0.2.9' && x.qube === 'work' && x.rule === 1), followed.out);

        // sys-firewall stops: its reader goes with it (it would hold the namespace), sys-net's stays.
        await s.ok('shutdown work sys-firewall');
        assert.ok(await until(async () => !alive(readers.get('sys-firewall')), 3000, 50), "sys-firewall's reader is gone");
        assert.deepEqual([...d.dropReaders.keys()], ['sys-net']);
        assert.ok(alive(readers.get('sys-net')));
        // Back with its netvm.
        await s.ok('start work');
        assert.deepEqual([...d.dropReaders.keys()].sort(), ['sys-firewall', 'sys-net']);
        pids = [...d.dropReaders.values()];
      } finally {
        await d.stop();
      }
      assert.ok(pids.length && pids.every((p) => !alive(p)), 'no reader outlives the daemon');
    });
  });

  test('a daemon killed with SIGKILL takes its readers (they keep its parent-death signal) and its resolver (its stdin ends) with it', async () => {
    await withLiveSystem('qdk', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const bin = new URL('../../../bin/qnet.js', import.meta.url).pathname;
      const daemon = spawn(process.execPath, [bin, '--state', s.dir, 'daemon'], { env: { ...process.env, ...s.env }, stdio: 'ignore' });
      try {
        const inQube = async (qube: string, what: RegExp) =>
          (await s.runner.run(['ip', 'netns', 'pids', s.ns(qube)], { timeoutMs: 5000 })).stdout
            .split('\n')
            .filter(Boolean)
            .map(Number)
            .filter((pid) => what.test(cmdline(pid)));
        let pids: number[] = [];
        assert.ok(await until(async () => (pids = await inQube('sys-firewall', /tcpdump/)).length === 1, 20_000, 200), 'the daemon started a reader in sys-firewall');
        let resolvers: number[] = [];
        assert.ok(await until(async () => (resolvers = await inQube('sys-net', /resolve-main/)).length === 1, 20_000, 200), 'and a resolver in sys-net');
        daemon.kill('SIGKILL');
        assert.ok(await until(async () => pids.every((p) => !alive(p)), 5000, 100), `reader ${pids.join(' ')} ended with the daemon`);
        assert.ok(await until(async () => resolvers.every((p) => !alive(p)), 5000, 100), `resolver ${resolvers.join(' ')} ended with the daemon`);
      } finally {
        if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      }
    });
  });
}
