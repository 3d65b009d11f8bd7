// `qnet daemon`: the only writer. It owns the store and the backend, runs clients' commands one at a
// time through the very same CLI code (so there is one implementation of every command), keeps the
// kernel converged, and runs the timers Qubes keeps in qubesd: rule expiry, DNS refresh by TTL,
// and noticing a netvm that died. Events go out as JSON lines to whoever listens (UIs, tests).
import { watch, type FSWatcher } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { bufferIo } from '../cli/io.js';
import { main } from '../cli/main.js';
import { isExpired } from '../model/rule.js';
import type { Model } from '../model/qube.js';
import { FileStore } from '../store/file-store.js';
import type { Runtime } from '../store/runtime-file.js';
import type { Store } from '../store/store.js';
import type { Sysctls } from '../backend/netns/sysctl.js';
import { EngineStore } from '../engine/engine-store.js';
import type { EngineEvent } from '../engine/engine.js';
import { claimSocket, newToken, publishDaemon, withdrawDaemon } from './socket.js';
import { wire, type Wired } from '../engine/wiring.js';

export interface DaemonOptions {
  stateDir: string;
  runtime: Runtime;
  now?: () => number;
  log?: (line: string) => void;
  sysctls?: Sysctls;
  /** How often to look for namespaces that vanished (ms). */
  watchIntervalMs?: number;
}

export type DaemonEvent = EngineEvent | { type: 'hello'; pid: number } | { type: 'command'; argv: string[]; code: number };

/** Quiet time before the daemon tidies what rule edits' overlays left in the kernel (Engine.tidy). */
const TIDY_AFTER_S = 0.1;

