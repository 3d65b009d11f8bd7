// The drop log's owner (the daemon's engine): one reader per running netvm (backend.readDrops),
// started after a converge brings the netvm up and stopped before its namespace is torn down (a
// reader holds its namespace). What they read is mapped back, through the structured origin, to the
// qube and the rule as it reads now, kept in a ring of the last `capacity` entries, and announced as
// `dropped` events at a bounded rate (the kernel's `limit` already bounds what is logged per rule).
import type { Backend, DropReader, DropRecord } from '../backend/backend.js';
import { DROP_LOG, type DropEntry } from '../model/drop-log.js';
import { warning } from '../model/diagnostics.js';
import { describeOrigin } from '../model/origin.js';
import type { Model } from '../model/qube.js';
import { effectiveRules } from '../model/rule.js';
import { formatApiRule } from '../model/rule-format.js';
import type { EngineEvent } from './types.js';

export interface DropLogOptions {
  /** Entries kept (the oldest go first). */
  capacity?: number;
  /** `dropped` events per second at most, beyond the kernel's own limit per rule. */
  eventsPerSecond?: number;
}

export class DropLog {
  private readonly readers = new Map<string, DropReader>();
  private readonly ring: DropEntry[] = [];
  private readonly capacity: number;
  private readonly perSecond: number;
  private tokens: number;
  private refilled = Date.now();
  /** Nodes whose reader ended by itself: said once, until one of theirs reads a packet again. */
  private readonly failed = new Set<string>();
  private model?: Model;

  constructor(
    private readonly backend: Backend,
    private readonly emit: (e: EngineEvent) => void,
    o: DropLogOptions = {},
  ) {
    this.capacity = o.capacity ?? 1000;
    this.perSecond = o.eventsPerSecond ?? 4 * DROP_LOG.rate;
    this.tokens = this.perSecond;
  }

  /** Nodes with a reader now, and its process id (tests check none outlives its netvm). */
  get running(): Map<string, number | undefined> {
    return new Map([...this.readers].map(([n, r]) => [n, r.pid]));
  }

  /** A reader for each running netvm of `model` that has a namespace; none for the others. */
  async sync(model: Model, live: ReadonlySet<string>): Promise<void> {
    this.model = model;
    const read = this.backend.readDrops?.bind(this.backend);
    if (!read) return;
    const want = new Set([...model.qubes.values()].filter((q) => q.provides_network && q.state === 'Running' && live.has(q.name)).map((q) => q.name));
    await this.stop([...this.readers.keys()].filter((n) => !want.has(n)));
    for (const n of want) {
      if (this.readers.has(n)) continue;
      const reader = read(
        n,
        (d) => this.record(d),
        (why) => {
          if (this.readers.get(n) !== reader) return;
          this.readers.delete(n);
          if (this.failed.has(n)) return;
          this.failed.add(n);
          this.emit({ type: 'warning', diag: warning('QNET5120', `the drop log of ${n} stopped: ${why}`, { qube: n, hint: 'apt-get install tcpdump; the next change starts it again' }) });
        },
      );
      this.readers.set(n, reader);
    }
  }

  /** The model rule numbers are read against from now on (a rule edit's, which converges nothing). */
  see(model: Model): void {
    this.model = model;
  }

  /** Stop the readers of these nodes (before their namespaces go). */
  async stop(nodes: readonly string[]): Promise<void> {
    await Promise.all(
      nodes.map(async (n) => {
        const r = this.readers.get(n);
        this.readers.delete(n);
        await r?.stop();
      }),
    );
  }

  stopAll(): Promise<void> {
    return this.stop([...this.readers.keys()]);
  }

  /** The entries kept, oldest first; of one qube only with `qube`. */
  entries(qube?: string): DropEntry[] {
    return qube === undefined ? [...this.ring] : this.ring.filter((e) => e.qube === qube);
  }

  private record(d: DropRecord): void {
    this.failed.delete(d.node);
    const o = d.origin;
    // Only qnet's own refusing rules log to this group; anything else (a user's rule in custom-*) is not mapped.
    if (!o || (o.kind !== 'rule' && o.kind !== 'rules' && o.kind !== 'policy')) return;
    // A packed set's first rule: what "allow this" goes before. Its text only for a single rule (the
    // packet may have matched any rule of the set).
    const index = o.kind === 'rule' ? o.index : o.kind === 'rules' ? o.ranges[0]![0] : undefined;
    const q = this.model?.qubes.get(o.qube);
    const rule = o.kind !== 'rule' || !q ? undefined : effectiveRules(q.rules, Math.floor(d.time / 1000))[o.index];
    const entry: DropEntry = {
      time: new Date(d.time).toISOString(),
      hop: d.node,
      qube: o.qube,
      origin: o,
      decidedBy: describeOrigin(o),
      ...(index !== undefined ? { rule: index } : {}),
      ...(rule ? { ruleText: formatApiRule(rule) } : {}),
      family: d.family,
      src: d.src,
      dst: d.dst,
      proto: d.proto,
      ...(d.dport !== undefined ? { dport: d.dport } : {}),
      ...(d.icmpType !== undefined ? { icmpType: d.icmpType } : {}),
      length: d.length,
    };
    this.ring.push(entry);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    const now = Date.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilled) / 1000) * this.perSecond);
    this.refilled = now;
    if (this.tokens < 1) return; // kept, not announced: a reader of the log sees it
    this.tokens--;
    this.emit({ type: 'dropped', entry });
  }
}
