// Conntrack as the kernel keeps it, reduced to what verdicts depend on: one entry per flow, found by
// its original tuple or its reply tuple. NAT is recorded the kernel's way: DNAT rewrites the reply
// tuple's source, masquerade its destination; every later packet is rewritten from the tuples, in
// both directions (nf_nat_packet), without running nat chains again.
import type { AddrNum } from './addr.js';
import type { Counters } from './evaluate.js';
import { CT_BIT, CT_STATUS_BIT, type Pkt } from './packet.js';

export interface Tuple {
  src: string;
  sa: AddrNum;
  sport: number;
  dst: string;
  da: AddrNum;
  dport: number;
}

export interface Conn {
  family: 4 | 6;
  l4: number;
  orig: Tuple;
  /** What a reply looks like when it arrives here (after NAT on the original direction). */
  reply: Tuple;
  /** IPS_SEEN_REPLY: set when a reply-direction packet passes conntrack; makes the flow established. */
  seenReply: boolean;
  /** NAT bindings initialised (nf_nat_initialized) for the destination and source manip. */
  dstBound: boolean;
  srcBound: boolean;
  dnat: boolean;
  snat: boolean;
  /** Inserted into the table (nf_conntrack_confirm at the end of postrouting or input). */
  confirmed: boolean;
}

interface Ref {
  conn: Conn;
  dir: 0 | 1;
}

export type ConnTable = Map<string, Ref>;

/** What a caller keeps across probes: conntrack and counters per node. */
export interface SimState {
  conntrack: Map<string, ConnTable>;
  counters: Map<string, Counters>;
}

export function newSimState(): SimState {
  return { conntrack: new Map(), counters: new Map() };
}

/** Forget flows (what `conntrack -D` does), e.g. after rules were tightened. Returns how many. */
export function forgetFlows(state: SimState, pred: (c: Conn, node: string) => boolean): number {
  let n = 0;
  for (const [node, t] of state.conntrack) {
    for (const [k, ref] of t) {
      if (!pred(ref.conn, node)) continue;
      t.delete(k);
      if (ref.dir === 0) n++;
    }
  }
  return n;
}

const keyOf = (l4: number, sa: AddrNum, sport: number, da: AddrNum, dport: number) => `${l4}|${sa}|${sport}|${da}|${dport}`;
const tupleKey = (l4: number, t: Tuple) => keyOf(l4, t.sa, t.sport, t.da, t.dport);

/** A packet's conntrack attachment at one node (nf_conntrack_in). */
export interface CtView {
  conn: Conn;
  dir: 0 | 1;
  /** CT_BIT of the packet's state. */
  state: number;
}

export function ctLookup(table: ConnTable, p: Pkt): CtView {
  const ref = table.size === 0 ? undefined : table.get(keyOf(p.l4, p.sa, p.sport, p.da, p.dport));
  if (ref) {
    const c = ref.conn;
    if (ref.dir === 1) c.seenReply = true;
    // A reply is always established; the original direction becomes established once a reply was seen.
    return { conn: c, dir: ref.dir, state: ref.dir === 1 || c.seenReply ? CT_BIT.established : CT_BIT.new };
  }
  const t: Tuple = { src: p.saddr, sa: p.sa, sport: p.sport, dst: p.daddr, da: p.da, dport: p.dport };
  const reply: Tuple = { src: p.daddr, sa: p.da, sport: p.dport, dst: p.saddr, da: p.sa, dport: p.sport };
  const conn: Conn = { family: p.family, l4: p.l4, orig: t, reply, seenReply: false, dstBound: false, srcBound: false, dnat: false, snat: false, confirmed: false };
  return { conn, dir: 0, state: CT_BIT.new };
}

/** A view to hand to ctFresh: one per throwaway walk, overwritten at every node. */
export function scratchView(): CtView {
  const t = (): Tuple => ({ src: '', sa: 0, sport: 0, dst: '', da: 0, dport: 0 });
  return { conn: { family: 4, l4: 0, orig: t(), reply: t(), seenReply: false, dstBound: false, srcBound: false, dnat: false, snat: false, confirmed: false }, dir: 0, state: CT_BIT.new };
}

/**
 * What ctLookup gives for a packet of a flow no table knows, written into `v` instead of new
 * objects: for a walk whose flows nobody keeps (each node's conntrack starts empty and is dropped).
 */
export function ctFresh(v: CtView, p: Pkt): CtView {
  const c = v.conn;
  const t = c.orig;
  t.src = p.saddr;
  t.sa = p.sa;
  t.sport = p.sport;
  t.dst = p.daddr;
  t.da = p.da;
  t.dport = p.dport;
  const r = c.reply;
  r.src = p.daddr;
  r.sa = p.da;
  r.sport = p.dport;
  r.dst = p.saddr;
  r.da = p.sa;
  r.dport = p.sport;
  c.family = p.family;
  c.l4 = p.l4;
  c.seenReply = c.dstBound = c.srcBound = c.dnat = c.snat = c.confirmed = false;
  v.dir = 0;
  v.state = CT_BIT.new;
  return v;
}

export function ctStatus(c: Conn): number {
  return (c.seenReply ? CT_STATUS_BIT['seen-reply']! : 0) | (c.confirmed ? CT_STATUS_BIT.confirmed! : 0) | (c.dnat ? CT_STATUS_BIT.dnat! : 0) | (c.snat ? CT_STATUS_BIT.snat! : 0);
}

export function ctConfirm(table: ConnTable, v: CtView, keep: boolean): void {
  const c = v.conn;
  if (c.confirmed) return;
  c.confirmed = true;
  if (!keep) return;
  table.set(tupleKey(c.l4, c.orig), { conn: c, dir: 0 });
  table.set(tupleKey(c.l4, c.reply), { conn: c, dir: 1 });
}

/** The first packet's DNAT: replies will come from the new destination. */
export function bindDnat(c: Conn, addr: string, da: AddrNum, port: number | undefined): void {
  // In place: a flow's tuples are its own, and the table keys are made from them only at confirm.
  const r = c.reply;
  r.src = addr;
  r.sa = da;
  if (port !== undefined) r.sport = port;
  c.dnat = true;
}

/** The first packet's masquerade/SNAT: replies will come back to the new source. */
export function bindSnat(c: Conn, addr: string, sa: AddrNum): void {
  c.reply.dst = addr;
  c.reply.da = sa;
  c.snat = true;
}

/** Rewrite the destination (prerouting/output) from the tuples. */
export function manipDst(v: CtView, p: Pkt): void {
  // Original direction: the destination becomes the reply's source; a reply goes back to the original source.
  const want = v.dir === 0 ? v.conn.reply : v.conn.orig;
  if (p.da !== want.sa) {
    // The tuple holds the text and its parsed form (setDaddr would parse the text again).
    p.daddr = want.src;
    p.da = want.sa;
  }
  if (p.dport >= 0 && want.sport >= 0) p.dport = want.sport;
}

/** Rewrite the source (postrouting/input) from the tuples. */
export function manipSrc(v: CtView, p: Pkt): void {
  // Original direction: the source becomes the reply's destination; a reply comes from the original destination.
  const want = v.dir === 0 ? v.conn.reply : v.conn.orig;
  if (p.sa !== want.da) {
    p.saddr = want.dst;
    p.sa = want.da;
  }
  if (p.sport >= 0 && want.dport >= 0) p.sport = want.dport;
}
