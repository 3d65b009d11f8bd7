// A long-lived `nft -i` inside one namespace, for the daemon's rule edits. A transaction is written
// to a file and loaded with `include "<file>"` (one input line: one atomic batch, as `nft -f`),
// followed by a `describe` line whose fixed answer marks the end; anything nft says before that
// answer is its error. Measured at 1,000 qubes: `nsenter … nft -f -` spent 10–12 ms per edit that
// this does not — the daemon's fork (3–5 ms with its large heap), nsenter's exec, and nft's start
// (eleven shared libraries, its tables of names).
//
// nft rebuilds its cache of the namespace's tables, chains and sets (not rules) for a transaction
// whenever the kernel's generation differs from the cache's: after every commit, its own included.
// At 1,000 clients that is 3,000 sets and 2,000 chains, 12–15 ms of every edit; any element command
// also dumps every set's elements first (200 ms at 100k elements). So after a load, once nothing
// else waits, the session warms the cache with a command the owner gives that needs what the next
// load will and commits nothing: `add table F N { }` of a table that is there, or `add element` of an
// element that is there. The generation stays, so the next transaction finds the cache current
// (measured: a 24-rule overlay 24 ms → 11 ms; an element add 200 ms → 9 ms). nft checks the
// generation before every use, so a commit by anyone else in between only means the dump happens on
// the hot path again; a stale cache is never used.
//
// The process holds its namespace: the owner closes the session when the namespace goes (a netvm
// torn down, or found gone), or the namespace would live on, unnamed, with its links.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toolEnv } from './runner.js';

/** `describe meta length` answers this one line, needs no cache and touches nothing. */
const MARK_COMMAND = 'describe meta length\n';
const MARK = 'meta expression, datatype integer (integer), 32 bits\n';
/** A warm-up is one `add table|element` line (see above): nothing else is sent that way. */
const WARM_COMMAND = /^add (table|element) (ip|ip6|inet) [^\n]{1,4000}$/;
/** nft -i starts in a few ms; a mark not seen by then will not be. */
const START_TIMEOUT_MS = 3000;

export class SessionError extends Error {
  constructor(
    message: string,
    /** What nft printed: its errors, as `nft -f` prints them on stderr. */
    readonly output: string,
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

export class NftSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly file: string;
  private out = '';
  private waiting?: { resolve: (output: string) => void; reject: (e: Error) => void };
  private queue: Promise<unknown>;
  /** Loads queued and not yet started: a warm-up runs only when this is 0 (never in front of a load). */
  private pending = 0;
  private dead?: Error;
  /** Whether nft -i answered its first exchange as expected. */
  started = false;
  /**
   * Whether nft answered that exchange with something other than the mark: this nft cannot be
   * driven so. A start that merely failed (namespace gone, a busy host's timeout) leaves it false.
   */
  refused = false;

  /** `netnsPath`: the namespace's file (/run/netns/NAME); `dir`: a private directory for the files. */
  constructor(netnsPath: string, dir: string, name: string) {
    this.file = join(dir, `${name}.nft`);
    // sh only to join nft's stderr to its stdout, in order; exec leaves nft alone in the process.
    this.child = spawn('nsenter', [`--net=${netnsPath}`, '--', 'sh', '-c', 'exec nft -i 2>&1'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: toolEnv(),
    });
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => this.read(s));
    this.child.stderr.resume();
    this.child.stdin.on('error', () => {});
    this.child.on('error', (e) => this.die(e));
    this.child.on('exit', (code, signal) => this.die(new Error(`nft -i exited (${signal ?? code})`)));
    this.hold(false);
    // The first exchange proves the mark is what this nft answers; otherwise the session is refused
    // at once (and the owner goes back to nft -f) rather than waiting out a load's timeout.
    this.queue = this.exchange(MARK_COMMAND, START_TIMEOUT_MS).then(
      (out) => {
        if (out.trim()) {
          this.refused = true;
          throw new Error(`nft -i did not answer as expected: ${out.trim().split('\n')[0]}`);
        }
        this.started = true;
      },
      (e: Error) => {
        // No mark in time, yet nft said something: it answers otherwise, too.
        if (this.out.trim()) this.refused = true;
        throw e;
      },
    );
    this.queue.catch((e: Error) => this.close(e));
  }

