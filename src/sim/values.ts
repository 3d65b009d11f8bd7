// How IR fields and values become numbers: one getter per Field (undefined = the field is not there
// for this packet, so the rule does not match — nft's implicit protocol dependencies, e.g. `tcp dport`
// carries `meta l4proto tcp`, `ip saddr` in an inet table carries `meta nfproto ipv4`, and `iifname`
// in output breaks evaluation), and one Atom per Value, interpreted by the field's kind.
import type { Field, Value } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { type AddrNum, parseV4, parseV6, prefixRange } from './addr.js';
import { CT_BIT, CT_STATUS_BIT, hasPorts, PROTO, type Pkt } from './packet.js';

export type Scalar = AddrNum | string;
export type FieldKind = 'addr4' | 'addr6' | 'proto' | 'nfproto' | 'port' | 'icmp4' | 'icmp6' | 'ifname' | 'group' | 'ctstate' | 'ctstatus' | 'int';

/** One element (or one component of a concatenated element) in matchable form. */
export type Atom =
  | { a: 'point'; v: Scalar }
  | { a: 'interval'; lo: AddrNum; hi: AddrNum }
  | { a: 'prefix'; s: string }
  /** Bitmask fields (ct state/status): matches when any bit is shared. */
  | { a: 'mask'; m: number };

export type Getter = (p: Pkt) => Scalar | undefined;

export function fieldKind(f: Field): FieldKind {
  switch (f) {
    case 'ip saddr':
    case 'ip daddr':
      return 'addr4';
    case 'ip6 saddr':
    case 'ip6 daddr':
      return 'addr6';
    case 'ip protocol':
    case 'ip6 nexthdr':
    case 'meta l4proto':
      return 'proto';
    case 'meta nfproto':
      return 'nfproto';
    case 'tcp dport':
    case 'udp dport':
    case 'th dport':
    case 'tcp sport':
    case 'udp sport':
      return 'port';
    case 'icmp type':
      return 'icmp4';
    case 'icmpv6 type':
      return 'icmp6';
    case 'iifname':
    case 'oifname':
      return 'ifname';
    case 'iifgroup':
    case 'oifgroup':
      return 'group';
    case 'ct state':
      return 'ctstate';
    case 'ct status':
      return 'ctstatus';
    default:
      return assertNever(f, 'field');
  }
}

export function getter(f: Field): Getter {
  switch (f) {
    case 'ip saddr':
      return (p) => (p.family === 4 ? p.sa : undefined);
    case 'ip daddr':
      return (p) => (p.family === 4 ? p.da : undefined);
    case 'ip6 saddr':
      return (p) => (p.family === 6 ? p.sa : undefined);
    case 'ip6 daddr':
      return (p) => (p.family === 6 ? p.da : undefined);
    case 'ip protocol':
      return (p) => (p.family === 4 ? p.l4 : undefined);
    case 'ip6 nexthdr':
      // No extension headers are simulated, so nexthdr is the transport protocol.
      return (p) => (p.family === 6 ? p.l4 : undefined);
    case 'meta l4proto':
      return (p) => p.l4;
    case 'meta nfproto':
      return (p) => (p.family === 4 ? 2 : 10);
    case 'tcp dport':
      return (p) => (p.l4 === PROTO.tcp ? p.dport : undefined);
    case 'udp dport':
      return (p) => (p.l4 === PROTO.udp ? p.dport : undefined);
    case 'tcp sport':
      return (p) => (p.l4 === PROTO.tcp ? p.sport : undefined);
    case 'udp sport':
      return (p) => (p.l4 === PROTO.udp ? p.sport : undefined);
    case 'th dport':
      // A bare `th dport` has no protocol dependency in nft and would read ICMP header bytes; the
      // simulator treats it as absent for protocols without ports (emit `meta l4proto {tcp,udp}` first).
      return (p) => (hasPorts(p.l4) ? p.dport : undefined);
    case 'icmp type':
      return (p) => (p.l4 === PROTO.icmp ? p.icmpType : undefined);
    case 'icmpv6 type':
      return (p) => (p.l4 === PROTO.icmpv6 ? p.icmpType : undefined);
    case 'iifname':
      return (p) => p.iif ?? undefined;
    case 'oifname':
      return (p) => p.oif ?? undefined;
    case 'iifgroup':
      return (p) => (p.iif === null ? undefined : p.iifgroup);
    case 'oifgroup':
      return (p) => (p.oif === null ? undefined : p.oifgroup);
    case 'ct state':
      return (p) => p.ct;
    case 'ct status':
      return (p) => (p.ctStatus < 0 ? undefined : p.ctStatus);
    default:
      return assertNever(f, 'field');
  }
}

