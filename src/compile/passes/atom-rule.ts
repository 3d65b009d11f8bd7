// One atom as one nft rule, in Qubes' order (reference §4.4): proto, destination, port, icmp type,
// verdict. Used for the qubes-linear layout and for atoms that packing leaves alone.
import type { Field, IrRule, Match, Value, Verdict } from '../../ir/types.js';
import { prefixText, type Prefix } from '../addr.js';
import type { IpFamily } from '../context.js';
import type { Atom, L4 } from './lower.js';
import { formatOrigin } from '../names.js';

export const daddrField = (f: IpFamily): Field => (f === 'ip' ? 'ip daddr' : 'ip6 daddr');
export const protoField = (f: IpFamily): Field => (f === 'ip' ? 'ip protocol' : 'ip6 nexthdr');
/** Qubes spells IPv6 ICMP `icmp` in rules; nft wants `icmpv6` in ip6 (§4.4 step 3). */
export const protoSym = (f: IpFamily, p: L4): Value => ({ kind: 'sym', s: p === 'icmp' && f === 'ip6' ? 'icmpv6' : p });

export function addrValue(p: Prefix): Value {
  const t = prefixText(p);
  const slash = t.indexOf('/');
  return slash < 0 ? { kind: 'addr', addr: t } : { kind: 'addr', addr: t.slice(0, slash), len: p.len };
}

export const portValue = (r: { lo: number; hi: number }): Value => (r.lo === r.hi ? { kind: 'int', n: r.lo } : { kind: 'range', lo: r.lo, hi: r.hi });

/** `drop` is an ICMP admin-prohibited reject: fast failure (DESIGN.md, reference §4.4 step 2). */
export function verdictOf(f: IpFamily, v: 'accept' | 'reject'): Verdict {
  if (v === 'accept') return { kind: 'accept' };
  return f === 'ip' ? { kind: 'reject', with: { type: 'icmp', code: 'admin-prohibited' } } : { kind: 'reject', with: { type: 'icmpv6', code: 'admin-prohibited' } };
}

export function atomRule(f: IpFamily, qube: string, a: Atom): IrRule {
  const m: Match[] = [];
  if (a.proto) m.push({ kind: 'cmp', field: protoField(f), op: '==', value: protoSym(f, a.proto) });
  for (const g of a.dst) {
    if (g.length === 1) m.push({ kind: 'cmp', field: daddrField(f), op: '==', value: addrValue(g[0]!) });
    else m.push({ kind: 'in-anon', field: daddrField(f), op: '==', values: g.map(addrValue) });
  }
  if (a.port && (a.proto === 'tcp' || a.proto === 'udp'))
    m.push({ kind: 'cmp', field: a.proto === 'tcp' ? 'tcp dport' : 'udp dport', op: '==', value: portValue(a.port) });
  if (a.icmpType !== undefined) m.push({ kind: 'cmp', field: f === 'ip' ? 'icmp type' : 'icmpv6 type', op: '==', value: { kind: 'int', n: a.icmpType } });
  const origin = { kind: 'rule', qube, index: a.ruleIndex } as const;
  return { matches: m, stmts: [{ kind: 'counter' }, { kind: 'verdict', verdict: verdictOf(f, a.verdict) }], origin, comment: formatOrigin(origin) };
}
