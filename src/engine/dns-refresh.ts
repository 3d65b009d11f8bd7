// The DNS answers the kernel's sets hold: names rules use are resolved when new and again when
// their TTL runs out; the daemon's refresh timer asks nextRefresh() when to look again, and only
// the qubes whose rules name a changed answer are recompiled (through the rule-edit path).
import { namesToResolve } from '../compile/compile.js';
import type { Resolution, Resolver } from '../compile/dns.js';
import { warning, type Diagnostic } from '../model/diagnostics.js';
import type { Model } from '../model/qube.js';
import { effectiveRules } from '../model/rule.js';

export class DnsAnswers {
  readonly resolutions = new Map<string, Resolution>();
  /** When each name's answer runs out (now + TTL), for the refresh timer. */
  private readonly expiresAt = new Map<string, number>();

  constructor(
    private readonly resolver: Resolver,
    private readonly warn: (d: Diagnostic) => void,
  ) {}

  /**
   * Resolve the names rules use (of `only`'s qubes, or all): new names now, known names when their
   * TTL has run out (`all`: every name now). Returns the names whose answer is new or differs from the one held.
   */
  async resolve(model: Model, now: number, only?: ReadonlySet<string>, all = false): Promise<Set<string>> {
    const due = namesToResolve(model, now, only).filter((n) => all || !this.resolutions.has(n) || this.expiresAt.get(n)! <= now);
    const changed = new Set<string>();
    if (!due.length) return changed;
    for (const [n, r] of await this.resolver.resolveAll(due)) {
      const old = this.resolutions.get(n);
      if (!old || old.a.join() !== r.a.join() || old.aaaa.join() !== r.aaaa.join() || old.error !== r.error) changed.add(n);
      this.resolutions.set(n, r);
      this.expiresAt.set(n, now + r.ttl);
      if (r.error) this.warn(warning('QNET4001', `cannot resolve '${n}' (${r.error}): the rules that use it are disabled`));
    }
    return changed;
  }

  /** Seconds until the next answer expires, or undefined (at least 1). */
  nextRefresh(now: number): number | undefined {
    let min: number | undefined;
    for (const t of this.expiresAt.values()) min = Math.min(min ?? Infinity, t - now);
    return min === undefined ? undefined : Math.max(1, min);
  }
}

/** The qubes whose rules in effect name one of these hosts. */
export function qubesNaming(model: Model, names: ReadonlySet<string>, now: number): string[] {
  return [...model.qubes.values()]
    .filter((q) => effectiveRules(q.rules, now).some((r) => r.dsthost?.type === 'dsthost' && names.has(r.dsthost.text)))
    .map((q) => q.name);
}
