// resolve-main kept running inside a namespace (`--serve`), for the daemon: its DNS refreshes and
// the new names of its edits ask this process instead of starting one per batch. A start cost the
// daemon a fork of its large heap (9 ms of its event loop at 1,000 qubes) and node's own start
// (≈ 40 ms of CPU beside the edit being loaded on a two-core machine). Requests go one at a time,
// each answered by one line (child-session.ts); a session that fails, answers too long or outlives a
// request's deadline is closed, and its owner (NetnsBackend) opens another for the next batch.
// Like an nft session, the process holds its namespace: the owner closes it when the namespace goes.
import { ChildSession } from './child-session.js';
import { nodeScriptArgv, type ResolveRequest } from './resolver.js';

/** An answer line longer than this is not resolve-main's (a few hundred names make kilobytes). */
const MAX_LINE = 8 * 1024 * 1024;

export class ResolverSession extends ChildSession {
  private queue: Promise<unknown> = Promise.resolve();

  /** `netns`: the namespace's name (`ip netns exec`, as the one-shot resolver: its /etc/netns too). */
  constructor(netns: string) {
    super(['ip', 'netns', 'exec', netns, ...nodeScriptArgv('resolve-main'), '--serve'], 'resolver', MAX_LINE);
  }

  protected answerEnd(out: string): readonly [number, number] | undefined {
    const at = out.indexOf('\n');
    return at < 0 ? undefined : [at, at + 1];
  }

  /** resolve-main's answer to `req` (its JSON, unchecked), after the requests before it. */
  ask(req: ResolveRequest, timeoutMs: number): Promise<unknown> {
    const run = this.queue.then(() => this.exchange(`${JSON.stringify(req)}\n`, timeoutMs));
    this.queue = run.catch(() => {});
    return run.then((line) => JSON.parse(line) as unknown);
  }
}
