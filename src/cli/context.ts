// What every command gets: the IO seam, the state directory and its store, the clock, and — for
// commands that touch the kernel — the runtime, the executor and the engine. Offline (no daemon),
// every change goes through an EngineStore, so `qnet firewall work add …` reaches the kernel at once
// when qubes run; in the daemon, the daemon supplies its own store and backend.
import type { Backend } from '../backend/backend.js';
import type { NetnsBackend } from '../backend/netns/netns-backend.js';
import { EngineStore } from '../engine/engine-store.js';
import type { Engine } from '../engine/engine.js';
import { NO_ICMP_RATELIMIT, runtimeFor, wire, type Wired } from '../engine/wiring.js';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { FileStore } from '../store/file-store.js';
import { resolveStateDir } from '../store/paths.js';
import { readRuntime, type Runtime } from '../store/runtime-file.js';
import type { Store } from '../store/store.js';
import { DryRunStore } from './dry-run.js';
import type { Io } from './io.js';

export interface Ctx {
  io: Io;
  stateDir(): string;
  store(): Store;
  now(): number;
  /** The runtime; `start: true` chooses and records one the first time (netns where possible). */
  runtime(opts?: { start?: boolean; backend?: 'netns' | 'sim' }): Promise<Runtime | null>;
  backend(): Promise<Backend>;
  netns(): Promise<NetnsBackend>;
  setExitCode(code: number): void;
  /** How each qube's rules stand in the kernel (applied, blocked-fallback, failed), where known. */
  applyStatus(): ReadonlyMap<string, { state: string; diag?: { message: string } }> | undefined;
  exitCode(): number;
}

export interface GlobalOpts {
  state?: string;
  dryRun?: boolean;
  verbose?: boolean;
  json?: boolean;
}

/** What the daemon hands the commands it runs for clients. */
export interface DaemonParts {
  store: Store;
  wired: Wired;
  /** Leaves the kernel holding exactly what compile() gives (Engine.tidy), for commands that read its rules. */
  settle?: () => Promise<void>;
}

export function makeCtx(io: Io, globalOpts: () => GlobalOpts, daemon?: DaemonParts): Ctx {
  const stateDir = () => resolveStateDir(globalOpts().state, io.env);
  let files: FileStore | undefined;
  let store: Store | undefined;
  let wired: Promise<Wired | null> | undefined;
  let code = 0;
  const fileStore = () => (files ??= new FileStore(stateDir(), { now: () => io.now() * 1000 }));

  const runtime: Ctx['runtime'] = async (opts = {}) => {
    if (daemon) return daemon.wired.runtime;
    return opts.start || opts.backend
      ? runtimeFor(stateDir(), io.env, opts.backend ? { backend: opts.backend } : {})
      : readRuntime(stateDir(), io.env);
  };
  const getWired = (): Promise<Wired | null> =>
    daemon
      ? Promise.resolve(daemon.wired)
      : (wired ??= (async () => {
          const rt = await runtime();
          // The simulator keeps no state between commands: offline, only a daemon can hold it.
          if (!rt || rt.backend === 'sim') return null;
          // Tests and demos lift the ICMP rate limit, or probes meeting a reject look like drops.
          const sysctls = io.env['QNET_NO_ICMP_RATELIMIT'] ? NO_ICMP_RATELIMIT : undefined;
          return wire({ stateDir: stateDir(), runtime: rt, model: await fileStore().load(), now: io.now, ...(sysctls ? { sysctls } : {}) });
        })());
  const engine = async (): Promise<Engine> => {
    const w = await getWired();
    if (!w) throw new QnetError(diag('QNET5102', 'no runtime for running qubes here', { hint: 'qnet start as root, or qnet daemon --backend sim' }));
    return w.engine;
  };

  const make = (): Store => {
    if (daemon) return daemon.store;
    const g = globalOpts();
    if (g.dryRun) return new DryRunStore(fileStore(), io, stateDir(), { json: !!g.json, verbose: !!g.verbose });
    return new EngineStore(fileStore(), engine, true, async () => (await getWired()) !== null);
  };

  return {
    io,
    stateDir,
    store: () => (store ??= make()),
    now: io.now,
    runtime,
    backend: async () => {
      await engine();
      await daemon?.settle?.(); // its rules as compiled, not a rule edit's leftovers
      return (await getWired())!.backend;
    },
    netns: async () => {
      const w = await getWired();
      if (!w?.netns) throw new QnetError(diag('QNET5103', 'running programs in qubes needs the netns backend', { hint: 'run as root with nftables installed' }));
      return w.netns;
    },
    setExitCode: (c) => void (code = c),
    applyStatus: () => daemon?.wired.engine.status,
    exitCode: () => code,
  };
}
