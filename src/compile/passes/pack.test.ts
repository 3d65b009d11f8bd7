// Packing must not change a single verdict: for random rule lists and random packets, the packed
// chain (evaluated by src/sim's evalChain, the IR interpreter) gives the verdict of Qubes' plain
// first-match semantics (a reference evaluator over Rule lists, written here from reference §2.3:
// first match, all predicates, default drop), and so does the qubes-linear chain.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Table } from '../../ir/types.js';
import { defaultLayout } from '../../model/layout.js';
import type { Rule } from '../../model/rule.js';
import { planNetwork } from '../../model/topology.js';
import { evalChain, PROTO, type Packet } from '../../sim/index.js';
import { contains, toPrefix, type Prefix } from '../addr.js';
import { compile } from '../compile.js';
import { emitFull } from '../../ir/emit-text.js';
import { kernelUnavailable, nft, withScratchNs } from '../../../test/cases/compile/kernel.js';
import type { Resolutions } from '../dns.js';
import type { Atom } from './lower.js';
import { describeOrigin, formatOrigin, parseOrigin, rulesOrigin } from '../names.js';
import { disjoint, regroup } from './regroup.js';

const HOSTS = ['203.0.113.1', '203.0.113.2', '203.0.113.130', '198.51.100.7', '10.139.1.1', '10.139.1.2'];
const PREFIXES = ['203.0.113.0/24', '203.0.113.0/25', '203.0.113.128/26', '198.51.100.0/24', '0.0.0.0/0'];
const NAMES: Record<string, string[] | null> = { 'a.example': ['203.0.113.1', '198.51.100.7'], 'b.example': ['203.0.113.2'], 'gone.example': null };
const PORTS = [22, 53, 80, 443, 8080];
const DNS_TARGETS = ['10.139.1.1', '10.139.1.2']; // work's netvm is sys-firewall, a ProxyVM

const resolutions: Resolutions = new Map(
  Object.entries(NAMES).map(([name, a]) => [name, a ? { name, a, aaaa: [], ttl: 300 } : { name, a: [], aaaa: [], ttl: 60, error: 'NXDOMAIN' }]),
);

const arbRange = fc.oneof(
  fc.constantFrom(...PORTS).map((p) => ({ start: p, end: p })),
  fc.tuple(fc.constantFrom(...PORTS), fc.integer({ min: 0, max: 500 })).map(([p, w]) => ({ start: p, end: Math.min(65535, p + w) })),
);

const arbDst: fc.Arbitrary<Rule['dsthost']> = fc.oneof(
  fc.constantFrom(...HOSTS).map((a) => ({ type: 'dst4' as const, text: `${a}/32`, addr: a, prefix: 32 })),
  fc.constantFrom(...PREFIXES).map((t) => ({ type: 'dst4' as const, text: t, addr: t.split('/')[0]!, prefix: Number(t.split('/')[1]) })),
  fc.constantFrom(...Object.keys(NAMES)).map((n) => ({ type: 'dsthost' as const, text: n })),
);

const arbRule: fc.Arbitrary<Rule> = fc
  .record({
    // Mostly accept: long runs of one verdict are what packing works on.
    action: fc.constantFrom('accept', 'accept', 'accept', 'drop'),
    proto: fc.option(fc.constantFrom('tcp', 'udp', 'icmp'), { nil: undefined }),
    dsthost: fc.option(arbDst, { nil: undefined, freq: 2 }),
    dstports: fc.option(arbRange, { nil: undefined }),
    icmptype: fc.option(fc.constantFrom(0, 8), { nil: undefined }),
    dns: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  })
  .map((r) => {
    const out: Rule = { action: r.action as Rule['action'] };
    if (r.proto) out.proto = r.proto as Rule['proto'];
    if (r.dsthost) out.dsthost = r.dsthost;
    if (r.dstports && r.proto !== 'icmp') out.dstports = r.dstports; // the parser allows ports only with tcp/udp… or none
    if (r.icmptype !== undefined && r.proto === 'icmp') out.icmptype = r.icmptype;
    if (r.dns) out.specialtarget = 'dns';
    return out;
  });

