// The shapes that leave qnet: what `--json` prints and what the API answers. Plain JSON data (no
// Maps, no class instances), the same through every door; their JSON Schemas are in schemas/.
import { gateway, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Model, Qube } from '../model/qube.js';
import { formatApiRule, formatClientRule } from '../model/rule-format.js';
import type { Rule } from '../model/rule.js';
import type { ApplyStatusView } from './types.js';

export interface QubeView {
  name: string;
  qid: number;
  state: string;
  detached: boolean;
  rules?: string;
  rules_problem?: string;
  class: string;
  label: string;
  netvm: string | null;
  netvm_is_default: boolean;
  provides_network: boolean;
  ip: string | null;
  ip6: string | null;
  gateway: string | null;
  features: Record<string, string>;
}

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
    ...(status ? { rules: status.state, ...(status.diag ? { rules_problem: status.diag.message } : {}) } : {}),
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
export interface RuleView {
  no: number;
  action: string;
  proto?: string;
  dsthost?: string;
  dstports?: { start: number; end: number };
  icmptype?: number;
  specialtarget?: string;
  expire?: number;
  comment?: string;
  /** The Admin API line (lossless: parseApiRule gives the rule back). */
  api: string;
  /** qvm-firewall --raw. */
  raw: string;
}

export function ruleView(r: Rule, no: number): RuleView {
  return { no, ...r, dsthost: r.dsthost?.text, dstports: r.dstports, api: formatApiRule(r), raw: formatClientRule(r) } as RuleView;
}

export const withQube = (ds: readonly Diagnostic[], qube: string): Diagnostic[] => ds.map((d) => ({ ...d, qube }));
