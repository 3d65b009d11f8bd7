// What the daemon's long-lived children share (nft -i: nft-session.ts; resolve-main --serve:
// resolver-session.ts): a process driven over its stdin and stdout, one exchange at a time, each
// with a deadline that ends the session; an idle session never keeps its owner's process alive.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { toolEnv } from './runner.js';

export abstract class ChildSession {
  protected readonly child: ChildProcessWithoutNullStreams;
  /** What the child printed and no exchange took yet. */
  protected out = '';
  private waiting?: { resolve: (output: string) => void; reject: (e: Error) => void };
  private dead?: Error;

  /** `what` names the child in errors (`nft -i exited (1)`); more than `maxOutput` unanswered ends it. */
  constructor(
    argv: readonly string[],
    private readonly what: string,
    private readonly maxOutput = Infinity,
  ) {
    const [cmd, ...args] = argv;
    this.child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => this.read(s));
    this.child.stderr.resume();
    this.child.stdin.on('error', () => {});
    this.child.on('error', (e) => this.die(e));
    this.child.on('exit', (code, signal) => this.die(new Error(`${what} exited (${signal ?? code})`)));
    this.hold(false);
  }

  /**
   * Where the answer in `out` ends: [its length, where what follows it starts], or undefined while
   * it is not all there.
   */
  protected abstract answerEnd(out: string): readonly [number, number] | undefined;

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /** Why it ended, if it did. */
  protected get ended(): Error | undefined {
    return this.dead;
  }

  /** Send `input`; resolve with the child's answer (answerEnd). */
  protected exchange(input: string, timeoutMs: number): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    this.hold(true);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.close(new Error(`${this.what} did not answer within ${timeoutMs} ms`)), timeoutMs);
      const done = () => (clearTimeout(timer), this.hold(false));
      this.waiting = { resolve: (o) => (done(), resolve(o)), reject: (e) => (done(), reject(e)) };
      this.child.stdin.write(input);
    });
  }

  private read(s: string): void {
    this.out += s;
    const end = this.answerEnd(this.out);
    if (!end) {
      if (this.out.length > this.maxOutput) this.close(new Error(`${this.what}: answer too long`));
      return;
    }
    if (!this.waiting) return;
    const output = this.out.slice(0, end[0]);
    this.out = this.out.slice(end[1]);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve(output);
  }

  private hold(on: boolean): void {
    // A closed stream is skipped: net.Socket.ref()/unref() on a socket without a handle queue a
    // 'connect' listener that never fires — nft's stderr closes at once (2>&1), so every exchange
    // leaked two (MaxListenersExceededWarning after a few loads).
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as { ref(): void; unref(): void; destroyed?: boolean }[])
      if (!h.destroyed) on ? h.ref() : h.unref();
  }

  private die(e: Error): void {
    this.dead ??= e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.dead);
  }

  /** End the process (its namespace is then free to go). */
  close(why = new Error(`${this.what} closed`)): void {
    this.die(why);
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}
