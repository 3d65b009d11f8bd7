// "When did this rule last count a packet": the daemon remembers each rule counter it read and the
// time it last saw the count change, so every read says when a rule was last hit (to the
// resolution of how often someone reads: the manager's counters page reads every few seconds).
// Nothing is sampled while nobody looks; a count first seen non-zero was hit at an unknown time.
import type { RuleCounter } from '../backend/backend.js';

interface Seen {
  packets: number;
  /** Milliseconds since the epoch; null: hit before anyone read it. */
  lastHit: number | null;
}

/** Memory is per node and replaced on each read, so rules that went away are forgotten. */
export class CounterMemory {
  private readonly nodes = new Map<string, Map<string, Seen>>();

  /** Each counter's last hit (ms since the epoch, or null) for `rows`, read from `node` at `now`. */
  stamp(node: string, rows: readonly RuleCounter[], now: number): (number | null)[] {
    const before = this.nodes.get(node) ?? new Map<string, Seen>();
    const after = new Map<string, Seen>();
    const nth = new Map<string, number>();
    const out = rows.map((r) => {
      // Rules are identified by where they are and what they say; twins are told apart by order.
      const base = `${r.family} ${r.table} ${r.chain} ${r.comment}`;
      const k = nth.get(base) ?? 0;
      nth.set(base, k + 1);
      const key = `${base} #${k}`;
      const was = before.get(key);
      // A count that grew, or restarted (the rule was reloaded) and counted again, was hit since the last read.
      const lastHit = was === undefined ? null : r.packets !== was.packets && r.packets > 0 ? now : r.packets === 0 ? null : was.lastHit;
      after.set(key, { packets: r.packets, lastHit });
      return lastHit;
    });
    this.nodes.set(node, after);
    return out;
  }
}
