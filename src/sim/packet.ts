// What travels: the user's question (Probe), a packet as the chain evaluator sees it (Packet), and
// the mutable, pre-parsed form the hot loop reads (Pkt). Keeping Pkt flat (numbers, no getters)
// lets every compiled matcher be one property read and one compare.
import type { CtState } from '../ir/types.js';
import { type AddrNum, parseAddr } from './addr.js';

/** "Can `from` reach `to` on proto/dport?" */
export interface Probe {
  /** Qube name, or 'outside' for a host on the stand-in internet. */
  from: string;
  /** Destination address (v4 or v6). */
  to: string;
  proto: 'tcp' | 'udp' | 'icmp';
  dport?: number;
  /** ICMP type; default echo-request (8, or 128 for IPv6). */
  icmpType?: number;
  /** Default: the family of `to`. */
  family?: 4 | 6;
  /** Override the source address (spoofing). */
  src?: string;
  /** Source port (default 49152): the same tuple is the same conntrack flow. */
  sport?: number;
}

/** A packet for the pure evaluators (evalChain / evalHook). Missing interface fields = not available at that hook. */
export interface Packet {
  family: 4 | 6;
  saddr: string;
  daddr: string;
  /** IANA protocol number: 6 tcp, 17 udp, 1 icmp, 58 icmpv6. */
  l4proto: number;
  sport?: number;
  dport?: number;
  icmpType?: number;
  iifname?: string;
  oifname?: string;
  iifgroup?: number;
  oifgroup?: number;
  /** Conntrack state as chains after the conntrack hook (-200) see it. Default 'new'. */
  ct?: CtState;
}

export const PROTO = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;

// ct state bits as nft_ct.c computes them (NF_CT_STATE_BIT(ctinfo), INVALID and UNTRACKED bits).
export const CT_BIT: Record<CtState, number> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };
// ct status bits (IPS_*): only those a simulated flow can have.
export const CT_STATUS_BIT: Record<string, number> = { expected: 1, 'seen-reply': 2, assured: 4, confirmed: 8, snat: 16, dnat: 32 };

/** The hot-loop packet. Ports/types are -1 when the protocol has none; interfaces null when not available. */
export interface Pkt {
  family: 4 | 6;
  saddr: string;
  daddr: string;
  sa: AddrNum;
  da: AddrNum;
  l4: number;
  sport: number;
  dport: number;
  icmpType: number;
  iif: string | null;
  oif: string | null;
  iifgroup: number;
  oifgroup: number;
  /** CT_BIT of the state chains currently see. */
  ct: number;
  /** CT_STATUS_BIT mask; -1 = no conntrack entry attached (before the conntrack hook). */
  ctStatus: number;
}

export const hasPorts = (l4: number) => l4 === PROTO.tcp || l4 === PROTO.udp || l4 === 132 || l4 === 33 || l4 === 136;
export const isIcmp = (l4: number) => l4 === PROTO.icmp || l4 === PROTO.icmpv6;

export function toPkt(p: Packet): Pkt {
  const sa = parseAddr(p.saddr, p.family);
  const da = parseAddr(p.daddr, p.family);
  if (sa === undefined || da === undefined) throw new Error(`not an IPv${p.family} packet: ${p.saddr} → ${p.daddr}`);
  const ports = hasPorts(p.l4proto);
  return {
    family: p.family,
    saddr: p.saddr,
    daddr: p.daddr,
    sa,
    da,
    l4: p.l4proto,
    sport: ports ? (p.sport ?? 49152) : -1,
    dport: ports ? (p.dport ?? -1) : -1,
    icmpType: isIcmp(p.l4proto) ? (p.icmpType ?? (p.l4proto === PROTO.icmp ? 8 : 128)) : -1,
    iif: p.iifname ?? null,
    oif: p.oifname ?? null,
    iifgroup: p.iifgroup ?? 0,
    oifgroup: p.oifgroup ?? 0,
    ct: CT_BIT[p.ct ?? 'new'],
    ctStatus: 0,
  };
}

export function setSaddr(p: Pkt, s: string): void {
  p.saddr = s;
  p.sa = parseAddr(s, p.family)!;
}
export function setDaddr(p: Pkt, s: string): void {
  p.daddr = s;
  p.da = parseAddr(s, p.family)!;
}

export function probeL4(probe: Probe, family: 4 | 6): number {
  if (probe.proto === 'icmp') return family === 4 ? PROTO.icmp : PROTO.icmpv6;
  return PROTO[probe.proto];
}
