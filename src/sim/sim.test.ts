// Address plan used by every simulator test (kube-proxy's convention: one plan, stated once):
//   10.137.0.0/16   qubes: sys-net 10.137.0.1, sys-firewall 10.137.0.2, work 10.137.0.3,
//                   personal 10.137.0.4, untrusted 10.137.0.5; vault has no netvm
//   10.139.1.1/2    Qubes' virtual DNS resolvers (DNATed by each netvm to its upstream)
//   192.0.2.53      the world's resolver (sys-net's upstream)
//   203.0.113.0/24  hosts on the outside ("internet"); outside probes come from 203.0.113.10
//   198.51.100.0/24 sys-net's uplink (198.51.100.2; world side 198.51.100.1)
//   2001:db8::/32   IPv6 on the outside
//
// Qubes scenarios, mirroring Qubes' own integration tests, on hand-built Qubes R4.2 rulesets
// (src/sim/testing/qubes.ts). Each case name is a sentence; a failure prints the trace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Rule } from '../model/rule.js';
import { forgetFlows, newSimState } from './conntrack.js';
import type { Probe } from './packet.js';
import { formatTrace } from './trace.js';
import { qubesWorld, type QubesWorldOptions } from './testing/qubes.js';
import { simulate, type SimResult } from './walk.js';
import { describeOrigin } from '../model/origin.js';

const dst4 = (a: string, prefix = 32): Rule['dsthost'] => ({ type: 'dst4', text: `${a}/${prefix}`, addr: a, prefix });
const ports = (p: number) => ({ start: p, end: p });
const ICMP: Rule = { action: 'accept', proto: 'icmp' };
const DNS: Rule = { action: 'accept', specialtarget: 'dns' };

interface Expect {
  verdict: 'accept' | 'drop' | 'reject';
  /** Node where it was delivered or stopped. */
  at: string;
  /** Origin text of the rule that stopped it. */
  by?: string | undefined;
  deliveredTo?: string | undefined;
}
interface Case extends Expect {
  name: string;
  probe: Probe;
}

function check(r: SimResult, e: Expect): void {
  const why = `\n${formatTrace(r)}`;
  assert.equal(r.verdict, e.verdict, why);
  assert.equal(r.node, e.at, why);
  if ('by' in e) assert.equal(r.by && describeOrigin(r.by.origin), e.by, why);
  if (e.deliveredTo !== undefined) assert.equal(r.deliveredTo, e.deliveredTo, why);
}

const work = (to: string, proto: Probe['proto'], dport?: number, extra: Partial<Probe> = {}): Probe => ({ from: 'work', to, proto, ...(dport !== undefined ? { dport } : {}), ...extra });
const REJECTED = (qube: string) => ({ verdict: 'reject' as const, at: 'sys-firewall', by: `policy: ${qube} default drop` });
const DELIVERED = { verdict: 'accept' as const, at: 'world' };

// ---- Scenarios: one rule list for work, several probes -----------------------------------------