export class Daemon {
  private server?: Server;
  private wired?: Wired;
  private store?: Store;
  private token = '';
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<ServerResponse>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  private watcher?: FSWatcher;
  private model?: Model;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly o: DaemonOptions) {
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
  }

  private log(s: string): void {
    this.o.log?.(`qnet daemon: ${s}`);
  }

  private emit(e: DaemonEvent): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n';
    for (const l of this.listeners) l.write(line);
    if (e.type !== 'command') this.log(line.trim());
  }

  /** Claim the socket, adopt what runs, converge, then publish the pid file and token. */
  async start(): Promise<void> {
    this.token = newToken();
    this.server = createServer((req, res) => void this.handle(req, res));
    await claimSocket(this.server, this.o.stateDir); // first: a second daemon stops here, before it touches anything
    const files = new FileStore(this.o.stateDir, { now: () => this.now() * 1000 });
    const model = await files.load();
    this.wired = wire({ stateDir: this.o.stateDir, runtime: this.o.runtime, model, now: this.now, emit: (e) => this.emit(e), overlay: true, ...(this.o.sysctls ? { sysctls: this.o.sysctls } : {}) });
    // The daemon remembers what it loaded; its first converge loads every node whole (atomically,
    // so established flows of adopted namespaces carry on).
    const engineStore = new EngineStore(files, async () => this.wired!.engine, false);
    // The watch and the timers read this.model: it is taken once the kernel holds it (after the
    // converge). Taken before, a qube being started looked dead to the watch, which queued a
    // converge that could race a real death (see Engine.noticeDeaths vs converge's own live()).
    this.store = {
      load: () => engineStore.load(),
      loadQube: (name) => engineStore.loadQube(name), // `qnet firewall VM` reads one qube's file, not all
      update: async (c) => {
        let seen: Model | undefined;
        const r = await engineStore.update(async (m) => {
          const x = await c(m);
          seen = m;
          return x;
        });
        if (seen) this.model = seen;
        return r;
      },
    };
    await this.serial(() => this.store!.update(() => undefined));
    await publishDaemon(this.o.stateDir, this.token); // the token, then the pid file: clients can verify us now
    this.watchNamespaces();
    this.armTimers();
    this.log(`running for ${this.o.stateDir} (${this.o.runtime.backend}, prefix ${this.o.runtime.prefix}), pid ${process.pid}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.watcher?.close();
    for (const l of this.listeners) l.end();
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await withdrawDaemon(this.o.stateDir, this.token); // the name is free now: no pid file outlives the socket
    await closed;
    // Leave the kernel as a full compile has it: the offline CLI and the next daemon assume so.
    await this.serial(() => this.tidy()).catch((e) => this.log(`tidy failed: ${(e as Error).message}`));
    await this.queue.catch(() => {});
    this.wired?.netns?.close(); // its nft sessions
  }

  /** One change at a time: the daemon serialises every writer. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"not authorised"}\n');
      return;
    }
    try {
      if (req.method === 'GET' && req.url === '/v1/events') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        this.listeners.add(res);
        req.on('close', () => this.listeners.delete(res));
        res.write(JSON.stringify({ type: 'hello', pid: process.pid }) + '\n');
        return;
      }
      if (req.method === 'GET' && req.url === '/v1/status') {
        const e = this.wired!.engine;
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            pid: process.pid,
            stateDir: this.o.stateDir,
            runtime: this.o.runtime,
            handled: e.handled,
            status: Object.fromEntries(e.status),
            // What the last full compile had to say: names that did not resolve, rules that can never match.
            diagnostics: e.lastDiagnostics,
          }) + '\n',
        );
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/cli') {
        const body = JSON.parse(await readBody(req)) as { argv: string[]; stdin?: string };
        const out = await this.serial(() => this.runCommand(body.argv, body.stdin));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out) + '\n');
        this.armTimers();
        return;
      }
      res.writeHead(404).end();
    } catch (e) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }) + '\n');
    }
  }

  private async runCommand(argv: string[], stdin?: string) {
    const b = bufferIo({ ...(stdin !== undefined ? { stdin } : {}), env: { QNET_STATE: this.o.stateDir } });
    b.io.now = this.now;
    // Commands that read the kernel's rules settle it first; every other command copes with a rule
    // edit's leftovers (tidying before each would make a burst of edits wait).
    const code = await main(argv, b.io, { store: this.store!, wired: this.wired!, settle: () => this.tidy() });
    this.emit({ type: 'command', argv, code });
    return { code, stdout: b.stdout(), stderr: b.stderr() };
  }

  // ---- Timers ---------------------------------------------------------------------------------

  /**
   * Wake up for `name` in `seconds` (undefined: not at all). A wake-up already due no later is kept:
   * timers are re-armed after every command and every watch tick, and restarting them each time
   * would postpone a due DNS refresh (at least 1 s away) forever when those come more often. With
   * `restart` the wake-up moves to `seconds` from now whatever was armed (a debounce).
   */
  private arm(name: string, seconds: number | undefined, fn: () => Promise<void>, restart = false): void {
    const armed = this.timers.get(name);
    if (seconds === undefined || this.stopped) {
      if (armed) clearTimeout(armed.timer);
      this.timers.delete(name);
      return;
    }
    const ms = Math.min(Math.max(0, seconds * 1000), 2 ** 31 - 1);
    const at = Date.now() + ms;
    if (armed && armed.at <= at && !restart) return;
    if (armed) clearTimeout(armed.timer);
    const timer = setTimeout(() => {
      this.timers.delete(name);
      this.serial(fn)
        .catch((e) => this.log(`${name} failed: ${(e as Error).message}`))
        .finally(() => this.armTimers());
    }, ms).unref();
    this.timers.set(name, { timer, at });
  }

  /** What a rule edit's overlay left in the kernel is removed once the reply is out (Engine.tidy). */
  private async tidy(): Promise<void> {
    const e = this.wired?.engine;
    if (e?.needsTidy && this.model) await e.tidy(this.model);
  }

  /** The earliest rule expiry (epoch seconds) of `this.model`, looked for once per model (100k rules: ms). */
  private expiryOf?: { model: Model; at: number | undefined };

  /**
   * Rule expiry (the rule is removed and the change applied), DNS refresh by TTL, tidying up once
   * TIDY_AFTER_S pass without a command (a burst of edits is tidied once, at its end; the engine
   * tidies first itself when a burst goes on too long).
   */
  private armTimers(): void {
    this.arm('tidy', this.wired?.engine.needsTidy ? TIDY_AFTER_S : undefined, () => this.tidy(), true);
    const now = this.now();
    if (this.model && this.expiryOf?.model !== this.model) {
      let at: number | undefined;
      for (const q of this.model.qubes.values()) for (const r of q.rules ?? []) if (r.expire !== undefined) at = Math.min(at ?? Infinity, r.expire);
      this.expiryOf = { model: this.model, at };
    }
    const at = this.expiryOf?.at;
    const next = at === undefined ? undefined : at + 1 - now;
    this.arm('expire', next, () =>
      this.store!.update((m) => {
        const t = this.now();
        for (const q of m.qubes.values()) if (q.rules?.some((r) => isExpired(r, t))) q.rules = q.rules.filter((r) => !isExpired(r, t));
      }),
    );
    this.arm('dns', this.wired?.engine.nextDnsRefresh(now), async () => {
      const m = this.model;
      if (!m || !(await this.wired!.engine.refreshNames(m))) await this.store!.update(() => undefined);
    });
  }

  /** A netvm killed or a namespace deleted behind our back: notice it, detach, carry on. */
  private watchNamespaces(): void {
    const check = async () => {
      if (this.stopped) return;
      const live = await this.wired!.backend.live();
      const missing = [...(this.model?.qubes.values() ?? [])].some((q) => q.state === 'Running' && !live.has(q.name));
      if (missing) await this.serial(() => this.store!.update(() => undefined));
    };
    const tick = () =>
      void check()
        .catch((e) => this.log(`watch: ${(e as Error).message}`))
        .finally(() => this.arm('watch', (this.o.watchIntervalMs ?? 1000) / 1000, async () => tick()));
    try {
      this.watcher = watch('/run/netns', () => void check().catch(() => {}));
    } catch {
      // no /run/netns yet: polling alone
    }
    tick();
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024 * 1024) reject(new Error('request too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