interface Pkt {
  daddr: string;
  proto: 'tcp' | 'udp' | 'icmp';
  dport: number;
  icmpType: number;
}

const arbPacket: fc.Arbitrary<Pkt> = fc.record({
  daddr: fc.oneof(fc.constantFrom(...HOSTS), fc.constantFrom('203.0.113.77', '203.0.113.200', '192.0.2.1', '198.51.100.200')),
  proto: fc.constantFrom('tcp', 'udp', 'icmp'),
  dport: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 1, max: 65535 })),
  icmpType: fc.constantFrom(0, 8, 3),
});

const inPrefix = (addr: string, p: string) => {
  const [a, l] = p.split('/');
  return contains(toPrefix(a!, l === undefined ? 32 : Number(l))!, toPrefix(addr)!);
};

/** Qubes' semantics over the rule list: first rule whose predicates all hold; default drop. */
export function referenceVerdict(rules: Rule[], p: Pkt): 'accept' | 'reject' {
  for (const r of rules) {
    const proto = r.proto ?? (r.icmptype !== undefined ? 'icmp' : undefined);
    if (proto && proto !== p.proto) continue;
    if (r.dsthost?.type === 'dst4' && !inPrefix(p.daddr, `${r.dsthost.addr}/${r.dsthost.prefix}`)) continue;
    if (r.dsthost?.type === 'dst6') continue;
    if (r.dsthost?.type === 'dsthost') {
      const a = NAMES[r.dsthost.text];
      if (!a || !a.includes(p.daddr)) continue; // a failed name disables the rule
    }
    if (r.dstports && (p.proto === 'icmp' || p.dport < r.dstports.start || p.dport > r.dstports.end)) continue;
    if (r.icmptype !== undefined && (p.proto !== 'icmp' || p.icmpType !== r.icmptype)) continue;
    if (r.specialtarget === 'dns' && (p.proto === 'icmp' || p.dport !== 53 || !DNS_TARGETS.includes(p.daddr))) continue;
    return r.action === 'accept' ? 'accept' : 'reject';
  }
  return 'reject';
}

function workChain(rules: Rule[], layout: 'qnet' | 'qubes-linear'): Table {
  const m = defaultLayout();
  m.qubes.get('work')!.rules = rules;
  const out = compile({ model: m, plan: planNetwork(m, { uplink: 'world' }), resolutions, now: 0, layout });
  return out.rulesets.get('sys-firewall')!.tables.find((t) => t.family === 'ip' && t.name === 'qubes-firewall')!;
}

function simVerdict(t: Table, p: Pkt): string {
  const packet: Packet = {
    family: 4,
    saddr: '10.137.0.3',
    daddr: p.daddr,
    l4proto: PROTO[p.proto],
    ...(p.proto === 'icmp' ? { icmpType: p.icmpType } : { sport: 40000, dport: p.dport }),
    iifname: 'vif3.0',
    iifgroup: 2,
    ct: 'new',
  };
  return evalChain(t, 'qbs-10-137-0-3', packet).verdict;
}

