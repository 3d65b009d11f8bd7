// resolve-main kept running inside a namespace (`--serve`), for the daemon: its DNS refreshes and
// the new names of its edits ask this process instead of starting one per batch. A start cost the
// daemon a fork of its large heap (9 ms of its event loop at 1,000 qubes) and node's own start
// (≈ 40 ms of CPU beside the edit being loaded on a two-core machine). Requests go one at a time,
// each answered by one line; a session that fails, says something unexpected or outlives a
// request's deadline is closed, and its owner (NetnsBackend) opens another for the next batch.
// Like an nft session, the process holds its namespace: the owner closes it when the namespace goes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { nodeScriptArgv, type ResolveRequest } from './resolver.js';
import { toolEnv } from './runner.js';

/** An answer line longer than this is not resolve-main's (a few hundred names make kilobytes). */
const MAX_LINE = 8 * 1024 * 1024;

export class ResolverSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private queue: Promise<unknown> = Promise.resolve();
  private waiting?: { resolve: (line: string) => void; reject: (e: Error) => void };
  private dead?: Error;

  /** `netns`: the namespace's name (`ip netns exec`, as the one-shot resolver: its /etc/netns too). */
  constructor(netns: string) {
    this.child = spawn('ip', ['netns', 'exec', netns, ...nodeScriptArgv('resolve-main'), '--serve'], { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => this.read(s));
    this.child.stderr.resume();
    this.child.stdin.on('error', () => {});
    this.child.on('error', (e) => this.die(e));
    this.child.on('exit', (code, signal) => this.die(new Error(`resolver exited (${signal ?? code})`)));
    this.hold(false);
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** resolve-main's answer to `req` (its JSON, unchecked), after the requests before it. */
  ask(req: ResolveRequest, timeoutMs: number): Promise<unknown> {
    const run = this.queue.then(() => this.exchange(`${JSON.stringify(req)}\n`, timeoutMs));
    this.queue = run.catch(() => {});
    return run.then((line) => JSON.parse(line) as unknown);
  }

  private exchange(input: string, timeoutMs: number): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    this.hold(true);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.close(new Error(`resolver did not answer within ${timeoutMs} ms`)), timeoutMs);
      const done = () => (clearTimeout(timer), this.hold(false));
      this.waiting = { resolve: (l) => (done(), resolve(l)), reject: (e) => (done(), reject(e)) };
      this.child.stdin.write(input);
    });
  }

  private read(s: string): void {
    this.out += s;
    const at = this.out.indexOf('\n');
    if (at < 0) {
      if (this.out.length > MAX_LINE) this.close(new Error('resolver: answer too long'));
      return;
    }
    const line = this.out.slice(0, at);
    this.out = this.out.slice(at + 1);
    const w = this.waiting;
    this.waiting = undefined;
    // A line nobody asked for: this is not the process we think it is.
    if (!w) this.close(new Error('resolver: answer to no request'));
    else w.resolve(line);
  }

  /** An idle session never keeps its owner's process alive; one being asked does. */
  private hold(on: boolean): void {
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
  close(why = new Error('resolver session closed')): void {
    this.die(why);
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}
