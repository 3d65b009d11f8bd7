// What every compiler pass sees. Passes report user problems through `report` and never throw for
// them (EXAMPLES.md Example 14); a throw is a bug in qnet.
import type { Resolutions } from './dns.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { NetPlan } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { FIREWALL_SHARD_CLIENTS } from './names.js';

export type Layout = 'qnet' | 'qubes-linear';
export type IpFamily = 'ip' | 'ip6';

export interface CompileInput {
  model: Model;
  plan: NetPlan;
  resolutions: Resolutions;
  /** Seconds since the epoch: rules whose `expire` is before it are gone. */
  now: number;
  layout?: Layout;
  /** Clients per `qubes-firewall` shard (names.ts FIREWALL_SHARD_CLIENTS): tests make it small. */
  shardClients?: number;
}

export interface CompileContext {
  readonly model: Model;
  readonly plan: NetPlan;
  readonly resolutions: Resolutions;
  readonly now: number;
  readonly layout: Layout;
  readonly shardClients: number;
  report(d: Diagnostic): void;
}

/** A context whose diagnostics are deduplicated (the ip and ip6 passes meet the same rule twice). */
export function makeContext(input: CompileInput): { ctx: CompileContext; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const ctx: CompileContext = {
    model: input.model,
    plan: input.plan,
    resolutions: input.resolutions,
    now: input.now,
    layout: input.layout ?? 'qnet',
    shardClients: input.shardClients ?? FIREWALL_SHARD_CLIENTS,
    report(d) {
      const k = JSON.stringify([d.code, d.qube, d.ruleIndex, d.message]);
      if (seen.has(k)) return;
      seen.add(k);
      diagnostics.push(d);
    },
  };
  return { ctx, diagnostics };
}