const scenarios: { name: string; rules: Rule[] | null; cases: Case[] }[] = [
  {
    name: 'block all (empty rule list)',
    rules: [],
    cases: [
      { name: 'work to 203.0.113.5 tcp/443 is rejected at sys-firewall', probe: work('203.0.113.5', 'tcp', 443), ...REJECTED('work') },
      { name: 'work cannot ping 203.0.113.5', probe: work('203.0.113.5', 'icmp'), ...REJECTED('work') },
      { name: 'work cannot ask the virtual DNS', probe: work('10.139.1.1', 'udp', 53), ...REJECTED('work') },
    ],
  },
  {
    name: 'ICMP only',
    rules: [ICMP],
    cases: [
      { name: 'work pings 203.0.113.5', probe: work('203.0.113.5', 'icmp'), ...DELIVERED },
      { name: 'work to 203.0.113.5 tcp/443 is rejected', probe: work('203.0.113.5', 'tcp', 443), ...REJECTED('work') },
      { name: 'work to the virtual DNS is rejected', probe: work('10.139.1.1', 'udp', 53), ...REJECTED('work') },
    ],
  },
  {
    name: 'ICMP and DNS',
    rules: [ICMP, DNS],
    cases: [
      { name: 'work pings 203.0.113.5', probe: work('203.0.113.5', 'icmp'), ...DELIVERED },
      { name: 'work asks 10.139.1.1 udp/53 and reaches the world resolver', probe: work('10.139.1.1', 'udp', 53), ...DELIVERED, deliveredTo: '192.0.2.53' },
      { name: 'work asks 10.139.1.2 tcp/53 and reaches the world resolver', probe: work('10.139.1.2', 'tcp', 53), ...DELIVERED, deliveredTo: '192.0.2.53' },
      { name: 'work to another resolver 203.0.113.53 udp/53 is rejected', probe: work('203.0.113.53', 'udp', 53), ...REJECTED('work') },
    ],
  },
  {
    name: 'allow one target',
    rules: [{ action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: ports(443) }],
    cases: [
      { name: 'work reaches 203.0.113.5 tcp/443', probe: work('203.0.113.5', 'tcp', 443), ...DELIVERED },
      { name: 'work to 203.0.113.5 tcp/80 is rejected', probe: work('203.0.113.5', 'tcp', 80), ...REJECTED('work') },
      { name: 'work to 203.0.113.6 tcp/443 is rejected', probe: work('203.0.113.6', 'tcp', 443), ...REJECTED('work') },
      { name: 'work to 203.0.113.5 udp/443 is rejected', probe: work('203.0.113.5', 'udp', 443), ...REJECTED('work') },
    ],
  },
  {
    name: 'deny one target',
    rules: [{ action: 'drop', dsthost: dst4('203.0.113.66') }, { action: 'accept' }],
    cases: [
      { name: 'work to 203.0.113.66 tcp/443 is rejected by rule 0', probe: work('203.0.113.66', 'tcp', 443), verdict: 'reject', at: 'sys-firewall', by: 'work rule 0' },
      { name: 'work reaches 203.0.113.67 tcp/443', probe: work('203.0.113.67', 'tcp', 443), ...DELIVERED },
      { name: 'work reaches a /24 neighbour of the denied host on udp', probe: work('203.0.113.65', 'udp', 123), ...DELIVERED },
    ],
  },
  {
    name: 'isolation between qubes (work accepts everything)',
    rules: null,
    cases: [
      { name: 'work to personal tcp/22 is dropped at sys-firewall', probe: work('10.137.0.4', 'tcp', 22), verdict: 'drop', at: 'sys-firewall', by: 'base: new flows to downstream qubes' },
      { name: 'personal to work tcp/22 is dropped at sys-firewall', probe: { from: 'personal', to: '10.137.0.3', proto: 'tcp', dport: 22 }, verdict: 'drop', at: 'sys-firewall', by: 'base: new flows to downstream qubes' },
      { name: 'work pings its gateway', probe: work('10.137.0.2', 'icmp'), verdict: 'accept', at: 'sys-firewall' },
      { name: 'work to a service on its gateway is rejected host-prohibited', probe: work('10.137.0.2', 'tcp', 22), verdict: 'reject', at: 'sys-firewall', by: 'base: host-prohibited' },
    ],
  },
  {
    name: 'anti-spoofing',
    rules: null,
    cases: [
      { name: 'work sending as personal is dropped at sys-firewall', probe: work('203.0.113.5', 'tcp', 443, { src: '10.137.0.4' }), verdict: 'drop', at: 'sys-firewall', by: 'base: antispoof' },
      { name: 'the outside sending as sys-firewall is dropped at sys-net', probe: { from: 'outside', to: '198.51.100.2', proto: 'tcp', dport: 22, src: '10.137.0.2' }, verdict: 'drop', at: 'sys-net', by: 'qubes-firewall: connected ip from upstream' },
    ],
  },
  {
    name: 'no network',
    rules: null,
    cases: [
      { name: 'vault (no netvm) reaches nothing', probe: { from: 'vault', to: '203.0.113.5', proto: 'tcp', dport: 443 }, verdict: 'drop', at: 'vault', by: undefined },
      { name: 'work has no IPv6 address, so an IPv6 probe goes nowhere', probe: work('2001:db8::5', 'tcp', 443), verdict: 'drop', at: 'work', by: undefined },
    ],
  },
  {
    name: 'from the outside',
    rules: null,
    cases: [
      { name: 'the outside to sys-net tcp/22 is dropped by its input policy', probe: { from: 'outside', to: '198.51.100.2', proto: 'tcp', dport: 22 }, verdict: 'drop', at: 'sys-net', by: undefined },
      { name: 'the outside cannot reach work: sys-net has no route and the packet is lost outside', probe: { from: 'outside', to: '10.137.0.3', proto: 'tcp', dport: 22 }, verdict: 'drop', at: 'world', by: undefined },
    ],
  },
];

for (const s of scenarios) {
  const world = qubesWorld({ rules: { work: s.rules } });
  for (const c of s.cases) test(`${s.name}: ${c.name}`, () => check(simulate(world, c.probe), c));
}

// ---- Variants: override maps that must each change something (kube-proxy's packet-flow tests) --

