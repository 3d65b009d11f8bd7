// What a command may touch of the outside world. main() uses the process; tests pass buffers, so the
// whole CLI runs in-process with no spawn per assertion.
import { readFileSync } from 'node:fs';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** All of standard input (for `firewall VM set`). */
  readStdin(): Promise<string>;
  env: Record<string, string | undefined>;
  /** Seconds since the epoch. */
  now(): number;
}

export const processIo = (): Io => ({
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  readStdin: async () => readFileSync(0, 'utf8'),
  env: process.env,
  now: () => Math.floor(Date.now() / 1000),
});

/** Collects output; for tests. */
export function bufferIo(opts: { stdin?: string; env?: Record<string, string>; now?: number } = {}) {
  const o: string[] = [];
  const e: string[] = [];
  const io: Io = {
    out: (s) => void o.push(s),
    err: (s) => void e.push(s),
    readStdin: async () => opts.stdin ?? '',
    env: opts.env ?? {},
    now: () => opts.now ?? Math.floor(Date.now() / 1000),
  };
  return { io, stdout: () => o.join(''), stderr: () => e.join('') };
}
