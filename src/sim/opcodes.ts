// Matches on numeric fields encoded as flat numbers, one Float64Array per chain: with 100,000 rules
// the closures-per-match form spends its time on cache misses and megamorphic calls; a packed
// array read in order does not. Matches that need strings, bigints or sets stay closures (CALL).
import type { Field, Match } from '../ir/types.js';
import { assertNever } from '../model/result.js';
import { hasPorts, PROTO, type Pkt } from './packet.js';
import { atom, fieldKind } from './values.js';

export const OP = { EQ: 0, NE: 1, IN: 2, NOT_IN: 3, MASK: 4, NOT_MASK: 5, CALL: 6 } as const;
/** Words per encoded match: opcode, field id, a, b. */
export const OP_WIDTH = 4;
/** A numeric field that is absent for this packet (every present value is >= 0). */
export const ABSENT = -1;

const NUM_FIELDS: Partial<Record<Field, number>> = {
  'ip saddr': 0, 'ip daddr': 1, 'ip protocol': 2, 'ip6 nexthdr': 3, 'meta l4proto': 4, 'meta nfproto': 5,
  'tcp dport': 6, 'udp dport': 7, 'th dport': 8, 'tcp sport': 9, 'udp sport': 10, 'icmp type': 11,
  'icmpv6 type': 12, iifgroup: 13, oifgroup: 14, 'ct state': 15, 'ct status': 16,
};

/** The same semantics as values.ts getter(), as numbers (ABSENT where the getter gives undefined). */
export function numField(p: Pkt, f: number): number {
  switch (f) {
    case 0:
      return p.family === 4 ? (p.sa as number) : ABSENT;
    case 1:
      return p.family === 4 ? (p.da as number) : ABSENT;
    case 2:
      return p.family === 4 ? p.l4 : ABSENT;
    case 3:
      return p.family === 6 ? p.l4 : ABSENT;
    case 4:
      return p.l4;
    case 5:
      return p.family === 4 ? 2 : 10;
    case 6:
      return p.l4 === PROTO.tcp ? p.dport : ABSENT;
    case 7:
      return p.l4 === PROTO.udp ? p.dport : ABSENT;
    case 8:
      return hasPorts(p.l4) ? p.dport : ABSENT;
    case 9:
      return p.l4 === PROTO.tcp ? p.sport : ABSENT;
    case 10:
      return p.l4 === PROTO.udp ? p.sport : ABSENT;
    case 11:
      return p.l4 === PROTO.icmp ? p.icmpType : ABSENT;
    case 12:
      return p.l4 === PROTO.icmpv6 ? p.icmpType : ABSENT;
    case 13:
      return p.iif === null ? ABSENT : p.iifgroup;
    case 14:
      return p.oif === null ? ABSENT : p.oifgroup;
    case 15:
      return p.ct;
    case 16:
      return p.ctStatus < 0 ? ABSENT : p.ctStatus;
    default:
      return ABSENT;
  }
}

/** [op, field, a, b] for a numeric `cmp`, or undefined when the match needs a closure. */
export function encodeMatch(m: Match): [number, number, number, number] | undefined {
  switch (m.kind) {
    case 'cmp': {
      const fid = NUM_FIELDS[m.field];
      if (fid === undefined) return undefined;
      const at = atom(fieldKind(m.field), m.value);
      const eq = m.op === '==';
      switch (at.a) {
        case 'point':
          return typeof at.v === 'number' ? [eq ? OP.EQ : OP.NE, fid, at.v, 0] : undefined;
        case 'interval':
          return typeof at.lo === 'number' && typeof at.hi === 'number' ? [eq ? OP.IN : OP.NOT_IN, fid, at.lo, at.hi] : undefined;
        case 'mask':
          return [eq ? OP.MASK : OP.NOT_MASK, fid, at.m, 0];
        case 'prefix':
          return undefined;
        default:
          return assertNever(at, 'atom');
      }
    }
    case 'in-anon':
    case 'in-set':
      return undefined;
    default:
      return assertNever(m, 'match');
  }
}

/** Run a rule's encoded matches starting at `pc` (code[pc] = number of matches). */
export function matchesAt(code: Float64Array, pc: number, calls: readonly ((p: Pkt) => boolean)[], p: Pkt): boolean {
  const n = code[pc++]!;
  for (let j = 0; j < n; j++, pc += OP_WIDTH) {
    const op = code[pc]!;
    if (op === OP.CALL) {
      if (!calls[code[pc + 2]!]!(p)) return false;
      continue;
    }
    const x = numField(p, code[pc + 1]!);
    const a = code[pc + 2]!;
    switch (op) {
      case OP.EQ:
        if (x !== a) return false;
        break;
      case OP.NE:
        if (x === ABSENT || x === a) return false;
        break;
      case OP.IN:
        if (x < a || x > code[pc + 3]!) return false;
        break;
      case OP.NOT_IN:
        if (x === ABSENT || (x >= a && x <= code[pc + 3]!)) return false;
        break;
      case OP.MASK:
        // ABSENT (-1) has every bit set: without the check it would match any mask.
        if (x === ABSENT || (x & a) === 0) return false;
        break;
      case OP.NOT_MASK:
        if (x === ABSENT || (x & a) !== 0) return false;
        break;
    }
  }
  return true;
}
