// The Qubes firewall rule, as data. Parsing and formatting live in rule-parse.ts / rule-format.ts;
// this file is the shape every other part of qnet (store, compiler, simulator) depends on.
// Reference: shared/reference/qubes-firewall.md §2.1–2.2 (dom0) and §3.1 (client).

export type Action = 'accept' | 'drop';
export type Proto = 'tcp' | 'udp' | 'icmp';
export type SpecialTarget = 'dns';

export const ACTIONS: readonly Action[] = ['accept', 'drop'];
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'icmp'];

/**
 * A destination. Qubes stores an address verbatim as typed (`127.0.0.0/08`, `2001:DB8::/32`), so
 * `text` keeps that exact spelling for round-trips; `addr` and `prefix` are what the compiler uses.
 */
export type DstHost =
  | { type: 'dst4'; text: string; addr: string; prefix: number }
  | { type: 'dst6'; text: string; addr: string; prefix: number }
  | { type: 'dsthost'; text: string };

export interface PortRange {
  start: number;
  end: number;
}

export interface Rule {
  action: Action;
  proto?: Proto;
  dsthost?: DstHost;
  dstports?: PortRange;
  icmptype?: number;
  specialtarget?: SpecialTarget;
  /** Seconds since the epoch (UTC). */
  expire?: number;
  comment?: string;
}

/** The rules of a qube. `null` = no firewall.xml: accept everything (Qubes' default). */
export type RuleList = Rule[] | null;

export const ACCEPT_ALL: Rule = Object.freeze({ action: 'accept' }) as Rule;

/** What a qube's rules mean: no file is one accept rule; expired rules are gone. */
export function effectiveRules(rules: RuleList, nowSeconds: number): Rule[] {
  if (rules === null) return [ACCEPT_ALL];
  return rules.filter((r) => !isExpired(r, nowSeconds));
}

export function isExpired(r: Rule, nowSeconds: number): boolean {
  return r.expire !== undefined && r.expire < nowSeconds;
}
