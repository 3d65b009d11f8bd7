// Shadowed rules: examples of every shape, the index against the pairwise definition, and the
// definition against the simulator (a shadowed rule removed changes no verdict of the compiled chain).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { covers, matchSpace, shadowedRules } from './shadow.js';
import { parseApiRule } from './rule-parse.js';
import type { Rule } from './rule.js';
import { defaultLayout } from './layout.js';
import { planNetwork } from './topology.js';
import { compile } from '../compile/compile.js';
import type { Resolutions } from '../compile/dns.js';
import { evalChain, PROTO, type Packet } from '../sim/index.js';
import type { Table } from '../ir/types.js';

const rule = (line: string): Rule => {
  const r = parseApiRule(line);
  if (!r.ok) throw new Error(`${line}: ${r.error.message}`);
  return r.value;
};
const shadows = (...lines: string[]) => shadowedRules(lines.map(rule)).map((s) => [s.index, s.by]);

test('examples: what covers what', () => {
  assert.deepEqual(shadows('action=accept', 'action=drop proto=tcp'), [[1, 0]]);
  assert.deepEqual(shadows('action=drop dsthost=10.0.0.0/8', 'action=accept dsthost=10.1.2.3 proto=tcp dstports=443'), [[1, 0]]);
  assert.deepEqual(shadows('action=drop dsthost=10.1.0.0/16 proto=tcp', 'action=accept dsthost=10.0.0.0/8 proto=tcp'), [], 'a wider net is not covered');
  assert.deepEqual(shadows('action=drop dsthost=10.0.0.0/8', 'action=accept dsthost=2001:db8::1'), [], 'dst4 never covers dst6');
  assert.deepEqual(shadows('action=drop dsthost=2001:db8::/32 proto=udp', 'action=accept dsthost=2001:db8:1::5 proto=udp dstports=53'), [[1, 0]]);
  assert.deepEqual(shadows('action=drop proto=tcp dstports=1-1024', 'action=accept proto=tcp dstports=80-443'), [[1, 0]]);
  // specialtarget=dns without proto is tcp and udp: it covers either, and neither covers it.
  assert.deepEqual(shadows('action=drop specialtarget=dns proto=tcp', 'action=accept specialtarget=dns'), []);
  assert.deepEqual(shadows('action=drop proto=tcp dstports=80-90', 'action=accept proto=tcp dstports=85-95'), []);
  assert.deepEqual(shadows('action=drop proto=udp', 'action=accept proto=tcp'), []);
  // icmp types
  assert.deepEqual(shadows('action=drop proto=icmp', 'action=accept proto=icmp icmptype=8'), [[1, 0]]);
  assert.deepEqual(shadows('action=drop proto=icmp icmptype=0', 'action=accept proto=icmp icmptype=8', 'action=accept proto=icmp icmptype=8'), [[2, 1]]);
  // specialtarget=dns is tcp and udp to port 53 of the resolvers
  assert.deepEqual(shadows('action=accept specialtarget=dns', 'action=drop specialtarget=dns proto=udp'), [[1, 0]]);
  assert.deepEqual(shadows('action=accept proto=udp dstports=53', 'action=drop specialtarget=dns proto=udp'), [[1, 0]]);
  assert.deepEqual(shadows('action=accept specialtarget=dns', 'action=drop proto=udp dstports=53'), [], 'dns covers only the resolvers');
  // names: covered by the same name or by a rule without destination, never by an address
  assert.deepEqual(shadows('action=accept dsthost=a.example', 'action=drop dsthost=a.example proto=tcp'), [[1, 0]]);
  assert.deepEqual(shadows('action=accept dsthost=a.example', 'action=drop dsthost=b.example'), []);
  assert.deepEqual(shadows('action=accept dsthost=0.0.0.0/0', 'action=drop dsthost=a.example'), []);
  assert.deepEqual(shadows('action=accept proto=tcp', 'action=drop dsthost=a.example proto=tcp dstports=443'), [[1, 0]]);
  // a rule that expires covers only rules that expire no later
  assert.deepEqual(shadows('action=accept expire=2000000000', 'action=drop proto=tcp'), []);
  assert.deepEqual(shadows('action=accept expire=2000000000', 'action=drop proto=tcp expire=1900000000'), [[1, 0]]);
  assert.deepEqual(shadows('action=accept expire=1900000000', 'action=drop proto=tcp expire=2000000000'), []);
  // rules that match nothing by themselves are the compiler's warnings (QNET4002/4004), not shadows
  // (the parsers refuse them, but a Rule built in code can be one)
  assert.deepEqual(shadowedRules([{ action: 'accept' }, { action: 'drop', specialtarget: 'dns', proto: 'icmp' }]), []);
  // the earliest covering rule is named
  assert.deepEqual(shadows('action=drop proto=tcp', 'action=accept', 'action=drop proto=tcp dstports=22'), [[2, 0]]);
});

test('many port ranges in one bucket (the range index) still find their coverer', () => {
  const lines = Array.from({ length: 100 }, (_, k) => `action=accept proto=tcp dstports=${k * 100}-${k * 100 + 50}`);
  lines.push('action=drop proto=tcp dstports=5010-5020', 'action=drop proto=tcp dstports=5040-5060');
  assert.deepEqual(shadows(...lines), [[100, 50]]);
});

