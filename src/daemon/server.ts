// `qnet daemon`: the only writer. It owns the store and the backend, serves the operations (ops/)
// over its socket as HTTP/JSON (routes.ts) — changes one at a time, reads beside them — keeps the
// kernel converged, and runs the timers Qubes keeps in qubesd: rule expiry, DNS refresh by TTL,
// and noticing a netvm that died. Events say what changed and why, as JSON lines to whoever listens.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { watch, type FSWatcher } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Effect } from '../model/effect.js';
import { formatDiagnostic, warning } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { isExpired } from '../model/rule.js';
import { startSet } from '../model/topology.js';
import type { Model } from '../model/qube.js';
import { FileStore } from '../store/file-store.js';
import type { Lock } from '../store/lock.js';
import type { Runtime } from '../store/runtime-file.js';
import type { Sysctls } from '../backend/netns/sysctl.js';
import { EngineStore } from '../engine/engine-store.js';
import type { Lookup } from '../engine/dns-refresh.js';
import type { EngineEvent } from '../engine/engine.js';
import { DaemonHost } from './daemon-host.js';
import { handle, type EventSink, type Served } from './routes.js';
import { formatHost, HttpListener, httpTokens, type HttpAddress, type HttpOptions } from './http.js';
import { claimSocket, newToken, publishDaemon, withdrawDaemon } from './socket.js';
import { wire, type Wired } from '../engine/wiring.js';
import { RuleIndex } from './rule-index.js';

export interface DaemonOptions {
  stateDir: string;
  runtime: Runtime;
  now?: () => number;
  log?: (line: string) => void;
  sysctls?: Sysctls;
  /** How often to look for namespaces that vanished (ms). */
  watchIntervalMs?: number;
  /** Also serve the API over HTTP on this loopback address (http.ts); off by default. */
  http?: HttpAddress & HttpOptions;
}

/** Why a qube's rules or properties changed: an operation, a rule that expired, a DNS refresh. */
export type ChangeCause = { by: 'op'; op: string } | { by: 'expiry' } | { by: 'dns' } | { by: 'watch' } | { by: 'rollback'; checkpoint: string };

export type DaemonEvent = EngineEvent | { type: 'hello'; pid: number } | ({ type: 'changed'; effect: Effect } & ChangeCause);

/** Quiet time before the daemon tidies what rule edits' overlays left in the kernel (Engine.tidy). */
const TIDY_AFTER_S = 0.1;

/**
 * Quiet time after a change before the daemon collects the young generation. A change allocates a
 * few MB that the next change's scavenge would copy (7-13 ms measured at 1,000 qubes, in front of
 * that edit's kernel load); collected while idle, the next change starts with an empty nursery.
 */
const IDLE_AFTER_S = 0.2;

export class Daemon {
  private server?: Server;
  private wired?: Wired;
  private token = '';
  private queue: Promise<unknown> = Promise.resolve();
  readonly listeners = new Set<EventSink>();
  private http?: HttpListener;
  /** Where the HTTP API listens (the port chosen when asked for port 0). */
  httpAddress?: HttpAddress;
  host?: DaemonHost;
  /** What changes touched since the last event about them. */
  private effects: Effect[] = [];
  private takeEffects(): Effect[] {
    const e = this.effects;
    this.effects = [];
    return e;
  }
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  private watcher?: FSWatcher;
  private model?: Model;
  private stopped = false;
  private lock?: Lock;
  private readonly now: () => number;

  constructor(private readonly o: DaemonOptions) {
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
  }

  private log(s: string): void {
    this.o.log?.(`qnet daemon: ${s}`);
  }

