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
import { contains, toPrefix } from '../addr.js';
import { compile } from '../compile.js';
import { emitFull } from '../../ir/emit-text.js';
import { kernelUnavailable, nft, withScratchNs } from '../../../test/cases/compile/kernel.js';
import type { Resolutions } from '../dns.js';

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

test('the kernel accepts packed sets built from random overlapping rules (nft -c)', { skip: kernelSkip ?? false }, () => {
  const samples = fc.sample(fc.array(arbRule, { minLength: 20, maxLength: 60 }), { numRuns: 25, seed: 42 });
  withScratchNs((ns) => {
    for (const rules of samples) {
      const m = defaultLayout();
      m.qubes.get('work')!.rules = rules;
      const rs = compile({ model: m, plan: planNetwork(m, { uplink: 'world' }), resolutions, now: 0 }).rulesets.get('sys-firewall')!;
      const r = nft(ns, emitFull(rs));
      assert.ok(r.ok, `${r.stderr}\nrules: ${JSON.stringify(rules)}`);
    }
  });
});
