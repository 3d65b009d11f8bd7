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
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChildSession } from './child-session.js';

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

export class NftSession extends ChildSession {
  private readonly file: string;
  private queue: Promise<unknown>;
  /** Loads queued and not yet started: a warm-up runs only when this is 0 (never in front of a load). */
  private pending = 0;
  /** Whether nft -i answered its first exchange as expected. */
  started = false;
  /**
   * Whether nft answered that exchange with something other than the mark: this nft cannot be
   * driven so. A start that merely failed (namespace gone, a busy host's timeout) leaves it false.
   */
  refused = false;

  /** `netnsPath`: the namespace's file (/run/netns/NAME); `dir`: a private directory for the files. */
  constructor(netnsPath: string, dir: string, name: string) {
    // sh only to join nft's stderr to its stdout, in order; exec leaves nft alone in the process.
    super(['nsenter', `--net=${netnsPath}`, '--', 'sh', '-c', 'exec nft -i 2>&1'], 'nft -i');
    this.file = join(dir, `${name}.nft`);
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

  protected answerEnd(out: string): readonly [number, number] | undefined {
    const at = out.indexOf(MARK);
    return at < 0 ? undefined : [at, at + MARK.length];
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
        if (this.pending > 0 || this.ended) return;
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
    if (this.ended) throw this.ended;
    await writeFile(this.file, text, { mode: 0o600 });
    try {
      const output = await this.exchange(`include "${this.file}"\n${MARK_COMMAND}`, timeoutMs);
      if (output.trim()) throw new SessionError(`nft refused the transaction: ${output.trim().split('\n')[0]}`, output);
    } finally {
      await rm(this.file, { force: true });
    }
  }
}
