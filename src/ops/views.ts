// The shapes that leave qnet: what `--json` prints and what the API answers. Plain JSON data (no
// Maps, no class instances), the same through every door; their JSON Schemas are in schemas/.
import * as v from 'valibot';
import { gateway, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Model, Qube } from '../model/qube.js';
import { formatApiRule, formatClientRule } from '../model/rule-format.js';
import type { Rule } from '../model/rule.js';
import { rulesUnknown } from '../store/rules-problem.js';
import type { ApplyStatusView } from './types.js';

const str = v.string();
const optStr = v.nullable(str);

export const QubeViewSchema = v.strictObject({
  name: str,
  qid: v.number(),
  state: v.picklist(['Running', 'Halted']),
  /** Running, but its netvm is not. */
  detached: v.boolean(),
  /** How its rules stand in the kernel (a daemon knows): applied, blocked-fallback, failed. */
  rules: v.optional(str),
  rules_problem: v.optional(str),
  class: str,
  label: str,
  netvm: optStr,
  netvm_is_default: v.boolean(),
  provides_network: v.boolean(),
  ip: optStr,
  ip6: optStr,
  gateway: optStr,
  features: v.record(str, str),
});
export type QubeView = v.InferOutput<typeof QubeViewSchema>;

/** Running, but its netvm is not: its link is gone until the netvm starts again (then it is reattached). */
export function isDetached(m: Model, q: Qube): boolean {
  const nv = netvmName(m, q);
  return q.state === 'Running' && nv !== null && m.qubes.get(nv)?.state !== 'Running';
}

export function qubeView(m: Model, q: Qube, status?: ApplyStatusView): QubeView {
  return {
    name: q.name,
    qid: q.qid,
    state: q.state,
    detached: isDetached(m, q),
    ...(status ? { rules: status.state } : {}),
    // A broken rules file (the qube is blocked, its rules unknown), else what the kernel refused.
    ...(q.rulesProblem || status?.diag ? { rules_problem: (q.rulesProblem ?? status!.diag!).message } : {}),
    class: q.klass,
    label: q.label,
    netvm: netvmName(m, q),
    netvm_is_default: q.netvm === undefined,
    provides_network: q.provides_network,
    ip: qubeIp(m, q),
    ip6: qubeIp6(m, q),
    gateway: gateway(m, q),
    features: q.features,
  };
}

/** A rule as `qnet firewall VM --json` shows it: its number, its fields, and its API and client forms. */
export const RuleViewSchema = v.strictObject({
  no: v.number(),
  action: v.picklist(['accept', 'drop']),
  proto: v.optional(v.picklist(['tcp', 'udp', 'icmp'])),
  dsthost: v.optional(str),
  dstports: v.optional(v.strictObject({ start: v.number(), end: v.number() })),
  icmptype: v.optional(v.number()),
  specialtarget: v.optional(v.literal('dns')),
  /** Seconds since the epoch. */
  expire: v.optional(v.number()),
  comment: v.optional(str),
  /** The Admin API line (lossless: parseApiRule gives the rule back). */
  api: str,
  /** qvm-firewall --raw. */
  raw: str,
});
export type RuleView = v.InferOutput<typeof RuleViewSchema>;

const ruleRef = v.looseObject({ table: v.optional(str), chain: v.optional(str), index: v.optional(v.number()), origin: v.optional(v.unknown()) });

/** One answer of `check`: the simulator's explanation (sim/walk.ts SimResult), the explain contract. */
export const CheckResultSchema: v.GenericSchema = v.looseObject({
  probe: v.looseObject({ from: str, to: str, proto: str }),
  direction: v.picklist(['original', 'reply']),
  verdict: v.picklist(['accept', 'drop', 'reject']),
  node: str,
  deliveredTo: v.optional(str),
  reject: v.optional(v.unknown()),
  by: v.optional(ruleRef),
  reason: str,
  hops: v.array(v.looseObject({ node: str, packet: v.looseObject({ saddr: str, daddr: str, proto: str }), outcome: str, rulesEvaluated: v.number() })),
  rulesEvaluated: v.number(),
  reply: v.optional(v.lazy(() => CheckResultSchema)),
});

export function ruleView(r: Rule, no: number): RuleView {
  return { no, ...r, dsthost: r.dsthost?.text, dstports: r.dstports, api: formatApiRule(r), raw: formatClientRule(r) } as RuleView;
}

/** Warnings that say whose rules are unknown (broken files) and which qubes.json entries were left out. */
export function problemsOf(m: Model, qubes: Iterable<Qube> = m.qubes.values()): Diagnostic[] {
  const out: Diagnostic[] = [...(m.problems ?? [])].map((d) => ({ ...d, severity: 'warning' as const }));
  for (const q of qubes) if (q.rulesProblem) out.push({ ...rulesUnknown(q), severity: 'warning' });
  return out;
}

export const withQube = (ds: readonly Diagnostic[], qube: string): Diagnostic[] => ds.map((d) => ({ ...d, qube }));