// nft's symbolic constants (nft describe <type>), the ones the compiler and Qubes use.
const PROTO_SYM: Record<string, number> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132, udplite: 136 };
const NFPROTO_SYM: Record<string, number> = { ipv4: 2, ipv6: 10 };
const SERVICE_SYM: Record<string, number> = { ssh: 22, domain: 53, http: 80, https: 443, bootpc: 68, bootps: 67, 'dhcpv6-client': 546, 'dhcpv6-server': 547 };
const ICMP_SYM: Record<string, number> = {
  'echo-reply': 0, 'destination-unreachable': 3, 'source-quench': 4, redirect: 5, 'echo-request': 8,
  'router-advertisement': 9, 'router-solicitation': 10, 'time-exceeded': 11, 'parameter-problem': 12,
  'timestamp-request': 13, 'timestamp-reply': 14,
};
const ICMP6_SYM: Record<string, number> = {
  'destination-unreachable': 1, 'packet-too-big': 2, 'time-exceeded': 3, 'parameter-problem': 4,
  'echo-request': 128, 'echo-reply': 129, 'mld-listener-query': 130, 'nd-router-solicit': 133,
  'nd-router-advert': 134, 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136, 'nd-redirect': 137,
};

function symbol(kind: FieldKind, s: string): number | undefined {
  switch (kind) {
    case 'proto':
      return PROTO_SYM[s];
    case 'nfproto':
      return NFPROTO_SYM[s];
    case 'port':
      return SERVICE_SYM[s];
    case 'icmp4':
      return ICMP_SYM[s];
    case 'icmp6':
      return ICMP6_SYM[s];
    case 'ctstate':
      return (CT_BIT as Record<string, number>)[s];
    case 'ctstatus':
      return CT_STATUS_BIT[s];
    case 'addr4':
    case 'addr6':
    case 'ifname':
    case 'group':
    case 'int':
      return undefined;
    default:
      return assertNever(kind, 'field kind');
  }
}

const isMaskKind = (k: FieldKind) => k === 'ctstate' || k === 'ctstatus';

/** A Value as an Atom for a field of `kind`; throws on a value nft would refuse to load. */
export function atom(kind: FieldKind, v: Value): Atom {
  const bad = (): never => {
    throw new Error(`value ${JSON.stringify(v)} does not fit a ${kind} field`);
  };
  switch (v.kind) {
    case 'int':
      if (kind === 'addr4' || kind === 'addr6' || kind === 'ifname') return bad();
      return isMaskKind(kind) ? { a: 'mask', m: v.n } : { a: 'point', v: v.n };
    case 'sym': {
      if (kind === 'ifname') return { a: 'point', v: v.s };
      const n = symbol(kind, v.s);
      if (n === undefined) return bad();
      return isMaskKind(kind) ? { a: 'mask', m: n } : { a: 'point', v: n };
    }
    case 'addr': {
      if (kind !== 'addr4' && kind !== 'addr6') return bad();
      const fam = kind === 'addr4' ? 4 : 6;
      const full = fam === 4 ? 32 : 128;
      if (v.len === undefined || v.len === full) {
        const n = fam === 4 ? parseV4(v.addr) : parseV6(v.addr);
        return n === undefined ? bad() : { a: 'point', v: n };
      }
      const r = prefixRange(v.addr, v.len, fam);
      return r ? { a: 'interval', lo: r[0], hi: r[1] } : bad();
    }
    case 'range':
      if (kind === 'addr4' || kind === 'addr6' || kind === 'ifname' || isMaskKind(kind)) return bad();
      return v.lo === v.hi ? { a: 'point', v: v.lo } : { a: 'interval', lo: v.lo, hi: v.hi };
    case 'str':
      if (kind === 'ifname') return { a: 'point', v: v.s };
      return atom(kind, { kind: 'sym', s: v.s });
    case 'wildcard':
      return kind === 'ifname' ? { a: 'prefix', s: v.prefix } : bad();
    case 'ct':
      if (kind !== 'ctstate') return bad();
      return { a: 'mask', m: v.states.reduce((m, s) => m | CT_BIT[s], 0) };
    default:
      return assertNever(v, 'value');
  }
}

export function atomMatches(at: Atom, x: Scalar): boolean {
  switch (at.a) {
    case 'point':
      return at.v === x;
    case 'interval':
      return typeof x !== 'string' && at.lo <= x && x <= at.hi;
    case 'prefix':
      return typeof x === 'string' && x.startsWith(at.s);
    case 'mask':
      return typeof x === 'number' && (x & at.m) !== 0;
    default:
      return assertNever(at, 'atom');
  }
}
