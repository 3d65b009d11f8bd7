// The host of the CLI without a daemon (like firewall-offline-cmd): the state directory through a
// FileStore, and — when qubes run on the netns runtime — an Engine made for this one command that
// brings the kernel to each change before the files are written (EngineStore).
// The engine and its wiring load only when a command changes something or reads the kernel.
import type { RuleCounter } from '../backend/backend.js';
import type { Engine } from '../engine/engine.js';
import type { Wired } from '../engine/wiring.js';
import { diag } from '../model/diagnostics.js';
import type { Effect } from '../model/effect.js';
import type { Model, Qube } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import type { Resolutions } from '../compile/dns.js';
import type { Analysis } from '../sim/questions.js';
import { presentNamespaces } from '../backend/netns/netns-dir.js';
import { CheckpointFile } from '../store/checkpoints-file.js';
import { FileStore } from '../store/file-store.js';
import { readRuntime, type Runtime } from '../store/runtime-file.js';
import { loadQubeFrom, type Store } from '../store/store.js';
import type { Host } from './types.js';

export interface OfflineHostOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Seconds since the epoch. */
  now: () => number;
  /** Told once when a change waits for another writer's lock (the CLI says so on stderr). */
  onLockWait?: (holderPid: number | null) => void;
}

export class OfflineHost implements Host {
  readonly stateDir: string;
  /** Applies keep checkpoints offline too (for undo); a confirm timer needs the daemon (no confirmTimer). */
  readonly checkpoints: CheckpointFile;
  private files?: FileStore;
  private store?: Store;
  private wired?: Promise<Wired | null>;

  constructor(private readonly o: OfflineHostOptions) {
    this.stateDir = o.stateDir;
    this.checkpoints = new CheckpointFile(o.stateDir);
  }

  now(): number {
    return this.o.now();
  }

  private fileStore(): FileStore {
    return (this.files ??= new FileStore(this.stateDir, { now: () => this.o.now() * 1000, ...(this.o.onLockWait ? { onLockWait: this.o.onLockWait } : {}) }));
  }

  async read(): Promise<Model> {
    const m = await this.fileStore().load();
    await this.showDeaths([...m.qubes.values()]);
    return m;
  }

  async readQube(name: string): Promise<Qube | undefined> {
    const q = await loadQubeFrom(this.fileStore(), name);
    if (q) await this.showDeaths([q]);
    return q;
  }

  /**
   * A qube qubes.json calls Running whose namespace is gone (a reboot, a crash, `ip netns del`) is
   * shown Halted: one readdir of /run/netns, no root needed. Shown, not written: a read takes no
   * writer lock and may be run by a user who cannot write the state directory, beside a writer;
   * the next change (offline or the daemon's) records it under the lock (Engine.noticeDeaths).
   */
  private async showDeaths(qubes: Qube[]): Promise<void> {
    const running = qubes.filter((q) => q.state === 'Running');
    if (!running.length) return;
    const rt = await readRuntime(this.stateDir, this.o.env).catch(() => null);
    if (rt?.backend !== 'netns') return; // offline, the simulator's states are bookkeeping only
    const present = await presentNamespaces();
    if (present) for (const q of running) if (!present.has(rt.prefix + q.name)) q.state = 'Halted';
  }

  async change<T>(effect: Effect, edit: (m: Model) => T | Promise<T>): Promise<T> {
    if (!this.store) {
      const { EngineStore } = await import('../engine/engine-store.js');
      this.store = new EngineStore(this.fileStore(), () => this.engine(), true, async () => (await this.getWired()) !== null);
    }
    return this.store.update(edit, effect);
  }

  async analysis(model: Model): Promise<Analysis> {
    const { analysisOf } = await import('./analysis.js');
    return analysisOf(model, this.stateDir, this.o.now());
  }

  async resolve(model: Model, names: readonly string[]): Promise<Resolutions> {
    const { offlineResolver } = await import('./analysis.js'); // the compiler's resolvers: only when a name needs them
    return offlineResolver(model, this.stateDir).resolveAll(names);
  }

  async runtime(opts: { start?: boolean } = {}): Promise<Runtime | null> {
    if (!opts.start) return readRuntime(this.stateDir, this.o.env);
    const { runtimeFor } = await import('../engine/wiring.js');
    return runtimeFor(this.stateDir, this.o.env);
  }

  async counters(node: string): Promise<RuleCounter[]> {
    await this.engine();
    return (await this.getWired())!.backend.counters(node);
  }

  applyStatus(): undefined {
    return undefined;
  }

  private getWired(): Promise<Wired | null> {
    return (this.wired ??= (async () => {
      const rt = await this.runtime();
      // The simulator keeps no state between commands: offline, only a daemon can hold it.
      if (!rt || rt.backend === 'sim') return null;
      const { NO_ICMP_RATELIMIT, wire } = await import('../engine/wiring.js');
      // Tests and demos lift the ICMP rate limit, or probes meeting a reject look like drops.
      const sysctls = this.o.env['QNET_NO_ICMP_RATELIMIT'] ? NO_ICMP_RATELIMIT : undefined;
      return wire({ stateDir: this.stateDir, runtime: rt, model: await this.fileStore().loadGlobals(), now: this.o.now, ...(sysctls ? { sysctls } : {}) });
    })());
  }

  private async engine(): Promise<Engine> {
    const w = await this.getWired();
    if (!w) throw new QnetError(diag('QNET5102', 'no runtime for running qubes here', { hint: 'qnet start as root, or qnet daemon --backend sim' }));
    return w.engine;
  }
}
