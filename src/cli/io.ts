// What a command may touch of the outside world. main() uses the process; tests pass buffers, so the
// whole CLI runs in-process with no spawn per assertion.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** All of standard input (for `firewall VM set`). */
  readStdin(): Promise<string>;
  env: Record<string, string | undefined>;
  /** Seconds since the epoch. */
  now(): number;
  /** Whether stderr is a terminal: progress lines are written only then. */
  isTTY: boolean;
  /** Ask a yes/no question on the terminal; null when there is no terminal to ask (stdin is not one). */
  confirm(question: string): Promise<boolean | null>;
}

/** y or yes (any case) is yes; anything else, an empty line or end of input is no — as qvm-remove reads it. */
export const isYes = (answer: string | null | undefined): boolean => /^\s*y(es)?\s*$/i.test(answer ?? '');

export const processIo = (): Io => ({
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  readStdin: async () => readFileSync(0, 'utf8'),
  env: process.env,
  now: () => Math.floor(Date.now() / 1000),
  isTTY: !!process.stderr.isTTY,
  confirm: async (question) => {
    if (!process.stdin.isTTY) return null;
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await new Promise<string | null>((res) => {
        rl.once('close', () => res(null)); // ^D: no
        rl.question(question, res);
      });
      return isYes(answer);
    } finally {
      rl.close();
    }
  },
});

/** Collects output; for tests. `tty`: stderr counts as a terminal; `answer`: what the user types at a prompt (none: no terminal). */
export function bufferIo(opts: { stdin?: string; env?: Record<string, string>; now?: number; tty?: boolean; answer?: string } = {}) {
  const o: string[] = [];
  const e: string[] = [];
  const io: Io = {
    out: (s) => void o.push(s),
    err: (s) => void e.push(s),
    readStdin: async () => opts.stdin ?? '',
    env: opts.env ?? {},
    now: () => opts.now ?? Math.floor(Date.now() / 1000),
    isTTY: opts.tty ?? false,
    confirm: async (question) => {
      if (opts.answer === undefined) return null;
      e.push(question + opts.answer + '\n');
      return isYes(opts.answer);
    },
  };
  return { io, stdout: () => o.join(''), stderr: () => e.join('') };
}
