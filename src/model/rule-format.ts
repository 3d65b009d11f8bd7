// The canonical text forms of a rule, exactly as Qubes prints them (qubes-firewall.md §2.2, §3.1,
// §3.2). Every form is built from the same `str()` values; only order and omissions differ.
import type { DstHost, PortRange, Rule } from './rule.js';
import { formatSignedSeconds } from './rule-python.js';

/** `str(DstPorts)`: `443`, or `1-1024` for a real range (table, XML). */
export function portsText(p: PortRange): string {
  return p.start === p.end ? `${p.start}` : `${p.start}-${p.end}`;
}

/** The wire form `dstports=N-M`: QubesDB and the Admin API always write both ends. */
function portsRule(p: PortRange): string {
  return `dstports=${p.start}-${p.end}`;
}

/** `dst4=1.2.3.4/32`, `dst6=…/128` or `dsthost=name`: an address is never written as dsthost. */
function hostRule(h: DstHost): string {
  return `${h.type}=${h.text}`;
}

/** An empty comment cannot be written back (`comment=` parses as "no comment"), so it is none. */
function hasComment(rule: Rule): rule is Rule & { comment: string } {
  return rule.comment !== undefined && rule.comment !== '';
}

/**
 * dom0 `Rule.api_rule` (Admin API `Get`): action, expire, host, proto, specialtarget, dstports,
 * icmptype, comment last. Expired rules are the caller's to skip (`effectiveRules`).
 */
export function formatApiRule(rule: Rule): string {
  const out = [`action=${rule.action}`];
  if (rule.expire !== undefined) out.push(`expire=${rule.expire}`);
  if (rule.dsthost) out.push(hostRule(rule.dsthost));
  if (rule.proto) out.push(`proto=${rule.proto}`);
  if (rule.specialtarget) out.push(`specialtarget=${rule.specialtarget}`);
  if (rule.dstports) out.push(portsRule(rule.dstports));
  if (rule.icmptype !== undefined) out.push(`icmptype=${rule.icmptype}`);
  if (hasComment(rule)) out.push(`comment=${rule.comment}`);
  return out.join(' ');
}

/** dom0 `Rule.rule`, the net qube's QubesDB form: no expire, no comment, ports always `N-M`. */
export function formatQdbRule(rule: Rule): string {
  const out = [`action=${rule.action}`];
  if (rule.dsthost) out.push(hostRule(rule.dsthost));
  if (rule.proto) out.push(`proto=${rule.proto}`);
  if (rule.specialtarget) out.push(`specialtarget=${rule.specialtarget}`);
  if (rule.dstports) out.push(portsRule(rule.dstports));
  if (rule.icmptype !== undefined) out.push(`icmptype=${rule.icmptype}`);
  return out.join(' ');
}

/**
 * qubesadmin `Rule.rule` (`qvm-firewall --raw`, `Set` payloads, `del RULE` equality): action,
 * proto, host, dstports, icmptype, specialtarget, expire, comment. The client drops `/0` address
 * hosts ("any host"), quirk §7.4.
 */
export function formatClientRule(rule: Rule): string {
  const out = [`action=${rule.action}`];
  if (rule.proto) out.push(`proto=${rule.proto}`);
  const h = rule.dsthost;
  if (h && !(h.type !== 'dsthost' && h.prefix === 0)) out.push(hostRule(h));
  if (rule.dstports) out.push(portsRule(rule.dstports));
  if (rule.icmptype !== undefined) out.push(`icmptype=${rule.icmptype}`);
  if (rule.specialtarget) out.push(`specialtarget=${rule.specialtarget}`);
  if (rule.expire !== undefined) out.push(`expire=${rule.expire}`);
  if (hasComment(rule)) out.push(`comment=${rule.comment}`);
  return out.join(' ');
}

export const RULE_TABLE_HEADER: readonly string[] = Object.freeze([
  'NO',
  'ACTION',
  'HOST',
  'PROTOCOL',
  'PORT(S)',
  'SPECIAL TARGET',
  'ICMP TYPE',
  'EXPIRE',
  'COMMENT',
]);

/**
 * qvm-firewall's table (`rules_list_table`): the header, then one row per rule with the 0-based
 * number, `pretty_value`s and `-` for unset. EXPIRE is relative to `nowSeconds`, `+3600s`/`-120s`.
 */
export function ruleTableRows(rules: readonly Rule[], nowSeconds: number): string[][] {
  const rows: string[][] = new Array(rules.length + 1);
  rows[0] = [...RULE_TABLE_HEADER];
  for (let i = 0; i < rules.length; i++) rows[i + 1] = ruleTableRow(rules[i]!, i, nowSeconds);
  return rows;
}

/** Row `i` of `ruleTableRows` (rule number `i`), for output written as it is made. */
export function ruleTableRow(r: Rule, i: number, nowSeconds: number): string[] {
  return [
    `${i}`,
    r.action,
    r.dsthost ? r.dsthost.text : '-',
    r.proto ?? '-',
    r.dstports ? portsText(r.dstports) : '-',
    r.specialtarget ?? '-',
    r.icmptype !== undefined ? `${r.icmptype}` : '-',
    r.expire !== undefined ? formatSignedSeconds(r.expire - nowSeconds) : '-',
    r.comment ?? '-',
  ];
}

/**
 * The length of the longest cell of each column of `ruleTableRows(rules, nowSeconds)`, header
 * included, in one pass that builds no rows: what aligning the table needs before its first line.
 */
export function ruleTableWidths(rules: readonly Rule[], nowSeconds: number): number[] {
  const w = RULE_TABLE_HEADER.map((h) => h.length);
  if (rules.length > 0) w[0] = Math.max(w[0]!, `${rules.length - 1}`.length);
  for (const r of rules) {
    if (r.action.length > w[1]!) w[1] = r.action.length;
    const host = r.dsthost ? r.dsthost.text.length : 1;
    if (host > w[2]!) w[2] = host;
    const proto = (r.proto ?? '-').length;
    if (proto > w[3]!) w[3] = proto;
    const ports = r.dstports ? portsText(r.dstports).length : 1;
    if (ports > w[4]!) w[4] = ports;
    const special = (r.specialtarget ?? '-').length;
    if (special > w[5]!) w[5] = special;
    const icmp = r.icmptype !== undefined ? `${r.icmptype}`.length : 1;
    if (icmp > w[6]!) w[6] = icmp;
    const expire = r.expire !== undefined ? formatSignedSeconds(r.expire - nowSeconds).length : 1;
    if (expire > w[7]!) w[7] = expire;
    const comment = (r.comment ?? '-').length;
    if (comment > w[8]!) w[8] = comment;
  }
  return w;
}
