// Pass: pack runs of atoms into named sets, so a long rule list costs a few lookups per packet
// instead of one comparison per rule (DESIGN.md: "large rule lists compiled into sets where
// first-match order allows it"; linux-kernel-notes.md: 10k linear rules ≈ 8–11 kpps, one 100k set
// lookup: no measurable cost).
//
// Why it is safe: within a run of consecutive atoms with the same verdict, the order does not matter
// (a packet matching any of them gets that verdict), so the run may be regrouped by shape. Runs are
// first merged where first-match order allows it (regroup.ts): an atom moves up into an earlier run
// of its verdict only past atoms of the other verdict that no packet can match together with it, so
// realistic lists that alternate accept/drop give one or two groups, not one set per short run (nft
// charges per named set in the table on every transaction). packSets runs after lowerRules because
// first-match order is only known there.
//
// What the kernel refuses, and how it is avoided: nft rejects overlapping elements in interval sets
// ("conflicting intervals specified"; for concatenations "File exists", even when one element lies
// inside another). So elements are normalised first: identical keys merge, overlapping port ranges
// of the same (address, proto) merge, and an element contained in another one is dropped (same
// verdict, so redundant). What still overlaps (a wide prefix with ports 80-90 and a narrow one with
// 85-100) goes into a second set, a "layer". A set gets `flags interval` only when one of its
// elements is a prefix or a range: hash sets are cheaper to update (3.5 ms vs ~1 s per element at
// 100k, kernel notes).
import type { IrRule, Key, NamedSet, SetElement, SetKeyType, Field } from '../../ir/types.js';
import { comparePrefix, isHost, maskOf, type Prefix } from '../addr.js';
import type { IpFamily } from '../context.js';
import { formatOrigin, packedSet, rulesOrigin, type PackShape } from '../names.js';
import { addrValue, atomRule, daddrField, portValue, protoField, protoSym, verdictOf } from './atom-rule.js';
import type { Atom, L4 } from './lower.js';
import { regroup } from './regroup.js';

/** A shape with fewer elements than this in a group stays as plain rules: a set would cost more than it saves. */
const PACK_MIN = 4;

interface El {
  p?: Prefix;
  proto?: L4;
  r?: { lo: number; hi: number };
  rule: number;
}

export interface Packed {
  rules: IrRule[];
  sets: NamedSet[];
}

function shapeOf(a: Atom): PackShape | null {
  if (a.dst.length > 1 || a.icmpType !== undefined) return null;
  const d = a.dst.length === 1;
  if (!a.proto) return d && !a.port ? 'd' : null;
  if (a.port) return d ? 'dpt' : 'pt';
  return d ? 'dp' : null;
}

const isUnconditional = (a: Atom) => !a.proto && a.dst.length === 0 && !a.port && a.icmpType === undefined;

function elementsOf(a: Atom): El[] {
  const base = { proto: a.proto, r: a.port, rule: a.ruleIndex };
  if (a.dst.length === 0) return [base];
  return a.dst[0]!.map((p) => ({ ...base, p }));
}

/** Atoms of one client chain in one family → rules (in first-match order) and the sets they use. */
export function packAtoms(f: IpFamily, qube: string, chain: string, atomsIn: Atom[]): Packed {
  const cut = atomsIn.findIndex(isUnconditional);
  const atoms = cut < 0 ? atomsIn : atomsIn.slice(0, cut + 1); // nothing after an unconditional verdict is reachable
  const rules: IrRule[] = [];
  const sets: NamedSet[] = [];
  let ordinal = 0;
  for (const { atoms: run } of regroup(atoms)) {
    const byShape = new Map<PackShape, El[]>();
    for (const a of run) {
      const s = shapeOf(a);
      if (!s) continue;
      let l = byShape.get(s);
      if (!l) byShape.set(s, (l = []));
      for (const e of elementsOf(a)) l.push(e);
    }
    const packed = new Set([...byShape].filter(([, els]) => els.length >= PACK_MIN).map(([s]) => s));
    const done = new Set<PackShape>();
    for (const a of run) {
      const s = shapeOf(a);
      if (s === null || !packed.has(s)) {
        rules.push(atomRule(f, qube, a));
        continue;
      }
      if (done.has(s)) continue;
      done.add(s);
      const els = byShape.get(s)!;
      // One kernel rule for several source rules: `qube=work rules=0,3,5-7` (model/origin.ts).
      const origin = rulesOrigin(qube, els.map((e) => e.rule));
      const text = formatOrigin(origin);
      for (const layer of normalise(els, s)) {
        const name = packedSet(chain, s, ordinal++);
        sets.push(makeSet(f, qube, name, s, layer, text));
        rules.push({
          matches: [{ kind: 'in-set', fields: fieldsOf(f, s), op: '==', set: name }],
          stmts: [{ kind: 'counter' }, { kind: 'verdict', verdict: verdictOf(f, a.verdict) }],
          origin,
          comment: text,
        });
      }
    }
  }
  return { rules, sets };
}