  /** An idle session never keeps its owner's process alive; one waiting for nft does. */
  private hold(on: boolean): void {
    // A closed stream is skipped: net.Socket.ref()/unref() on a socket without a handle queue a
    // 'connect' listener that never fires — nft's stderr closes at once (2>&1), so every exchange
    // leaked two (MaxListenersExceededWarning after a few loads).
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as { ref(): void; unref(): void; destroyed?: boolean }[])
      if (!h.destroyed) on ? h.ref() : h.unref();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /**
   * Load `text` as one transaction. Throws SessionError with nft's output when nft refuses it (the
   * kernel's rules are then as they were), or a plain Error when the session itself failed.
   */
  load(text: string, opts: { timeoutMs?: number; warm?: string } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (opts.warm !== undefined && !WARM_COMMAND.test(opts.warm)) throw new Error(`not a command to warm nft's cache with: ${JSON.stringify(opts.warm)}`);
    this.pending++;
    const run = this.queue.then(() => (this.pending--, this.loadNow(text, timeoutMs)));
    this.queue = run.catch(() => {});
    if (opts.warm !== undefined) this.warm(opts.warm, run, timeoutMs);
    return run;
  }

  /**
   * After `after` (a load) succeeds and unless another load is already waiting, refill nft's cache
   * (see the top of this file) with `command`, which must commit nothing: it adds what is in place.
   */
  warm(command: string, after: Promise<unknown> = this.queue, timeoutMs = 30_000): void {
    if (!WARM_COMMAND.test(command)) throw new Error(`not a command to warm nft's cache with: ${JSON.stringify(command)}`);
    const warm = after.then(
      async () => {
        if (this.pending > 0 || this.dead) return;
        // What nft says here changes nothing: a failed warm-up only means the next load dumps again.
        await this.exchange(`${command}\n${MARK_COMMAND}`, timeoutMs);
        this.warmed++;
      },
      () => {},
    );
    this.queue = warm.catch(() => {});
  }

  /** Warm-ups done (tests, benches). */
  warmed = 0;

  /** Once every load and warm-up queued so far has ended (however it ended). */
  idle(): Promise<void> {
    return this.queue.then(
      () => {},
      () => {},
    );
  }

  private async loadNow(text: string, timeoutMs: number): Promise<void> {
    if (this.dead) throw this.dead;
    await writeFile(this.file, text, { mode: 0o600 });
    try {
      const output = await this.exchange(`include "${this.file}"\n${MARK_COMMAND}`, timeoutMs);
      if (output.trim()) throw new SessionError(`nft refused the transaction: ${output.trim().split('\n')[0]}`, output);
    } finally {
      await rm(this.file, { force: true });
    }
  }

  /** Send `input`; resolve with what nft printed before the mark. */
  private exchange(input: string, timeoutMs: number): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    this.hold(true);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.close(new Error(`nft -i did not answer within ${timeoutMs} ms`)), timeoutMs);
      const done = () => (clearTimeout(timer), this.hold(false));
      this.waiting = {
        resolve: (o) => (done(), resolve(o)),
        reject: (e) => (done(), reject(e)),
      };
      this.child.stdin.write(input);
    });
  }

  private read(s: string): void {
    this.out += s;
    const at = this.out.indexOf(MARK);
    if (at < 0 || !this.waiting) return;
    const output = this.out.slice(0, at);
    this.out = this.out.slice(at + MARK.length);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve(output);
  }

  private die(e: Error): void {
    this.dead ??= e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.dead);
  }

  /** End the process (its namespace is then free to go). */
  close(why = new Error('nft session closed')): void {
    this.die(why);
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}