// Small pools, so rules often overlap and cover each other.
const NETS4 = ['203.0.113.0/24', '203.0.113.0/25', '203.0.113.128/26', '203.0.113.1', '203.0.113.130', '198.51.100.7', '10.139.1.1', '0.0.0.0/0'];
const NETS6 = ['2001:db8::/32', '2001:db8::1', '2001:db8:1::/48'];
const NAMES = ['a.example', 'b.example'];
const arbLine = fc
  .record({
    action: fc.constantFrom('accept', 'drop'),
    host: fc.option(fc.constantFrom(...NETS4, ...NETS6, ...NAMES), { nil: undefined }),
    proto: fc.option(fc.constantFrom('tcp', 'udp', 'icmp'), { nil: undefined }),
    ports: fc.option(fc.constantFrom('22', '53', '80', '443', '1-1024', '50-60', '400-500', '1-65535'), { nil: undefined }),
    icmp: fc.option(fc.constantFrom(0, 8), { nil: undefined }),
    dns: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
    expire: fc.option(fc.constantFrom(1900000000, 2000000000), { nil: undefined }),
  })
  .map((p) => {
    const out = [`action=${p.action}`];
    if (p.expire) out.push(`expire=${p.expire}`);
    if (p.host) out.push(`dsthost=${p.host}`);
    if (p.proto) out.push(`proto=${p.proto}`);
    if (p.dns && p.proto !== 'icmp') out.push('specialtarget=dns');
    if (p.ports && p.proto !== 'icmp' && p.proto) out.push(`dstports=${out.includes('specialtarget=dns') ? '53' : p.ports}`);
    if (p.icmp !== undefined && p.proto === 'icmp') out.push(`icmptype=${p.icmp}`);
    return rule(out.join(' '));
  });

test('the index finds exactly the rules the pairwise definition finds, with a covering rule', () => {
  fc.assert(
    fc.property(fc.array(arbLine, { maxLength: 60 }), (rules) => {
      const spaces = rules.map(matchSpace);
      const naive = new Set(spaces.flatMap((s, i) => (spaces.slice(0, i).some((e) => covers(e, s)) ? [i] : [])));
      const got = shadowedRules(rules);
      assert.deepEqual(got.map((x) => x.index), [...naive]);
      for (const x of got) assert.ok(x.by < x.index && covers(spaces[x.by]!, spaces[x.index]!), JSON.stringify(x));
    }),
    { numRuns: 500 },
  );
});

const resolutions: Resolutions = new Map([
  ['a.example', { name: 'a.example', a: ['203.0.113.1', '198.51.100.7'], aaaa: [], ttl: 300 }],
  ['b.example', { name: 'b.example', a: ['203.0.113.2'], aaaa: [], ttl: 300 }],
]);

function workChain(rules: Rule[]): Table {
  const m = defaultLayout();
  m.qubes.get('work')!.rules = rules;
  const out = compile({ model: m, plan: planNetwork(m, { uplink: 'world' }), resolutions, now: 0 });
  return out.rulesets.get('sys-firewall')!.tables.find((t) => t.family === 'ip' && t.name === 'qubes-firewall')!;
}

const DADDRS = ['203.0.113.1', '203.0.113.2', '203.0.113.77', '203.0.113.130', '203.0.113.200', '198.51.100.7', '10.139.1.1', '10.139.1.2', '192.0.2.1'];
const verdict = (t: Table, daddr: string, proto: 'tcp' | 'udp' | 'icmp', n: number) => {
  const packet: Packet = { family: 4, saddr: '10.137.0.3', daddr, l4proto: PROTO[proto], ...(proto === 'icmp' ? { icmpType: n } : { sport: 40000, dport: n }), iifname: 'vif3.0', iifgroup: 2, ct: 'new' };
  return evalChain(t, 'qbs-10-137-0-3', packet).verdict;
};

test('against the simulator: removing a shadowed rule changes no verdict of the compiled chain', () => {
  fc.assert(
    fc.property(fc.array(arbLine, { minLength: 1, maxLength: 25 }), (rules) => {
      const found = shadowedRules(rules);
      if (!found.length) return;
      const full = workChain(rules);
      const ports = [...new Set([21, 22, 23, 53, 54, 80, 443, 1024, 1025, 50, 60, 400, 500, 65535])];
      for (const { index } of found.slice(0, 3)) {
        const less = workChain(rules.filter((_, i) => i !== index));
        for (const d of DADDRS) {
          for (const p of ['tcp', 'udp'] as const) for (const port of ports) assert.equal(verdict(less, d, p, port), verdict(full, d, p, port), `rule ${index}: ${d} ${p} ${port}`);
          for (const t of [0, 3, 8]) assert.equal(verdict(less, d, 'icmp', t), verdict(full, d, 'icmp', t), `rule ${index}: ${d} icmp ${t}`);
        }
      }
    }),
    { numRuns: 150 },
  );
});