function fieldsOf(f: IpFamily, s: PackShape): Field[] {
  switch (s) {
    case 'd':
      return [daddrField(f)];
    case 'dp':
      return [daddrField(f), protoField(f)];
    case 'dpt':
      return [daddrField(f), protoField(f), 'th dport'];
    case 'pt':
      return [protoField(f), 'th dport'];
  }
}

function keyTypes(f: IpFamily, s: PackShape): SetKeyType[] {
  const addr: SetKeyType = f === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  switch (s) {
    case 'd':
      return [addr];
    case 'dp':
      return [addr, 'inet_proto'];
    case 'dpt':
      return [addr, 'inet_proto', 'inet_service'];
    case 'pt':
      return ['inet_proto', 'inet_service'];
  }
}

function keyOf(f: IpFamily, s: PackShape, e: El): Key {
  const parts = [];
  if (e.p) parts.push(addrValue(e.p));
  if (e.proto && s !== 'd') parts.push(protoSym(f, e.proto));
  if (e.r) parts.push(portValue(e.r));
  return parts.length === 1 ? parts[0]! : parts;
}

function makeSet(f: IpFamily, qube: string, name: string, s: PackShape, els: El[], comment: string): NamedSet {
  const interval = els.some((e) => (e.p && !isHost(e.p)) || (e.r && e.r.lo !== e.r.hi));
  const elements: SetElement[] = els.map((e) => ({ key: keyOf(f, s, e), comment: formatOrigin({ kind: 'rule', qube, index: e.rule }) }));
  return { kind: 'set', name, keyType: keyTypes(f, s), interval, elements, comment };
}

const protoRank = (p?: L4) => (p === undefined ? 0 : p === 'tcp' ? 1 : p === 'udp' ? 2 : 3);

function compareEl(a: El, b: El): number {
  if (a.p && b.p) {
    const c = comparePrefix(a.p, b.p);
    if (c) return c;
  }
  return protoRank(a.proto) - protoRank(b.proto) || (a.r?.lo ?? 0) - (b.r?.lo ?? 0);
}

/** Union-preserving rewrite of one shape's elements into layers, each free of overlaps. */
function normalise(els: El[], s: PackShape): El[][] {
  // 1. merge identical keys, and overlapping ranges of the same (address, proto)
  const groups = new Map<string, El[]>();
  for (const e of els) {
    const k = `${e.proto ?? ''}|${e.p ? `${e.p.net}/${e.p.len}` : ''}`;
    const g = groups.get(k);
    if (g) g.push(e);
    else groups.set(k, [e]);
  }
  const merged: El[] = [];
  for (const g of groups.values()) {
    if (!g[0]!.r) {
      merged.push({ ...g[0]!, rule: g.reduce((m, e) => Math.min(m, e.rule), Infinity) });
      continue;
    }
    const sorted = [...g].sort((a, b) => a.r!.lo - b.r!.lo);
    let cur = { ...sorted[0]!, r: { ...sorted[0]!.r! } };
    for (const e of sorted.slice(1)) {
      if (e.r!.lo <= cur.r.hi) {
        cur.r.hi = Math.max(cur.r.hi, e.r!.hi);
        cur.rule = Math.min(cur.rule, e.rule);
      } else {
        merged.push(cur);
        cur = { ...e, r: { ...e.r! } };
      }
    }
    merged.push(cur);
  }
  if (s === 'pt') return [merged.sort(compareEl)];

  // 2. drop contained elements and layer the rest; prefixes only nest or are disjoint, so the
  //    candidates for overlap are the element's ancestors: one lookup per prefix length in use.
  merged.sort((a, b) => a.p!.len - b.p!.len || compareEl(a, b));
  const index = new Map<string, { r?: { lo: number; hi: number }; layer: number }[]>();
  const lens = new Map<string, Set<number>>();
  const layers: El[][] = [];
  for (const e of merged) {
    const p = e.p!;
    const proto = e.proto ?? '';
    const used = new Set<number>();
    let redundant = false;
    for (const l of lens.get(proto) ?? []) {
      if (l > p.len) continue;
      for (const x of index.get(`${proto}|${l}|${p.net & maskOf(p.v6, l)}`) ?? []) {
        if (!e.r || !x.r || (x.r.lo <= e.r.lo && x.r.hi >= e.r.hi)) {
          redundant = true;
          break;
        }
        if (x.r.lo <= e.r.hi && e.r.lo <= x.r.hi) used.add(x.layer);
      }
      if (redundant) break;
    }
    if (redundant) continue;
    let layer = 0;
    while (used.has(layer)) layer++;
    (layers[layer] ??= []).push(e);
    const k = `${proto}|${p.len}|${p.net}`;
    const at = index.get(k);
    if (at) at.push({ r: e.r, layer });
    else index.set(k, [{ r: e.r, layer }]);
    if (!lens.has(proto)) lens.set(proto, new Set());
    lens.get(proto)!.add(p.len);
  }
  return layers.map((l) => l.sort(compareEl));
}
