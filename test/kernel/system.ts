// A live qnet system for kernel tests and benchmarks: a temporary state directory, a unique
// namespace prefix, the real CLI run in-process, and a cleanup that always leaves nothing behind
// (namespaces, the world's processes, /etc/netns entries, the state directory).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeRunner, type RunResult } from '../../src/backend/netns/runner.js';
import type { Zone } from '../../src/backend/netns/dns-server.js';
import { destroyWorld, isWorldServicesPid, setWorldZone, worldFiles } from '../../src/backend/netns/world.js';
import { bufferIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { runDir } from '../../src/store/paths.js';
import { deleteNamespaces, uniquePrefix } from './ns.js';

export interface Run {
  code: number;
  out: string;
  err: string;
}

export class LiveSystem {
  readonly dir = mkdtempSync(join(tmpdir(), 'qnet-live-'));
  readonly prefix: string;
  readonly runner = new NodeRunner();
  readonly env: Record<string, string>;

  constructor(tag = 'ql') {
    this.prefix = uniquePrefix(tag);
    this.env = { QNET_STATE: this.dir, QNET_NETNS_PREFIX: this.prefix, QNET_NO_ICMP_RATELIMIT: '1' };
  }

  /** `qnet ARGS` in-process against this system. */
  async q(args: string | string[], stdin?: string): Promise<Run> {
    const argv = typeof args === 'string' ? args.split(' ').filter(Boolean) : args;
    const b = bufferIo({ env: this.env, ...(stdin !== undefined ? { stdin } : {}) });
    const code = await main(argv, b.io);
    return { code, out: b.stdout(), err: b.stderr() };
  }

  /** A second branch under sys-net: firewall qube fw2 and its client other (connections across branches). */
  async secondBranch(): Promise<void> {
    await this.ok('create fw2 --provides-network --netvm sys-net --label green');
    await this.ok('create other --netvm fw2 --label orange');
  }

  async ok(args: string | string[], stdin?: string): Promise<string> {
    const r = await this.q(args, stdin);
    if (r.code !== 0) throw new Error(`qnet ${typeof args === 'string' ? args : args.join(' ')} exited ${r.code}: ${r.err}`);
    return r.out;
  }

  ns(qube: string): string {
    return this.prefix + qube;
  }

  /** Run a program inside a qube's namespace (bounded by a timeout). */
  sh(qube: string, argv: string[], timeoutMs = 10_000): Promise<RunResult> {
    return this.runner.run(argv, { netns: this.ns(qube), timeoutMs });
  }

  /**
   * HTTP GET from inside a qube with node's fetch, bounded: 'ok:<body>' or 'error:<code>'
   * (ECONNREFUSED for a TCP reset, EHOSTUNREACH/ENETUNREACH for an ICMP reject, timeout for a drop).
   */
  async fetch(qube: string, url: string, timeoutMs = 3000): Promise<string> {
    const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(${timeoutMs}) })
      .then(async (r) => console.log('ok:' + (await r.text())))
      .catch((e) => console.log('error:' + (e.cause?.code ?? e.name)))`;
    const r = await this.sh(qube, [process.execPath, '-e', script], timeoutMs + 5000);
    return r.stdout.trim();
  }

  // ---- Additive helpers for scenario and daemon tests (processes are stopped by PID) ----

  private readonly procs = new Set<QubeProcess>();
  private readonly cleanups: (() => void)[] = [];

  /** Run `fn` first when the system is removed (e.g. close a backend the test made). */
  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Start a long-lived program in a qube's namespace; stopped by PID in cleanup() at the latest. */
  spawnIn(qube: string, argv: string[]): QubeProcess {
    const p = new QubeProcess(this.ns(qube), argv);
    this.procs.add(p);
    return p;
  }

  /** A TCP echo server (node) listening on host:port inside a qube (or the world); resolves once it listens. */
  async echoServer(qube: string, host: string, port: number): Promise<QubeProcess> {
    const script = `const s = require('node:net').createServer((c) => { c.on('error', () => {}); c.pipe(c); });
      s.listen(${port}, ${JSON.stringify(host)}, () => console.log('listening'));
      process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
    const p = this.spawnIn(qube, [process.execPath, '-e', script]);
    await p.waitFor((l) => l === 'listening', 10_000);
    return p;
  }

  /**
   * A held TCP connection from a qube: resolves once connected (or throws with the error).
   * `send(x)` writes one line and says whether it came back (echoed) within the time given.
   */
  async holdTcp(qube: string, host: string, port: number, opts: { localAddress?: string } = {}): Promise<HeldTcp> {
    const script = `const c = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port}${opts.localAddress ? `, localAddress: ${JSON.stringify(opts.localAddress)}` : ''} });
      c.setEncoding('utf8'); let buf = '';
      c.on('connect', () => console.log('connected'));
      c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { console.log('echo:' + buf.slice(0, i)); buf = buf.slice(i + 1); } });
      c.on('error', (e) => console.log('error:' + (e.code ?? e.message)));
      c.on('close', () => { console.log('closed'); process.exit(0); });
      const rl = require('node:readline').createInterface({ input: process.stdin });
      rl.on('line', (l) => c.write(l + '\\n')); rl.on('close', () => process.exit(0));`;
    const p = this.spawnIn(qube, [process.execPath, '-e', script]);
    const first = await p.waitFor((l) => l === 'connected' || l.startsWith('error:') || l === 'closed', 10_000);
    if (first !== 'connected') {
      await p.stop();
      throw new Error(`tcp ${host}:${port} from ${qube}: ${first}`);
    }
    let n = 0;
    return {
      proc: p,
      send: async (timeoutMs = 3000) => {
        const tag = `m${n++}-${Date.now()}`;
        p.write(tag + '\n');
        return (await p.waitFor((l) => l === `echo:${tag}` || l.startsWith('error:') || l === 'closed', timeoutMs).catch(() => null)) === `echo:${tag}`;
      },
    };
  }

  /** Open a TCP connection from a qube and close it: 'ok', 'error:CODE' or 'timeout', and how long it took. */
  async tcpProbe(qube: string, host: string, port: number, opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<{ result: string; ms: number }> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const script = `const t0 = Date.now(); const done = (r) => { console.log(JSON.stringify({ result: r, ms: Date.now() - t0 })); process.exit(0); };
      const c = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port}${opts.localAddress ? `, localAddress: ${JSON.stringify(opts.localAddress)}` : ''} });
      c.on('connect', () => { c.destroy(); done('ok'); }); c.on('error', (e) => done('error:' + (e.code ?? e.message)));
      setTimeout(() => done('timeout'), ${timeoutMs});`;
    const r = await this.sh(qube, [process.execPath, '-e', script], timeoutMs + 5000);
    try {
      return JSON.parse(r.stdout.trim()) as { result: string; ms: number };
    } catch {
      throw new Error(`tcp probe from ${qube} failed to run: ${r.stderr.trim()}`);
    }
  }

  /** `count` UDP datagrams from inside a qube to host:port, from one socket, as fast as it sends them. */
  async sendUdp(qube: string, host: string, port: number, count = 1): Promise<void> {
    const r = await this.sh(qube, [
      process.execPath,
      '-e',
      `const s = require('node:dgram').createSocket('udp4'); s.on('error', () => {});
       let n = 0; const next = () => (n++ < ${count} ? s.send('x', ${port}, ${JSON.stringify(host)}, next) : s.close()); next();`,
    ]);
    if (r.code !== 0) throw new Error(`sending UDP from ${qube} failed: ${r.stderr.trim()}`);
  }

  /** Set a qube's rules, one Admin API line each (all or nothing, like admin.vm.firewall.Set). */
  setRules(qube: string, lines: readonly string[]): Promise<string> {
    return this.ok(['firewall', qube, 'set'], lines.map((l) => l + '\n').join(''));
  }

  /** \`qnet counters QUBE [--all] --json\` rows. */
  async counters(qube: string, all = false): Promise<CounterRow[]> {
    return JSON.parse(await this.ok(['counters', qube, ...(all ? ['--all'] : []), '--json'])) as CounterRow[];
  }

  /** Replace the running world's DNS zone and wait for the reload (world.ts setWorldZone). */
  async setWorldZone(zone: Zone, timeoutMs = 5000): Promise<void> {
    const files = worldFiles(runDir(this.dir), this.ns('world'));
    const pid = Number.parseInt(readFileSync(files.pid, 'utf8'), 10);
    if (!isWorldServicesPid(pid)) throw new Error(`world pid ${pid} is not world-services`);
    await setWorldZone(files, pid, zone, timeoutMs);
  }

  /** Remove everything, whatever state the test left it in. */
  async cleanup(): Promise<void> {
    // Each step on its own: one that fails must not leave the others undone.
    for (const f of this.cleanups.splice(0))
      try {
        f();
      } catch {
        // the namespaces go below all the same
      }
    for (const p of this.procs) await p.stop().catch(() => {});
    await this.q('shutdown --all').catch(() => {});
    await destroyWorld(this.runner, this.ns('world'), { stateDir: runDir(this.dir) }).catch(() => {});
    deleteNamespaces(this.prefix);
    const etc = '/etc/netns';
    const entries = existsSync(etc) ? readdirSync(etc) : [];
    for (const d of entries) if (d.startsWith(this.prefix)) await rm(join(etc, d), { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Poll `cond` every `stepMs` until it holds or `timeoutMs` passed (then one last try): bounded. */
export async function until(cond: () => Promise<boolean>, timeoutMs: number, stepMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}

/** Whether a process of ours is still there (a zombie counts: its parent has not waited yet). */
export const alive = (pid: number | undefined): boolean => pid !== undefined && existsSync(`/proc/${pid}`);

/** Create, run, and always clean up. */
export async function withLiveSystem<T>(tag: string, fn: (s: LiveSystem) => Promise<T>): Promise<T> {
  const s = new LiveSystem(tag);
  try {
    return await fn(s);
  } finally {
    await s.cleanup();
  }
}

export interface CounterRow {
  hop: string;
  chain: string;
  rule: string;
  packets: number;
  bytes: number;
}

export interface HeldTcp {
  proc: QubeProcess;
  /** Send one line; true if it was echoed back within timeoutMs. */
  send(timeoutMs?: number): Promise<boolean>;
}

/** A long-lived program in a namespace (`ip netns exec` execs it, so the PID is the program's). */
export class QubeProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  private exited = false;

  constructor(ns: string, argv: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      for (const w of this.waiters) w();
    });
    this.child.stderr!.on('data', () => {});
    this.child.stdin!.on('error', () => {});
    this.child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiters) w();
    });
  }

  write(s: string): void {
    this.child.stdin!.write(s);
  }

  /** The first line (from now on, or already seen after `from`) matching pred; rejects after timeoutMs or on exit. */
  waitFor(pred: (line: string) => boolean, timeoutMs: number, from = this.lines.length): Promise<string> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = () => {
        for (; i < this.lines.length; i++)
          if (pred(this.lines[i]!)) {
            done();
            return resolve(this.lines[i]!);
          }
        if (this.exited) {
          done();
          reject(new Error(`process exited: ${this.lines.slice(-3).join(' | ')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timeout after ${timeoutMs} ms (last: ${this.lines.slice(-3).join(' | ')})`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Stop by PID: SIGTERM, then SIGKILL if it has not exited within 2 s (bounded). */
  async stop(): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise((r) => (bound = setTimeout(r, 5000)))]);
    clearTimeout(t);
    clearTimeout(bound); // a pending bound would keep the process alive 5 s after every stop
  }
}
