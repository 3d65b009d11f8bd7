// The daemon with real packets: it adopts running namespaces without interrupting traffic, serves
// the CLI and an event stream, is unreachable from inside qubes, notices a netvm that died, and runs
// the timers (rule expiry, DNS refresh by TTL) whose changes must reach the kernel. Each test runs an
// in-process Daemon on a live system (withLiveSystem) and stops it before the system is removed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernelUnavailable } from './ns.js';
import { alive, until, withLiveSystem, type LiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { DaemonClient } from '../../src/daemon/client.js';
import { socketName } from '../../src/daemon/socket.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { DEFAULT_ZONE } from '../../src/backend/netns/dns-server.js';

const WEB = '203.0.113.10';
const OTHER = '203.0.113.20';
const ECHO_PORT = 7000;
const prefixes: string[] = [];

interface Ev {
  type: string;
  [k: string]: unknown;
}

/** The daemon's event stream, collected; waitFor polls it (bounded). */
class Events {
  readonly all: Ev[] = [];
  private readonly abort = new AbortController();
  private done?: Promise<void>;

  async attach(dir: string): Promise<void> {
    const c = await DaemonClient.connect(dir);
    assert.ok(c, 'the daemon answers');
    this.done = c.events((l) => this.all.push(JSON.parse(l) as Ev), this.abort.signal).catch(() => {});
    await this.waitFor((e) => e.type === 'hello', 3000);
  }

  async waitFor(pred: (e: Ev) => boolean, timeoutMs: number, from = 0): Promise<Ev> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.all.slice(from).find(pred);
      if (e) return e;
      if (Date.now() > deadline) throw new Error(`no such event within ${timeoutMs} ms; saw: ${this.all.map((x) => x.type).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/** Attach to the daemon's event stream for `fn`, and always detach. */
async function withEvents<T>(s: LiveSystem, fn: (ev: Events) => Promise<T>): Promise<T> {
  const ev = new Events();
  await ev.attach(s.dir);
  try {
    return await fn(ev);
  } finally {
    await ev.close();
  }
}

/**
 * An in-process daemon for the live system. The watch ticks every 500 ms, more often than the DNS
 * refresh's 1 s floor: before server.ts kept pending wake-ups, every tick restarted that timer and
 * the refresh never came (the DNS test below failed that way).
 */
async function newDaemon(s: LiveSystem, log?: string[]): Promise<Daemon> {
  const d = new Daemon({
    stateDir: s.dir,
    runtime: await runtimeFor(s.dir, s.env),
    sysctls: NO_ICMP_RATELIMIT,
    watchIntervalMs: 500,
    ...(log ? { log: (l: string) => void log.push(l) } : {}),
  });
  await d.start();
  return d;
}

/** A live system with a daemon (started by `fn` when it likes); the daemon is stopped before cleanup. */
function live<T>(tag: string, fn: (s: LiveSystem, daemons: Daemon[]) => Promise<T>): Promise<T> {
  return withLiveSystem(tag, async (s) => {
    prefixes.push(s.prefix);
    const daemons: Daemon[] = [];
    try {
      return await fn(s, daemons);
    } finally {
      for (const d of daemons) await d.stop();
    }
  });
}

const why = kernelUnavailable();
if (why) test('kernel daemon', { skip: why }, () => {});
else {
  test('the daemon adopts running namespaces without interrupting traffic', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      await s.ok('start work');
      await s.echoServer('world', WEB, ECHO_PORT);
      const held = await s.holdTcp('work', WEB, ECHO_PORT);
      assert.ok(await held.send());
      // A bounded request loop inside work: one HTTP GET every 50 ms, at most 400, until told to stop.
      const loop = s.spawnIn('work', [
        process.execPath,
        '-e',
        `let stop = false; process.stdin.on('data', () => (stop = true)); process.stdin.resume();
         (async () => { for (let i = 0; i < 400 && !stop; i++) {
           try { const r = await fetch('http://${WEB}/', { signal: AbortSignal.timeout(1500) }); await r.text(); console.log(r.ok ? 'ok' : 'fail:' + r.status); }
           catch (e) { console.log('fail:' + (e.cause?.code ?? e.name)); }
           await new Promise((r) => setTimeout(r, 50)); } console.log('done'); process.exit(0); })();`,
      ]);
      await loop.waitFor((l) => l === 'ok', 5000);

      const log: string[] = [];
      const d1 = await newDaemon(s, log);
      daemons.push(d1);
      // It did reload the netvms whole (its first converge), under the running traffic.
      assert.ok(log.some((l) => l.includes('"type":"applied","node":"sys-firewall","full":true')), 'the first daemon loaded sys-firewall whole');
      assert.ok(await held.send(), 'flows while the first daemon runs');
      await d1.stop();
      assert.ok(await held.send(), 'flows after it stopped');
      const d2 = await newDaemon(s);
      daemons.push(d2);
      assert.ok(await held.send(), 'flows under a second daemon');
      const seen = loop.lines.length;
      await loop.waitFor((l) => l === 'ok', 3000, seen);
      await d2.stop();

      loop.write('stop\n');
      await loop.waitFor((l) => l === 'done', 5000);
      const fails = loop.lines.filter((l) => l.startsWith('fail'));
      const oks = loop.lines.filter((l) => l === 'ok').length;
      assert.deepEqual(fails, [], `no request failed (${oks} succeeded)`);
      assert.ok(oks >= 5, `the loop ran through both adoptions (${oks} requests)`);
      assert.ok(await held.send(), 'the held connection survived both adoptions');
    });
  });

  test('commands go through the daemon, and its events show started, applied and flow-cut', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      daemons.push(await newDaemon(s));
      await withEvents(s, async (ev) => {
        await s.ok('start work');
        const cmd = await ev.waitFor((e) => e.type === 'changed' && e['op'] === 'start', 3000);
        assert.deepEqual(cmd['effect'], { kind: 'lifecycle', qubes: ['work'] }, 'the daemon ran the operation and says what it touched');
        assert.equal(cmd['by'], 'op');
        const started = await ev.waitFor((e) => e.type === 'started', 3000);
        assert.deepEqual([...(started['qubes'] as string[])].sort(), ['sys-firewall', 'sys-net', 'work']);
        const client = (await DaemonClient.connect(s.dir))!;
        const st = (await client.request('GET', '/v1/status')).body as { pid: number; handled: number };
        assert.equal(st.pid, process.pid);

        await s.echoServer('world', WEB, ECHO_PORT);
        const held = await s.holdTcp('work', WEB, ECHO_PORT);
        assert.ok(await held.send());
        const mark = ev.all.length;
        await s.setRules('work', [`action=accept dsthost=${OTHER}`]);
        const applied = await ev.waitFor((e) => e.type === 'applied' && e['node'] === 'sys-firewall', 3000, mark);
        assert.equal(applied['full'], false, 'a delta, not a full load');
        const cut = await ev.waitFor((e) => e.type === 'flow-cut', 3000, mark);
        assert.equal(cut['qube'], 'work');
        assert.equal(cut['node'], 'sys-firewall');
        assert.equal((cut['flow'] as { dport?: number }).dport, ECHO_PORT);
        assert.equal(await held.send(2000), false, 'the cut connection carries no data');
        const st2 = (await client.request('GET', '/v1/status')).body as { handled: number };
        assert.ok(st2.handled > st.handled, 'the daemon handled the apply');
        // Right after an edit the kernel still holds the rules the overlay put aside (tidied within
        // 100 ms); counters, which reads them, settles the kernel first: one policy row, not two.
        await s.setRules('work', [`action=accept dsthost=${WEB}`]);
        const policy = (await s.counters('work')).filter((r) => r.hop === 'sys-firewall' && r.rule === 'policy: work default drop');
        assert.equal(policy.length, 1, JSON.stringify(policy));
      });
    });
  });

  test('the management socket answers on the host and is unreachable from inside a qube', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      await s.ok('start work');
      daemons.push(await newDaemon(s));
      const name = socketName(s.dir);
      const script = `const c = require('node:net').connect({ path: ${JSON.stringify(name)} });
        c.on('connect', () => { console.log('connected'); c.destroy(); }); c.on('error', (e) => console.log('error:' + e.code));`;
      for (const q of ['work', 'sys-firewall', 'sys-net'])
        assert.equal((await s.sh(q, [process.execPath, '-e', script])).stdout.trim(), 'error:ECONNREFUSED', `from ${q}`);
      const here = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(here.stdout.trim(), 'connected', 'the host namespace reaches it');
      const c = await DaemonClient.connect(s.dir);
      assert.ok(c);
      assert.equal(((await c.request('GET', '/v1/status')).body as { pid: number }).pid, process.pid);
    });
  });

  test('a netvm that dies is noticed, and starting it again reattaches its clients', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      daemons.push(await newDaemon(s));
      await withEvents(s, async (ev) => {
        await s.ok('start work');
        assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:/);
        execFileSync('ip', ['netns', 'del', s.ns('sys-firewall')]);
        const died = await ev.waitFor((e) => e.type === 'died', 5000);
        assert.deepEqual(died['qubes'], ['sys-firewall']);
        const detached = await ev.waitFor((e) => e.type === 'detached', 1000);
        assert.deepEqual(detached['qubes'], ['work']);
        await ev.waitFor((e) => e.type === 'changed' && e['by'] === 'watch', 5000); // reads run beside changes
        const ls = JSON.parse(await s.ok('ls --json')) as { name: string; state: string }[];
        assert.equal(ls.find((q) => q.name === 'sys-firewall')?.state, 'Halted');
        assert.equal(ls.find((q) => q.name === 'work')?.state, 'Running');
        assert.match(await s.fetch('work', `http://${WEB}/`, 1500), /^error:/, 'work is cut off');
        const mark = ev.all.length;
        await s.ok('start sys-firewall');
        const re = await ev.waitFor((e) => e.type === 'reattached', 3000, mark);
        assert.deepEqual(re['qubes'], ['work']);
        assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:qnet world: web/, 'work reaches the world again');
      });
    });
  });

  test('an expiring rule is removed by the daemon and the kernel refuses what it allowed', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      await s.ok('start work');
      daemons.push(await newDaemon(s));
      await s.setRules('work', ['action=accept specialtarget=dns']);
      assert.equal((await s.tcpProbe('work', WEB, 80)).result, 'error:EHOSTUNREACH');
      const t0 = Date.now();
      await s.ok(['firewall', 'work', 'add', 'accept', WEB, 'tcp', '80', 'expire=+3']);
      assert.equal((await s.tcpProbe('work', WEB, 80)).result, 'ok', 'allowed while the rule lasts');
      const gone = await until(async () => (await s.tcpProbe('work', WEB, 80, { timeoutMs: 1000 })).result === 'error:EHOSTUNREACH', 10_000, 250);
      const took = Date.now() - t0;
      assert.ok(gone, 'refused after the rule expired');
      assert.ok(took >= 2500, `not before it expired (${took} ms)`);
      assert.equal(await s.ok('firewall work get'), 'action=accept specialtarget=dns\n', 'the rule is gone from the model');
    });
  });

  test('a rule naming a host follows its DNS answer when the TTL runs out, touching only its client chain or set elements', async () => {
    await live('qd', async (s, daemons) => {
      await s.ok('init');
      // The world's zone for this system: flip.example.com points at WEB with a 5 s TTL.
      const zone = { ...DEFAULT_ZONE, 'flip.example.com': { a: [WEB], ttl: 5 } };
      writeFileSync(join(s.dir, 'world-zone.json'), JSON.stringify(zone));
      await s.ok('start work');
      const d = await newDaemon(s);
      daemons.push(d);
      // Names are asked in sys-net by one resolver process, started with the daemon and kept.
      const resolver = d.resolverPids.get('sys-net');
      assert.ok(alive(resolver), 'a resolver runs for sys-net');
      assert.equal(statSync(`/proc/${resolver}/ns/net`).ino, statSync(`/run/netns/${s.ns('sys-net')}`).ino, "in sys-net's namespace");
      await withEvents(s, async (ev) => {
        await s.setRules('work', ['action=accept dsthost=flip.example.com proto=tcp dstports=80']);
        assert.equal((await s.tcpProbe('work', WEB, 80)).result, 'ok');
        assert.equal((await s.tcpProbe('work', OTHER, 80)).result, 'error:EHOSTUNREACH');
        // Watch what reaches sys-firewall's nftables from now on.
        const monitor = s.spawnIn('sys-firewall', ['nft', 'monitor', 'ruleset']);
        await new Promise((r) => setTimeout(r, 300));
        const mark = ev.all.length;
        await s.setWorldZone({ ...zone, 'flip.example.com': { a: [OTHER], ttl: 5 } });
        const followed = await until(
          async () => (await s.tcpProbe('work', OTHER, 80, { timeoutMs: 1000 })).result === 'ok' && (await s.tcpProbe('work', WEB, 80, { timeoutMs: 1000 })).result === 'error:EHOSTUNREACH',
          15_000,
          250,
        );
        assert.ok(followed, 'the new address is allowed and the old one refused');
        await new Promise((r) => setTimeout(r, 300));
        await monitor.stop();
        const applied = ev.all.slice(mark).filter((e) => e.type === 'applied');
        assert.ok(applied.some((e) => e['node'] === 'sys-firewall'), 'sys-firewall was updated');
        assert.ok(applied.every((e) => e['full'] === false), 'never a full load');
        const changes = monitor.lines.filter((l) => l.trim() && !l.startsWith('#'));
        assert.ok(changes.length > 0, 'the monitor saw the change');
        // Only work's chain in sys-firewall and its sets changed: no table or chain was replaced.
        const workChain = 'qbs-10-137-0-3';
        const outside = changes.filter((l) => !new RegExp(`^(add|insert|delete) (rule ip qubes-firewall ${workChain} |element |set ip qubes-firewall ${workChain}-)`).test(l));
        assert.deepEqual(outside, [], `only work's rules changed, not a full reload: ${changes.join(' | ')}`);
        // The daemon overlays (the new rules go in front, nothing is deleted), then tidies up.
        const firstInsert = changes.findIndex((l) => l.startsWith('insert rule'));
        const firstDelete = changes.findIndex((l) => l.startsWith('delete '));
        assert.ok(firstInsert >= 0 && firstInsert < firstDelete, `inserted before anything was deleted: ${changes.join(' | ')}`);
        assert.ok(changes.some((l) => l.includes(OTHER)), `the new address went in: ${changes.join(' | ')}`);
      });
      assert.deepEqual([...d.resolverPids], [['sys-net', resolver]], 'the new name and the refresh asked the same process');
      assert.ok(alive(resolver));
      // sys-net's namespace deleted behind the daemon's back: the resolver would keep it (and its
      // links) alive, unnamed; the watch ends it.
      await s.runner.run(['ip', 'netns', 'del', s.ns('sys-net')]);
      assert.ok(await until(async () => !alive(resolver), 5000, 100), 'the resolver is gone with its namespace');
    });
  });

  test('no namespace is left behind by the daemon tests', () => {
    assert.ok(prefixes.length > 0);
    const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    assert.deepEqual(list.split('\n').filter((l) => prefixes.some((p) => l.startsWith(p))), []);
  });
}
