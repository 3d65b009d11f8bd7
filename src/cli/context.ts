// What every command gets: the IO seam, the state directory and its store, the clock.
import { FileStore } from '../store/file-store.js';
import { resolveStateDir } from '../store/paths.js';
import type { Store } from '../store/store.js';
import type { Io } from './io.js';
import { DryRunStore } from './dry-run.js';

export interface Ctx {
  io: Io;
  stateDir(): string;
  store(): Store;
  now(): number;
}

export interface GlobalOpts {
  state?: string;
  dryRun?: boolean;
  verbose?: boolean;
  json?: boolean;
}

export function makeCtx(io: Io, globalOpts: () => GlobalOpts): Ctx {
  let store: Store | undefined;
  const stateDir = () => resolveStateDir(globalOpts().state, io.env);
  const make = (): Store => {
    const g = globalOpts();
    const files = new FileStore(stateDir(), { now: io.now });
    return g.dryRun ? new DryRunStore(files, io, stateDir(), { json: !!g.json, verbose: !!g.verbose }) : files;
  };
  return { io, stateDir, store: () => (store ??= make()), now: io.now };
}