test('packed chain = linear chain = Qubes first-match semantics, for random rules and packets', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { minLength: 0, maxLength: 40 }), fc.array(arbPacket, { minLength: 1, maxLength: 30 }), (rules, packets) => {
      const packed = workChain(rules, 'qnet');
      const linear = workChain(rules, 'qubes-linear');
      for (const p of packets) {
        const want = referenceVerdict(rules, p);
        assert.equal(simVerdict(packed, p), want, `packed: ${JSON.stringify(p)}`);
        assert.equal(simVerdict(linear, p), want, `linear: ${JSON.stringify(p)}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('packing really happens in the generated lists (the property is not vacuous)', () => {
  const rules: Rule[] = Array.from({ length: 8 }, (_, i) => ({
    action: 'accept' as const,
    proto: 'tcp' as const,
    dsthost: { type: 'dst4' as const, text: `203.0.113.${i}/32`, addr: `203.0.113.${i}`, prefix: 32 },
    dstports: { start: 443, end: 443 },
  }));
  const t = workChain(rules, 'qnet');
  assert.equal(t.sets.filter((s) => s.kind === 'set').length, 1);
  assert.equal(simVerdict(t, { daddr: '203.0.113.5', proto: 'tcp', dport: 443, icmpType: 0 }), 'accept');
  assert.equal(simVerdict(t, { daddr: '203.0.113.5', proto: 'tcp', dport: 444, icmpType: 0 }), 'reject');
});

const kernelSkip = kernelUnavailable();

/** Compile each rule list as work's and require `nft -c` in a scratch namespace to accept the result. */
function kernelAcceptsAll(samples: Rule[][]): void {
  withScratchNs((ns) => {
    for (const rules of samples) {
      const m = defaultLayout();
      m.qubes.get('work')!.rules = rules;
      const rs = compile({ model: m, plan: planNetwork(m, { uplink: 'world' }), resolutions, now: 0 }).rulesets.get('sys-firewall')!;
      const r = nft(ns, emitFull(rs));
      assert.ok(r.ok, `${r.stderr}\nrules: ${JSON.stringify(rules)}`);
    }
  });
}


test('the kernel accepts packed sets built from random overlapping rules (nft -c)', { skip: kernelSkip ?? false }, () => {
  const samples = fc.sample(fc.array(arbRule, { minLength: 20, maxLength: 60 }), { numRuns: 25, seed: 42 });
  kernelAcceptsAll(samples);
});

// ---- Regrouping across runs (regroup.ts): same-verdict runs merge past provably disjoint atoms ----

// Interleaved verdicts, and matches that often overlap and often do not: nested and disjoint
// prefixes, port ranges that meet or not, icmp types, rules with and without a protocol.
const arbRuleMixed: fc.Arbitrary<Rule> = fc
  .tuple(arbRule, fc.boolean(), fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }))
  .map(([r, drop, lo]) => {
    const out: Rule = { ...r, action: drop ? 'drop' : 'accept' };
    if (lo !== undefined && (out.proto === 'tcp' || out.proto === 'udp') && !out.specialtarget) out.dstports = { start: lo, end: lo + (lo % 7) * 10 };
    return out;
  });

test('interleaved verdicts: packed chain = linear chain = Qubes first-match semantics', () => {
  fc.assert(
    fc.property(fc.array(arbRuleMixed, { minLength: 0, maxLength: 40 }), fc.array(arbPacket, { minLength: 1, maxLength: 40 }), (rules, packets) => {
      const packed = workChain(rules, 'qnet');
      const linear = workChain(rules, 'qubes-linear');
      // Probe every port boundary the rules use, where a wrongly moved rule would show.
      const edges = rules.flatMap((r) => (r.dstports ? [r.dstports.start, r.dstports.end, r.dstports.start - 1, r.dstports.end + 1] : []));
      const probes = [...packets, ...packets.slice(0, 5).flatMap((p) => edges.filter((d) => d >= 1 && d <= 65535).map((dport) => ({ ...p, dport })))];
      for (const p of probes) {
        const want = referenceVerdict(rules, p);
        assert.equal(simVerdict(packed, p), want, `packed: ${JSON.stringify(p)}`);
        assert.equal(simVerdict(linear, p), want, `linear: ${JSON.stringify(p)}`);
      }
    }),
    { numRuns: 400 },
  );
});

// Atoms straight, with an independent matcher: regroup is a permutation, keeps every overlapping
// pair of different verdicts in order, and `disjoint` never claims disjoint for a shared packet.
const ATOM_PREFIXES = ['203.0.113.0/24', '203.0.113.0/25', '203.0.113.128/25', '203.0.113.1/32', '203.0.113.200/32', '198.51.100.0/24', '198.51.100.7/32', '0.0.0.0/0', '0.0.0.0/1'];
const prefixOf = (t: string) => toPrefix(t.split('/')[0]!, Number(t.split('/')[1]))!;
const arbGroup = fc.uniqueArray(fc.constantFrom(...ATOM_PREFIXES), { minLength: 1, maxLength: 2 }).map((ts) => ts.map(prefixOf));
const arbPort = fc.tuple(fc.constantFrom(22, 53, 80, 443, 1000), fc.constantFrom(0, 0, 1, 30, 500)).map(([lo, w]) => ({ lo, hi: lo + w }));
const arbAtoms: fc.Arbitrary<Atom[]> = fc
  .array(
    fc.record({
      proto: fc.option(fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const), { nil: undefined }),
      dst: fc.array(arbGroup, { maxLength: 2 }),
      port: fc.option(arbPort, { nil: undefined }),
      icmpType: fc.option(fc.constantFrom(0, 8), { nil: undefined }),
      verdict: fc.constantFrom('accept' as const, 'reject' as const),
    }),
    { maxLength: 30 },
  )
  .map((xs) =>
    xs.map((x, i) => {
      const a: Atom = { dst: x.dst, verdict: x.verdict, ruleIndex: i };
      if (x.proto) a.proto = x.proto;
      if (x.port && (x.proto === 'tcp' || x.proto === 'udp')) a.port = x.port;
      if (x.icmpType !== undefined && x.proto === 'icmp') a.icmpType = x.icmpType;
      return a;
    }),
  );

interface APkt {
  addr: Prefix;
  proto: 'tcp' | 'udp' | 'icmp' | 'gre';
  dport: number;
  icmpType: number;
}
const arbAPkt: fc.Arbitrary<APkt> = fc.record({
  addr: fc.constantFrom('203.0.113.1', '203.0.113.2', '203.0.113.130', '203.0.113.200', '198.51.100.7', '198.51.100.9', '192.0.2.1', '128.0.0.1').map((a) => toPrefix(a)!),
  proto: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const, 'gre' as const),
  dport: fc.constantFrom(21, 22, 23, 52, 53, 54, 80, 110, 443, 473, 943, 1000, 1001, 1030, 1500, 1501),
  icmpType: fc.constantFrom(0, 8, 3),
});

function atomMatches(a: Atom, p: APkt): boolean {
  if (a.proto && a.proto !== p.proto) return false;
  if (!a.dst.every((g) => g.some((q) => contains(q, p.addr)))) return false;
  if (a.port && ((p.proto !== 'tcp' && p.proto !== 'udp') || p.dport < a.port.lo || p.dport > a.port.hi)) return false;
  if (a.icmpType !== undefined && (p.proto !== 'icmp' || p.icmpType !== a.icmpType)) return false;
  return true;
}
const firstMatch = (atoms: readonly Atom[], p: APkt) => atoms.find((a) => atomMatches(a, p))?.verdict ?? 'reject';

test('regroup: a permutation that keeps overlapping different-verdict atoms in order and every verdict', () => {
  fc.assert(
    fc.property(arbAtoms, fc.array(arbAPkt, { minLength: 1, maxLength: 40 }), (atoms, packets) => {
      const groups = regroup(atoms);
      const flat = groups.flatMap((g) => g.atoms);
      assert.deepEqual([...flat].sort((a, b) => a.ruleIndex - b.ruleIndex), atoms, 'a permutation');
      for (const g of groups) assert.ok(g.atoms.every((a) => a.verdict === g.verdict), 'one verdict per group');
      for (let k = 1; k < groups.length; k++) assert.notEqual(groups[k]!.verdict, groups[k - 1]!.verdict, 'groups alternate');
      const pos = new Map(flat.map((a, i) => [a, i]));
      for (let i = 0; i < atoms.length; i++)
        for (let j = i + 1; j < atoms.length; j++) {
          const [a, b] = [atoms[i]!, atoms[j]!];
          if (a.verdict !== b.verdict && !disjoint(a, b)) assert.ok(pos.get(a)! < pos.get(b)!, `rule ${j} jumped over overlapping rule ${i}`);
        }
      for (const p of packets) {
        assert.equal(firstMatch(flat, p), firstMatch(atoms, p), `verdict changed: ${JSON.stringify({ ...p, addr: String(p.addr.net) })}`);
        for (let i = 0; i < atoms.length; i++)
          for (let j = i + 1; j < atoms.length; j++)
            if (disjoint(atoms[i]!, atoms[j]!)) assert.ok(!(atomMatches(atoms[i]!, p) && atomMatches(atoms[j]!, p)), `disjoint(${i}, ${j}) but a packet matches both`);
      }
    }),
    { numRuns: 500 },
  );
});

test('regroup merges runs across disjoint rules of the other verdict (the property is not vacuous)', () => {
  const host = (i: number) => ({ type: 'dst4' as const, text: `203.0.113.${i}/32`, addr: `203.0.113.${i}`, prefix: 32 });
  // accept tcp hosts:443, with a drop of udp after every two: realistic alternation
  const rules: Rule[] = [];
  for (let i = 0; i < 12; i++) {
    rules.push({ action: 'accept', proto: 'tcp', dsthost: host(i), dstports: { start: 443, end: 443 } });
    if (i % 2 === 1) rules.push({ action: 'drop', proto: 'udp', dsthost: host(100 + i) });
  }
  const t = workChain(rules, 'qnet');
  const chain = t.chains.find((c) => c.name === 'qbs-10-137-0-3')!;
  assert.equal(t.sets.filter((s) => s.kind === 'set').length, 2, 'one set of accepts, one of drops');
  // accepts, drops, policy: each refusing rule after its drop-log rule (no comment, no verdict)
  assert.equal(chain.rules.length, 5);
  assert.equal(chain.rules.filter((r) => r.comment !== undefined).length, 3);
  assert.equal(chain.rules[0]!.comment, 'qube=work rules=0-1,3-4,6-7,9-10,12-13,15-16');
  assert.deepEqual(chain.rules[0]!.origin, { kind: 'rules', qube: 'work', ranges: [[0, 1], [3, 4], [6, 7], [9, 10], [12, 13], [15, 16]] });
  for (const [d, proto, want] of [
    ['203.0.113.11', 'tcp', 'accept'],
    ['203.0.113.111', 'udp', 'reject'],
    ['203.0.113.111', 'tcp', 'reject'],
  ] as const)
    assert.equal(simVerdict(t, { daddr: d, proto, dport: 443, icmpType: 0 }), want);

  // An overlapping drop is a wall: the accepts after it do not move above it.
  const walled: Rule[] = [
    ...[1, 2, 3, 4].map((i) => ({ action: 'accept' as const, proto: 'tcp' as const, dsthost: host(i), dstports: { start: 443, end: 443 } })),
    { action: 'drop', dsthost: { type: 'dst4', text: '203.0.113.0/24', addr: '203.0.113.0', prefix: 24 } },
    ...[5, 6, 7, 8].map((i) => ({ action: 'accept' as const, proto: 'tcp' as const, dsthost: host(i), dstports: { start: 443, end: 443 } })),
  ];
  const w = workChain(walled, 'qnet');
  assert.equal(w.sets.filter((s) => s.kind === 'set').length, 2);
  assert.equal(simVerdict(w, { daddr: '203.0.113.6', proto: 'tcp', dport: 443, icmpType: 0 }), 'reject');
  assert.equal(simVerdict(w, { daddr: '203.0.113.2', proto: 'tcp', dport: 443, icmpType: 0 }), 'accept');
});

test('packed comments: rule ranges, at most 128 bytes', () => {
  const packed = (qube: string, ns: number[]) => formatOrigin(rulesOrigin(qube, ns));
  assert.equal(packed('work', [7, 7]), 'qube=work rule=7');
  assert.equal(packed('work', [0, 1, 2, 3, 4, 5, 6, 7]), 'qube=work rules=0-7');
  assert.equal(packed('work', [7, 0, 3, 5, 6, 3]), 'qube=work rules=0,3,5-7');
  const long = packed('a'.repeat(31), Array.from({ length: 5000 }, (_, i) => 2 * i));
  assert.ok(Buffer.byteLength(long) <= 128, long);
  assert.match(long, /^qube=a{31} rules=0,2,4,.*,\.\.\.,9998$/);
  assert.equal(describeOrigin(parseOrigin(long)!), long.replace(/^qube=(a+) rules=(.*)$/, '$1 rules $2 packed'));
});

test('the kernel accepts packed sets built from random interleaved rules (nft -c)', { skip: kernelSkip ?? false }, () => {
  const samples = fc.sample(fc.array(arbRuleMixed, { minLength: 20, maxLength: 80 }), { numRuns: 25, seed: 7 });
  kernelAcceptsAll(samples);
});
