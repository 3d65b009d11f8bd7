// What every command gets: the IO seam, the state directory, the clock, and `call` — an operation
// through the transport chosen once for this command (the daemon's, else the state directory's).
// With --dry-run a change is previewed instead: its report is printed and nothing changes.
import { resolveStateDir } from '../store/paths.js';
import type { OpResult } from '../ops/types.js';
import type { PreviewValue } from './dry-run.js';
import type { Io } from './io.js';
import { chooseTransport, type Transport } from './transport.js';

export interface GlobalOpts {
  state?: string;
  dryRun?: boolean;
  verbose?: boolean;
}

export interface Ctx {
  io: Io;
  stateDir(): string;
  now(): number;
  globalOpts(): GlobalOpts;
  /** Run a read operation, or a change (previewed under --dry-run). */
  call<O = unknown>(name: string, input: unknown, kind?: 'read' | 'change'): Promise<OpResult<O>>;
  transport(): Promise<Transport>;
  setExitCode(code: number): void;
  exitCode(): number;
}

export function makeCtx(io: Io, globalOpts: () => GlobalOpts): Ctx {
  const stateDir = () => resolveStateDir(globalOpts().state, io.env);
  let transport: Promise<Transport> | undefined;
  let code = 0;
  const ctx: Ctx = {
    io,
    stateDir,
    now: io.now,
    globalOpts,
    transport: () => (transport ??= chooseTransport(stateDir(), io)),
    async call<O>(name: string, input: unknown, kind: 'read' | 'change' = 'read'): Promise<OpResult<O>> {
      const t = await ctx.transport();
      const g = globalOpts();
      if (kind === 'change' && g.dryRun) {
        const r = await t.call<{ values: O[] } & PreviewValue>('preview', { ops: [{ name, input }] });
        const { printReport } = await import('./dry-run.js');
        printReport(io, r.value, !!g.verbose);
        return { value: r.value.values[0]!, warnings: r.warnings };
      }
      return t.call<O>(name, input);
    },
    setExitCode: (c) => void (code = c),
    exitCode: () => code,
  };
  return ctx;
}
