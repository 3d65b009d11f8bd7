// Real probes from inside a qube's namespace, many at once: one long-lived probe-main process per
// source namespace (node start-up costs ~50 ms compiled and ~1 s under tsx, so never one per
// probe), fed batches as JSON lines. The process is ours: it is stopped by its PID (SIGTERM,
// then SIGKILL), it exits by itself when its stdin closes, and every wait here is bounded.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WireAnswer, WireBatch } from './probe-main.js';

export type { KernelClass, Snmp, WireAnswer, WireProbe, WireResult } from './probe-main.js';

/** How to run probe-main: compiled (dist/test/kernel/probe-main.js) or, under tsx, the .ts with tsx's loader. */
export function probeMainArgv(): string[] {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    const script = fileURLToPath(new URL('./probe-main.ts', self));
    return [process.execPath, '--import', import.meta.resolve('tsx'), script];
  }
  return [process.execPath, fileURLToPath(new URL('./probe-main.js', self))];
}

export class NamespaceProber {
  private lines: string[] = [];
  private waiters: ((line: string | undefined) => void)[] = [];
  private buf = '';
  private stderr = '';
  private exited = false;
  private nextId = 1;

  private constructor(
    readonly ns: string,
    private readonly k: ChildProcessWithoutNullStreams,
  ) {
    k.stdout.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    k.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    k.on('exit', () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
  }

  /** Start probe-main inside namespace `ns` and wait until it says it is ready. */
  static async start(ns: string, readyTimeoutMs = 20_000): Promise<NamespaceProber> {
    const [exe, ...args] = probeMainArgv();
    const k = spawn('ip', ['netns', 'exec', ns, exe!, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, QNET_PROBE_MAIN: '1' },
    });
    const p = new NamespaceProber(ns, k);
    const ready = await p.next(readyTimeoutMs);
    if (!ready || !ready.includes('"ready"')) {
      await p.close();
      throw new Error(`prober in ${ns} did not start: ${ready ?? 'no output'} ${p.stderr.trim()}`);
    }
    return p;
  }

  private next(timeoutMs: number): Promise<string | undefined> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = (line: string | undefined) => {
        clearTimeout(t);
        resolve(line);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Send one batch; every probe in it runs at once. Bounded by the batch timeout plus a margin. */
  async run(probes: WireBatch['probes'], timeoutMs: number): Promise<WireAnswer> {
    const id = this.nextId++;
    this.k.stdin.write(JSON.stringify({ id, timeoutMs, probes } satisfies WireBatch) + '\n');
    const line = await this.next(timeoutMs + 10_000);
    if (line === undefined) throw new Error(`prober in ${this.ns} gave no answer for batch ${id}${this.exited ? ' (exited)' : ''}: ${this.stderr.trim()}`);
    const a = JSON.parse(line) as WireAnswer;
    if (a.id !== id) throw new Error(`prober in ${this.ns}: answer for batch ${a.id}, expected ${id}`);
    return a;
  }

  /** Close stdin (it exits by itself); SIGTERM then SIGKILL by PID if it lingers; gives up waiting after 6 s. */
  async close(): Promise<void> {
    const k = this.k;
    if (this.exited || k.exitCode !== null || k.signalCode !== null) return;
    const gone = new Promise<void>((r) => k.once('exit', () => r()));
    k.stdin.end();
    const term = setTimeout(() => k.kill('SIGTERM'), 2000);
    const kill = setTimeout(() => k.kill('SIGKILL'), 4000);
    // Bounded as QubeProcess.stop is: a process stuck in the kernel may not die even on SIGKILL.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise<void>((r) => (bound = setTimeout(r, 6000)))]);
    clearTimeout(term);
    clearTimeout(kill);
    clearTimeout(bound);
  }
}