  emit(e: DaemonEvent): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n';
    for (const l of this.listeners) l.write(line);
    this.log(line.trim());
  }

  /** The long-lived resolvers now: netvm → process id (tests). */
  get resolverPids(): Map<string, number | undefined> {
    return this.wired?.netns?.resolverPids ?? new Map();
  }

  /** The drop log's readers now: netvm → process id (tests check none outlives its netvm). */
  get dropReaders(): Map<string, number | undefined> {
    return this.wired?.engine.drops?.running ?? new Map();
  }

  /**
   * Start the qubes whose autostart property is set, with their netvm chains (qvm-start), before the
   * daemon reports ready: at boot under systemd, `After=qnet.service` finds them running. Its own
   * change after the first converge, so qubes that failed to start leave the daemon serving the
   * rest (a warning event names the failure; their state stays Halted, nothing half-open).
   */
  private async autostart(): Promise<void> {
    const model = await this.host!.read();
    const want = [...model.qubes.values()].filter((q) => q.autostart === true && q.klass !== 'TemplateVM' && q.state !== 'Running').map((q) => q.name);
    if (!want.length) return;
    try {
      await this.serial(() =>
        this.host!.change({ kind: 'lifecycle', qubes: want }, (m) => {
          for (const q of startSet(m, want.filter((n) => m.qubes.has(n)))) q.state = 'Running';
        }),
      );
    } catch (e) {
      const why = e instanceof QnetError ? formatDiagnostic(e.diag) : (e as Error).message;
      this.emit({ type: 'warning', diag: warning('QNET5107', `autostart of ${want.join(', ')} failed: ${why}`) });
    }
  }

  /** Claim the socket, adopt what runs, converge, then publish the pid file and token. */
  async start(): Promise<void> {
    this.token = newToken();
    const self = this; // for the getter below
    const served: Served = {
      token: () => this.token,
      // Nobody holds the token before publishDaemon, so no request reaches an op before the host exists.
      get host() {
        return self.host!;
      },
      serial: (fn) => this.serial(fn),
      emit: (e) => this.emit(e),
      log: (l) => this.log(l),
      listeners: this.listeners,
      status: () => {
        const e = this.wired!.engine;
        return {
          pid: process.pid,
          stateDir: this.o.stateDir,
          runtime: this.o.runtime,
          handled: e.handled,
          status: Object.fromEntries(e.status),
          // What the last full compile had to say: names that did not resolve, rules that can never match.
          diagnostics: e.lastDiagnostics,
        };
      },
      afterChange: () => {
        this.armTimers();
        this.arm('idle', IDLE_AFTER_S, async () => collectGarbage('minor'), true);
      },
      takeEffects: () => this.takeEffects(),
    };
    this.server = createServer((req, res) => void handle(served, req, res));
    // Bounded requests: a peer that sends headers or a body too slowly is cut off.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 60_000;
    await claimSocket(this.server, this.o.stateDir); // first: a second daemon stops here, before it touches anything
    const files = new FileStore(this.o.stateDir, { now: () => this.now() * 1000 });
    // The only writer while it runs: an offline CLI (inside a qube, QNET_NO_DAEMON) is refused at
    // once, naming this daemon, instead of writing files and kernel behind its back.
    this.lock = await files.holdLock();
    const model = await files.load();
    this.wired = wire({ stateDir: this.o.stateDir, runtime: this.o.runtime, model, now: this.now, emit: (e) => this.emit(e), overlay: true, dropLog: true, ...(this.o.sysctls ? { sysctls: this.o.sysctls } : {}) });
    // The daemon remembers what it loaded; its first converge loads every node whole (atomically,
    // so established flows of adopted namespaces carry on).
    const engineStore = new EngineStore(files, async () => this.wired!.engine, false);

    // The watch and the timers read this.model: it is taken once the kernel holds it (after the
    // converge). Taken before, a qube being started looked dead to the watch, which queued a
    // converge that could race a real death (see Engine.noticeDeaths vs converge's own live()).
    this.host = new DaemonHost({
      stateDir: this.o.stateDir,
      now: this.now,
      store: engineStore,
      engine: this.wired.engine,
      backend: this.wired.backend,
      runtime: this.o.runtime,
      settle: () => this.serial(() => this.tidy()),
      changed: (m, effect) => {
        this.model = m;
        this.effects.push(effect);
        this.ruleIndex.note(m, effect);
      },
      confirmTimer: (id, at) => this.arm(`confirm:${id}`, at === undefined ? undefined : at - this.now(), () => this.rollBack(id), true),
    });
    await this.serial(() => this.host!.change({ kind: 'all' }, () => undefined));
    await this.autostart();
    this.takeEffects();
    // An apply nobody confirmed does not outlive its daemon (it may have died before the timer ran).
    await this.rollBackPending();
    await publishDaemon(this.o.stateDir, this.token); // the token, then the pid file: clients can verify us now
    if (this.o.http) {
      // Last, like the socket's publishing: no HTTP request reaches an op before the host exists.
      this.http = new HttpListener(served, await httpTokens(this.o.stateDir), this.o.http);
      this.httpAddress = await this.http.listen(this.o.http, this.o.stateDir);
    }
    this.watchNamespaces();
    this.armTimers();
    await this.warmUp();
    this.log(`running for ${this.o.stateDir} (${this.o.runtime.backend}, prefix ${this.o.runtime.prefix}), pid ${process.pid}${this.httpAddress ? `, HTTP on ${formatHost(this.httpAddress)}` : ''}`);
  }

  /**
   * What the first requests would pay, paid now: every op's module (they load on first use, for
   * the CLI's sake) and the simulator the connection ops ask; a rehearsal of the rule edit and the
   * resolver's process (the first DNS refresh would start it beside an edit); a full
   * collection of what the start left; the nft sessions' warm-ups (measured at 1,000 qubes: the
   * first edits after a start took 60-90 ms to the kernel, against 20 later: first calls, a 65 ms
   * collection, and the first edit's nft waiting for its session's warm-up).
   */
  private async warmUp(): Promise<void> {
    try {
      const { allOps } = await import('../ops/registry.js');
      await Promise.all([allOps(), import('../sim/questions.js')]);
      if (this.model) await this.wired?.engine.rehearse(this.model);
      collectGarbage('major');
      // The netvms' nft sessions refill their caches after the start's loads (a dump of every
      // table, chain and set): the first edit would wait behind that. Not for long: a session
      // that hangs is its next load's problem (it has a timeout), not the start's.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.wired?.netns?.settled(), new Promise((r) => (timer = setTimeout(r, WARM_WAIT_MS)))]);
      clearTimeout(timer);
    } catch (e) {
      this.log(`warming up: ${(e as Error).message}`); // only the first requests are slower
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.watcher?.close();
    for (const l of this.listeners) l.end();
    await this.http?.close(this.o.stateDir).catch((e) => this.log(`closing HTTP: ${(e as Error).message}`));
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await withdrawDaemon(this.o.stateDir, this.token); // the name is free now: no pid file outlives the socket
    await closed;
    await this.rollBackPending();
    // Leave the kernel as a full compile has it: the offline CLI and the next daemon assume so.
    await this.serial(() => this.tidy()).catch((e) => this.log(`tidy failed: ${(e as Error).message}`));
    await this.queue.catch(() => {});
    await this.wired?.engine.drops?.stopAll(); // each holds a namespace
    this.wired?.netns?.close(); // its nft sessions
    await this.lock?.release();
  }

  /** Re-resolve every name in every rule now, and load what changed (SIGHUP, systemctl reload). */
  async reload(): Promise<void> {
    await this.serial(async () => {
      const m = this.model;
      if (!m || !(await this.wired!.engine.refreshNames(m, { all: true }))) await this.host!.change({ kind: 'all' }, () => undefined);
      this.takeEffects();
      this.emit({ type: 'changed', effect: { kind: 'all' }, by: 'dns' });
    });
    this.armTimers();
  }

  /** Put pending apply `id` back (its confirm time ran out, or the daemon starts or stops). */
  private async rollBack(id: string): Promise<void> {
    const { invoke } = await import('../ops/registry.js');
    try {
      await invoke(this.host!, 'rollback', { checkpoint: id });
    } finally {
      for (const effect of this.takeEffects()) this.emit({ type: 'changed', effect, by: 'rollback', checkpoint: id });
    }
  }

  private async rollBackPending(): Promise<void> {
    if (!this.host) return;
    try {
      const { pendingCheckpoints } = await import('../ops/checkpoints.js');
      for (const cp of await pendingCheckpoints(this.host!.checkpoints)) await this.serial(() => this.rollBack(cp.id));
    } catch (e) {
      const why = e instanceof QnetError ? formatDiagnostic(e.diag) : (e as Error).message;
      this.emit({ type: 'warning', diag: warning('QNET6209', `pending applies could not be rolled back: ${why}`) });
    }
  }

  /** One change at a time: the daemon serialises every writer. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  // ---- Timers ---------------------------------------------------------------------------------

  /**
   * Wake up for `name` in `seconds` (undefined: not at all). A wake-up already due no later is kept:
   * timers are re-armed after every command and every watch tick, and restarting them each time
   * would postpone a due DNS refresh (at least 1 s away) forever when those come more often. With
   * `restart` the wake-up moves to `seconds` from now whatever was armed (a debounce).
   */
  private arm(name: string, seconds: number | undefined, fn: () => Promise<void>, restart = false, before?: () => Promise<void>): void {
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
      // `before` runs outside the queue of changes (what may take long and changes nothing).
      (before ? before() : Promise.resolve())
        .then(() => this.serial(fn))
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

  /** Each qube's earliest rule expiry and the names its rules use, for the timers (rule-index.ts). */
  private readonly ruleIndex = new RuleIndex();

  /**
   * Rule expiry (the rule is removed and the change applied), DNS refresh by TTL, tidying up once
   * TIDY_AFTER_S pass without a command (a burst of edits is tidied once, at its end; the engine
   * tidies first itself when a burst goes on too long).
   */
  private armTimers(): void {
    this.arm('tidy', this.wired?.engine.needsTidy ? TIDY_AFTER_S : undefined, () => this.tidy(), true);
    const now = this.now();
    const at = this.ruleIndex.nextExpiry();
    const next = at === undefined ? undefined : at + 1 - now;
    this.arm('expire', next, async () => {
      const t = this.now();
      const expired = this.ruleIndex.expiredAt(t);
      const effect: Effect = expired.length ? { kind: 'rules', qubes: expired } : { kind: 'all' };
      await this.host!.change(effect, (m) => {
        for (const n of expired) {
          const q = m.qubes.get(n);
          if (q?.rules?.some((r) => isExpired(r, t))) q.rules = q.rules.filter((r) => !isExpired(r, t));
        }
      });
      for (const effect of this.takeEffects()) if (expired.length) this.emit({ type: 'changed', effect, by: 'expiry' });
    });
    // The names are asked before the refresh takes its turn in the queue: a slow resolver (a
    // round trip, a timeout) holds up no edit meanwhile; the answers are recorded in turn.
    let asked: Lookup | undefined;
    this.arm(
      'dns',
      this.wired?.engine.nextDnsRefresh(now),
      async () => {
        const m = this.model;
        const naming = (hosts: ReadonlySet<string>) => this.ruleIndex.naming(hosts, this.now());
        if (!m || !(await this.wired!.engine.refreshNames(m, { ...(asked ? { asked } : {}), naming }))) await this.host!.change({ kind: 'all' }, () => undefined);
        this.takeEffects();
        this.emit({ type: 'changed', effect: { kind: 'all' }, by: 'dns' });
      },
      false,
      async () => {
        asked = this.model ? await this.wired!.engine.askNames(this.ruleIndex.names(this.now())) : undefined;
      },
    );
  }

  /** A netvm killed or a namespace deleted behind our back: notice it, detach, carry on. */
  private watchNamespaces(): void {
    const check = async () => {
      if (this.stopped) return;
      const live = await this.wired!.backend.live();
      const missing = [...(this.model?.qubes.values() ?? [])].some((q) => q.state === 'Running' && !live.has(q.name));
      if (!missing) return;
      await this.serial(() => this.host!.change({ kind: 'all' }, () => undefined));
      this.takeEffects();
      // After `died` and `detached`: the files and a read (`qnet ls`) now say so too.
      this.emit({ type: 'changed', effect: { kind: 'all' }, by: 'watch' });
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

/** How long a start waits for the nft sessions' warm-ups (a few hundred ms at 1,000 qubes). */
const WARM_WAIT_MS = 5000;

/**
 * A collection now, when nothing waits: of everything (the start's leftovers), or of the young
 * generation (what a change allocated). Node offers gc() only behind --expose-gc; the flag set at
 * run time gives it to a new context.
 */
function collectGarbage(type: 'minor' | 'major'): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as typeof gc;
  }
  gc!({ type });
}
let gc: ((o: { type: 'minor' | 'major' }) => void) | undefined;
