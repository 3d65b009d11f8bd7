// Pass: Qubes rule → atoms, per family. An atom is one conjunction of predicates with one verdict,
// what Qubes turns into one nft rule (reference §4.4 "Translation of one rule"): ports without a
// proto give two atoms (tcp and udp), `specialtarget=dns` gives one per transport, dsthost names are
// replaced by their resolved addresses of the family. Later passes decide how atoms become nft
// rules (one each, or packed into sets); first-match order is the atoms' order.
import { warning } from '../../model/diagnostics.js';
import type { Rule } from '../../model/rule.js';
import { minimalCover, toPrefix, type Prefix } from '../addr.js';
import type { CompileContext, IpFamily } from '../context.js';

export type L4 = 'tcp' | 'udp' | 'icmp';

export interface Atom {
  proto?: L4;
  /** A conjunction of destination groups; each group is a non-empty disjunction of prefixes. */
  dst: Prefix[][];
  port?: { lo: number; hi: number };
  icmpType?: number;
  verdict: 'accept' | 'reject';
  ruleIndex: number;
}

export interface LowerScope {
  family: IpFamily;
  qube: string;
  /** Where `specialtarget=dns` points in this family (reference §4.4 step 6, §5.2 consistency note). */
  dnsTargets: readonly string[];
}

export const DNS_PORT = 53;

/** The atoms of one rule in one family; [] when the rule cannot match in this family. */
export function lowerRule(ctx: CompileContext, scope: LowerScope, rule: Rule, index: number): Atom[] {
  const where = { qube: scope.qube, ruleIndex: index };
  const dst: Prefix[][] = [];
  const h = rule.dsthost;
  if (h) {
    if (h.type === 'dst4' || h.type === 'dst6') {
      if ((h.type === 'dst4') !== (scope.family === 'ip')) return []; // dst4 only in ip, dst6 only in ip6
      const p = toPrefix(h.addr, h.prefix);
      if (!p) {
        ctx.report(warning('QNET4005', `rule disabled: cannot read address '${h.text}'`, where));
        return [];
      }
      dst.push([p]);
    } else {
      const res = ctx.resolutions.get(h.text);
      if (!res || res.error !== undefined) {
        ctx.report(
          warning('QNET4001', `rule disabled: name '${h.text}' did not resolve (${res?.error ?? 'not looked up'})`, {
            ...where,
            hint: 'the other rules still apply; qnet retries the name when it refreshes DNS',
          }),
        );
        return [];
      }
      // A name with no address in this family (no AAAA) simply adds nothing here; not an error.
      const addrs = (scope.family === 'ip' ? res.a : res.aaaa).map((a) => toPrefix(a)).filter((p): p is Prefix => p !== null);
      if (addrs.length === 0) return [];
      dst.push(minimalCover(addrs));
    }
  }

  const proto = rule.proto ?? (rule.icmptype !== undefined ? 'icmp' : undefined);
  let port = rule.dstports ? { lo: rule.dstports.start, hi: rule.dstports.end } : undefined;

  if (rule.specialtarget === 'dns') {
    // Qubes skips the rule silently when ports are set and not 53 (§7.8) and fails on icmp (§7.7);
    // qnet keeps the meaning (only port 53 can match) and says when a rule can never match.
    if (proto === 'icmp') {
      ctx.report(warning('QNET4004', 'rule never matches: specialtarget=dns with proto=icmp', where));
      return [];
    }
    if (port && (port.lo > DNS_PORT || port.hi < DNS_PORT)) {
      ctx.report(warning('QNET4002', `rule never matches: specialtarget=dns is port 53, the rule allows ${port.lo}-${port.hi}`, where));
      return [];
    }
    port = { lo: DNS_PORT, hi: DNS_PORT };
    const targets = scope.dnsTargets.map((a) => toPrefix(a)).filter((p): p is Prefix => p !== null);
    if (targets.length === 0) {
      if (scope.family === 'ip')
        ctx.report(warning('QNET4003', 'rule never matches: the netvm has no DNS servers for specialtarget=dns', where));
      return [];
    }
    dst.push(minimalCover(targets));
  }

  const verdict = rule.action === 'accept' ? 'accept' : 'reject';
  const base = { dst, verdict, ruleIndex: index } as const;
  if (port && proto === undefined) {
    return (['tcp', 'udp'] as const).map((p) => ({ ...base, dst: [...dst], proto: p, port }));
  }
  if (proto === 'icmp') port = undefined;
  const atom: Atom = { ...base, dst };
  if (proto) atom.proto = proto;
  if (port) atom.port = port;
  if (proto === 'icmp' && rule.icmptype !== undefined) atom.icmpType = rule.icmptype;
  return [atom];
}