// Qubes' own example policy (§6): ICMP, DNS, and one host on tcp/443.
const baseRules: Rule[] = [ICMP, DNS, { action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: ports(443) }];
const baseCases: Case[] = [
  { name: 'work pings 203.0.113.9', probe: work('203.0.113.9', 'icmp'), ...DELIVERED },
  { name: 'work resolves through 10.139.1.1', probe: work('10.139.1.1', 'udp', 53), ...DELIVERED, deliveredTo: '192.0.2.53' },
  { name: 'work reaches 203.0.113.5 tcp/443', probe: work('203.0.113.5', 'tcp', 443), ...DELIVERED },
  { name: 'work to 203.0.113.6 tcp/443 is rejected by its policy', probe: work('203.0.113.6', 'tcp', 443), ...REJECTED('work') },
  { name: 'personal (no firewall file) reaches 203.0.113.6 tcp/80', probe: { from: 'personal', to: '203.0.113.6', proto: 'tcp', dport: 80 }, ...DELIVERED },
  // Both forward chains sit at priority 0 here, as in Qubes, and the kernel runs the one registered
  // last first: qubes-firewall (loaded after the base rules), so work's own rules answer first.
  { name: 'work to personal tcp/22 is refused by work\'s rules before the base drop', probe: work('10.137.0.4', 'tcp', 22), ...REJECTED('work') },
];

const variants: { name: string; options: QubesWorldOptions; overrides: Record<string, Partial<Expect>> }[] = [
  {
    name: 'work has no firewall file',
    options: { rules: { work: null } },
    overrides: {
      'work to 203.0.113.6 tcp/443 is rejected by its policy': { ...DELIVERED, by: undefined },
      // work accepts everything, so Qubes' base forward chain is what stops it
      'work to personal tcp/22 is refused by work\'s rules before the base drop': { verdict: 'drop', at: 'sys-firewall', by: 'base: new flows to downstream qubes' },
    },
  },
  {
    name: 'sys-firewall lost its qubes-firewall table (daemon stopped cleanly: fail-open, §4.6)',
    options: { rules: { work: baseRules }, withoutFirewallTable: ['sys-firewall'] },
    overrides: {
      'work to 203.0.113.6 tcp/443 is rejected by its policy': { ...DELIVERED, by: undefined },
      'work to personal tcp/22 is refused by work\'s rules before the base drop': { verdict: 'drop', at: 'sys-firewall', by: 'base: new flows to downstream qubes' },
    },
  },
  {
    name: 'sys-net has no upstream resolver (dnat-dns drops port 53)',
    options: { rules: { work: baseRules }, upstreamDns: [] },
    overrides: { 'work resolves through 10.139.1.1': { verdict: 'drop', at: 'sys-net', by: 'dns: no upstream', deliveredTo: undefined } },
  },
  {
    name: 'personal gets an empty rule list',
    options: { rules: { work: baseRules, personal: [] } },
    overrides: { 'personal (no firewall file) reaches 203.0.113.6 tcp/80': REJECTED('personal') },
  },
  {
    name: 'Qubes-style linear dispatch instead of a verdict map',
    options: { rules: { work: baseRules }, dispatch: 'linear' },
    overrides: {},
  },
];

test('variants: every override names a base case and changes its expectation', () => {
  const names = new Set(baseCases.map((c) => c.name));
  for (const v of variants) {
    for (const [name, o] of Object.entries(v.overrides)) {
      assert.ok(names.has(name), `variant '${v.name}': override '${name}' matches no test case name`);
      const b = baseCases.find((c) => c.name === name)!;
      const changed = Object.entries(o).some(([k, val]) => (b as unknown as Record<string, unknown>)[k] !== val);
      assert.ok(changed, `variant '${v.name}': override for '${name}' is the same as the base value`);
    }
  }
});

for (const v of [{ name: 'base', options: { rules: { work: baseRules } } as QubesWorldOptions, overrides: {} as Record<string, Partial<Expect>> }, ...variants]) {
  const world = qubesWorld(v.options);
  for (const c of baseCases) test(`${v.name}: ${c.name}`, () => check(simulate(world, c.probe), { ...c, ...v.overrides[c.name] }));
}

// ---- Flows across probes ----------------------------------------------------------------------

const https: Probe = work('203.0.113.5', 'tcp', 443);
const allowHttps: Rule[] = [{ action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: ports(443) }];

