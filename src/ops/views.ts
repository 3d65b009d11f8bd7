// The shapes that leave qnet: what `--json` prints and what the API answers. Plain JSON data (no
// Maps, no class instances), the same through every door; their JSON Schemas are in schemas/.
import * as v from 'valibot';
import { gateway, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Model, Qube } from '../model/qube.js';
import { formatApiRule, formatClientRule } from '../model/rule-format.js';
import type { Rule } from '../model/rule.js';
import type { Resolution } from '../compile/dns.js';
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

/** A rule in the editor's view (firewall.view): RuleView without the client form, with its shape and shadow. */
const { raw: _raw, ...ruleFields } = RuleViewSchema.entries;
export const FirewallRowSchema = v.strictObject({
  ...ruleFields,
  /** Which kind of destination `dsthost` is. */
  dsttype: v.optional(v.picklist(['dst4', 'dst6', 'dsthost'])),
  /** An earlier rule covers this one: it never matches (QNET1906). */
  shadowedBy: v.optional(v.number()),
});
export type FirewallRow = v.InferOutput<typeof FirewallRowSchema>;

/** API lines of frozen rules (see model/shadow.ts SPACES): a 100k-rule view formats only what changed. */
const API_LINES = new WeakMap<Rule, string>();
export function apiLine(r: Rule): string {
  let line = API_LINES.get(r);
  if (line === undefined) {
    line = formatApiRule(r);
    if (Object.isFrozen(r)) API_LINES.set(r, line);
  }
  return line;
}

export function editorRow(r: Rule, no: number, shadowedBy: number | undefined): FirewallRow {
  const row = { no, ...r, dsthost: r.dsthost?.text, api: apiLine(r) } as FirewallRow;
  if (r.dsthost) row.dsttype = r.dsthost.type;
  if (shadowedBy !== undefined) row.shadowedBy = shadowedBy;
  return row;
}

/** A name in a qube's rules: what it resolved to, and when it is asked again (a daemon knows). */
export const NameViewSchema = v.strictObject({
  name: str,
  a: v.array(str),
  aaaa: v.array(str),
  /** Why it did not resolve: the rules that use it are disabled (QNET4001). */
  error: v.optional(str),
  ttl: v.optional(v.number()),
  /** Seconds since the epoch. */
  refreshAt: v.optional(v.number()),
});
export type NameView = v.InferOutput<typeof NameViewSchema>;

export function nameView(name: string, r: Resolution | undefined): NameView {
  if (!r) return { name, a: [], aaaa: [], error: 'not looked up' };
  return { name, a: r.a, aaaa: r.aaaa, ...(r.error !== undefined ? { error: r.error } : {}), ttl: r.ttl, ...(r.expiresAt !== undefined ? { refreshAt: r.expiresAt } : {}) };
}

export const ImplicitRowSchema = v.strictObject({
  place: v.picklist(['before', 'after']),
  part: str,
  node: str,
  chain: str,
  action: v.picklist(['accept', 'drop', 'reject', 'dnat']),
  match: str,
  note: str,
});

export const FirewallViewSchema = v.strictObject({
  qube: str,
  netvm: optStr,
  /** The daemon's clock (seconds since the epoch), for expiry countdowns. */
  now: v.number(),
  /** Changes whenever any rule does; '' in a first-screen view (a `limit` below the count): not computed. */
  version: str,
  /** How many rules the list has (`rules` holds the first `limit` of them when a limit was asked). */
  count: v.number(),
  rules: v.array(FirewallRowSchema),
  /** How many of `rules` never match. */
  shadowed: v.number(),
  names: v.array(NameViewSchema),
  implicit: v.array(ImplicitRowSchema),
});
export type FirewallView = v.InferOutput<typeof FirewallViewSchema>;

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
