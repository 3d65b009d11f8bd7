// The drop log: first packets a qube's firewall refused, as data. The compiler puts a rate-limited
// `log group DROP_LOG.group prefix "<origin>"` rule before each rule that refuses (compile/passes/
// drop-log.ts); a reader in each running netvm's namespace (backend/netns/nflog.ts) hands the packets
// back with that prefix, which parseOrigin maps to the qube and rule. Here: the shared constants, the
// entry shape and the grouping every door shows (by qube, destination, port).
import type { Origin } from './origin.js';

export const DROP_LOG = {
  /** The NFLOG group in each netvm's namespace (groups are per namespace, so one number serves all). */
  group: 7171,
  /** Per refusing rule: at most this many logged packets a second, after a burst (the kernel's `limit`). */
  rate: 5,
  burst: 10,
} as const;

/** What a logged packet's headers say (the reader's record, the backend's, the log's entry). */
export interface DroppedPacket {
  family: 4 | 6;
  src: string;
  dst: string;
  /** `tcp`, `udp`, `icmp`, `icmpv6`, or the protocol number. */
  proto: string;
  dport?: number;
  icmpType?: number;
  /** Bytes of the packet (its IP length). */
  length: number;
}

/** One refused first packet, as a netvm's kernel logged it. */
export interface DropEntry extends DroppedPacket {
  /** ISO time the reader saw it. */
  time: string;
  /** The netvm whose rules refused it. */
  hop: string;
  /** The qube whose rule refused it; the packet's source is that qube (or its traffic, masqueraded). */
  qube: string;
  origin: Origin;
  /** describeOrigin(origin): `work rule 3`, `policy: work default drop`. */
  decidedBy: string;
  /** The deciding rule's number, when one rule (or the first of a packed set) decided; absent for the policy. */
  rule?: number;
  /** That rule as qvm-firewall prints it, at the time of the drop (one rule decided, not a packed set). */
  ruleText?: string;
}

export interface DropGroup {
  qube: string;
  dst: string;
  proto: string;
  dport?: number;
  count: number;
  first: string;
  last: string;
  /** The deciding rule of the latest drop in the group. */
  decidedBy: string;
  rule?: number;
  ruleText?: string;
  hop: string;
  /**
   * The rule that would let this traffic through, placed before the deciding rule (at the end, in
   * front of the policy, when the policy decided): `firewall.add`'s input, for "allow this".
   */
  allow: { qube: string; rule: string; before?: number };
}

/** An accept for exactly this destination (and protocol and port, where the rule language has them). */
function allowRule(e: DropEntry): DropGroup['allow'] {
  const words = ['action=accept', `${e.family === 4 ? 'dst4' : 'dst6'}=${e.dst}`];
  if (e.proto === 'tcp' || e.proto === 'udp') {
    words.push(`proto=${e.proto}`);
    if (e.dport !== undefined) words.push(`dstports=${e.dport}-${e.dport}`);
  } else if (e.proto === 'icmp' || e.proto === 'icmpv6') words.push('proto=icmp');
  return { qube: e.qube, rule: words.join(' '), ...(e.rule !== undefined ? { before: e.rule } : {}) };
}

/** Entries grouped by qube, destination, protocol and port; the most recent group first. */
export function groupDrops(entries: readonly DropEntry[]): DropGroup[] {
  const groups = new Map<string, DropGroup>();
  for (const e of entries) {
    const key = JSON.stringify([e.qube, e.dst, e.proto, e.dport ?? null]);
    const g = groups.get(key);
    if (!g) {
      groups.set(key, {
        qube: e.qube,
        dst: e.dst,
        proto: e.proto,
        ...(e.dport !== undefined ? { dport: e.dport } : {}),
        count: 1,
        first: e.time,
        last: e.time,
        decidedBy: e.decidedBy,
        ...(e.rule !== undefined ? { rule: e.rule } : {}),
        ...(e.ruleText !== undefined ? { ruleText: e.ruleText } : {}),
        hop: e.hop,
        allow: allowRule(e),
      });
      continue;
    }
    g.count++;
    if (e.time < g.first) g.first = e.time;
    if (e.time >= g.last) {
      g.last = e.time;
      g.decidedBy = e.decidedBy;
      g.hop = e.hop;
      if (e.rule !== undefined) g.rule = e.rule;
      else delete g.rule;
      if (e.ruleText !== undefined) g.ruleText = e.ruleText;
      else delete g.ruleText;
      g.allow = allowRule(e);
    }
  }
  return [...groups.values()].sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0));
}