test('an established flow survives a rule change, a new flow does not', () => {
  const state = newSimState();
  const open = simulate(qubesWorld({ rules: { work: allowHttps } }), https, state);
  check(open, DELIVERED);
  assert.equal(open.reply?.verdict, 'accept', formatTrace(open));
  const blocked = qubesWorld({ rules: { work: [] } });
  const again = simulate(blocked, https, state);
  check(again, { ...DELIVERED, by: undefined });
  const fw = again.hops.find((h) => h.node === 'sys-firewall')!;
  assert.equal(fw.ct, 'established');
  assert.deepEqual(fw.steps.find((s) => s.table === 'qubes-firewall' && s.hook === 'forward')?.by?.origin, { kind: 'base', part: 'qubes-firewall: established' });
  check(simulate(blocked, { ...https, sport: 50001 }, state), REJECTED('work'));
});

test('tightening rules and forgetting the flows they no longer allow cuts the established flow', () => {
  const state = newSimState();
  simulate(qubesWorld({ rules: { work: allowHttps } }), https, state);
  const n = forgetFlows(state, (c) => c.orig.dst === '203.0.113.5');
  assert.ok(n >= 1);
  check(simulate(qubesWorld({ rules: { work: [] } }), https, state), REJECTED('work'));
});

test('a flow that was never answered stays new, so the new rules judge it', () => {
  const state = newSimState();
  simulate(qubesWorld({ rules: { work: allowHttps } }), https, state, { reply: false });
  check(simulate(qubesWorld({ rules: { work: [] } }), https, state), REJECTED('work'));
});

test('DNS via 10.139.1.1: no-op DNAT in sys-firewall, DNAT to 192.0.2.53 in sys-net, and the answer comes from 10.139.1.1', () => {
  const r = simulate(qubesWorld({ rules: { work: [DNS] } }), work('10.139.1.1', 'udp', 53));
  check(r, { ...DELIVERED, deliveredTo: '192.0.2.53' });
  const fw = r.hops.find((h) => h.node === 'sys-firewall')!;
  const net = r.hops.find((h) => h.node === 'sys-net')!;
  assert.equal(fw.steps.find((s) => s.chain === 'dnat-dns')?.nat?.kind, 'dnat', 'sys-firewall DNATs to its own upstream, 10.139.1.1');
  assert.deepEqual(fw.nat.map((n) => [n.field, n.from, n.to]), [['saddr', '10.137.0.3', '10.137.0.2']]);
  assert.deepEqual(net.nat.map((n) => [n.field, n.from, n.to]), [['daddr', '10.139.1.1', '192.0.2.53'], ['saddr', '10.137.0.2', '198.51.100.2']]);
  const reply = r.reply!;
  assert.equal(reply.verdict, 'accept', formatTrace(r));
  assert.equal(reply.node, 'work');
  const last = reply.hops.at(-1)!;
  assert.equal(last.packet.saddr, '10.139.1.1', 'the reply is un-NATed back to the virtual resolver');
  assert.equal(last.packet.daddr, '10.137.0.3');
});

test('counters accumulate across probes kept in one state', () => {
  const state = newSimState();
  const world = qubesWorld();
  simulate(world, work('10.137.0.4', 'tcp', 22), state);
  const r = simulate(world, work('10.137.0.4', 'tcp', 23), state);
  const fw = r.hops.find((h) => h.node === 'sys-firewall')!;
  assert.deepEqual(fw.counted.map((c) => [describeOrigin(c.rule.origin), c.packets]), [['base: new flows to downstream qubes', 2]]);
});

test('the trace explains the verdict hop by hop and names the deciding rule', () => {
  const text = formatTrace(simulate(qubesWorld({ rules: { work: [ICMP] } }), https));
  assert.match(text, /^work → 203\.0\.113\.5 tcp\/443: REJECT \(icmp admin-prohibited\)/);
  assert.match(text, /By matching/);
  assert.match(text, /sys-firewall \(in vif3\.0\)/);
  assert.match(text, /forward ip qubes-firewall forward \(filter 0\): reject by policy: work default drop \[qbs-10-137-0-3 rule 1\]/);
});

test('rules traversed: a verdict map sends a packet to its chain without walking other clients', () => {
  const many = qubesWorld({ rules: { work: baseRules } });
  const lin = qubesWorld({ rules: { work: baseRules }, dispatch: 'linear' });
  // From the last client, so the linear layout has other clients' rules to walk past first.
  const probe: Probe = { ...https, from: 'untrusted' };
  const a = simulate(many, probe, newSimState(), { reply: false });
  const b = simulate(lin, probe, newSimState(), { reply: false });
  assert.equal(a.verdict, b.verdict);
  assert.ok(a.rulesEvaluated < b.rulesEvaluated, `${a.rulesEvaluated} vs ${b.rulesEvaluated}`);
});
