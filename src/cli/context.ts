// What every command gets: the IO seam, the state directory and its store, the clock.
import { FileStore } from '../store/file-store.js';
import { resolveStateDir } from '../store/paths.js';
import type { Store } from '../store/store.js';
import type { Io } from './io.js';

export interface Ctx {
  io: Io;
  stateDir(): string;
  store(): Store;
  now(): number;
}

export function makeCtx(io: Io, globalOpts: () => { state?: string }): Ctx {
  let store: Store | undefined;
  const stateDir = () => resolveStateDir(globalOpts().state, io.env);
  return {
    io,
    stateDir,
    store: () => (store ??= new FileStore(stateDir(), { now: io.now })),
    now: io.now,
  };
}
