// Address plan used by every simulator test (kube-proxy's convention: one plan, stated once):
//   10.137.0.0/16   qubes (work 10.137.0.3, personal 10.137.0.4, sys-firewall 10.137.0.2, sys-net 10.137.0.1)
//   10.139.1.1/2    Qubes' virtual DNS resolvers
//   203.0.113.0/24  hosts on the outside ("internet")
//   198.51.100.0/24 the top netvm's uplink (world side 198.51.100.1)
//   2001:db8::/32   IPv6 on the outside
//
// Base-chain semantics of the evaluator, one nftables rule per test where possible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Ruleset, Table } from '../ir/types.js';
import { evalChain, evalHook, type Counters } from './evaluate.js';
import type { Packet } from './packet.js';
import { SimLoadError } from './prepare.js';
import {
  ACCEPT, addr, base, chain, CONTINUE, COUNTER, ct, dnat, DROP, eq, goto, inAnon, inSet, int, jump, log, ne, range, reject, RETURN, rule, set,
  str, sym, table, vmap, vmapOf, wild, ADMIN_PROHIBITED,
} from './testing/ir-build.js';
import { describeOrigin, type Origin } from '../model/origin.js';

const tcp = (daddr: string, dport: number, extra: Partial<Packet> = {}): Packet => ({ family: 4, saddr: '10.137.0.3', daddr, l4proto: 6, dport, ...extra });
const fwd = (name: string, prio: number, rules: ReturnType<typeof rule>[], policy: 'accept' | 'drop' = 'accept') => chain(name, rules, base('filter', 'forward', prio, policy));

interface HookCase {
  name: string;
  ruleset: Ruleset;
  packet: Packet;
  verdict: 'accept' | 'drop' | 'reject';
  /** Origin text of the deciding rule (drop/reject), or of the last step's rule. */
  by?: string;
  /** Base chains that ran, as `table/chain`. */
  ran?: string[];
  family?: 4 | 6;
}

const hookCases: HookCase[] = [
  {
    name: 'an accept in one base chain does not skip the next base chain of the hook',
    ruleset: { tables: [table('ip', 'a', [fwd('forward', 0, [rule('a accepts', [], ACCEPT)])]), table('ip', 'b', [fwd('forward', 10, [rule('b drops', [], DROP)])])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'drop',
    by: 'b drops',
    ran: ['a/forward', 'b/forward'],
  },
  {
    name: 'a drop is final: later base chains never run',
    ruleset: { tables: [table('ip', 'a', [fwd('forward', 0, [rule('a drops', [], DROP)])]), table('ip', 'b', [fwd('forward', 10, [rule('b accepts', [], ACCEPT)])])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'drop',
    by: 'a drops',
    ran: ['a/forward'],
  },
  {
    name: 'a reject is final and carries its type',
    ruleset: { tables: [table('ip', 'a', [fwd('forward', 0, [rule('a rejects', [], reject(ADMIN_PROHIBITED))]), fwd('later', 5, [rule('never', [], ACCEPT)])])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'reject',
    by: 'a rejects',
    ran: ['a/forward'],
  },
  {
    name: 'base chains run by priority, not by table order',
    ruleset: { tables: [table('ip', 'late', [fwd('forward', 10, [rule('late drops', [], DROP)])]), table('ip', 'early', [fwd('forward', -10, [rule('early accepts', [], ACCEPT)])])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'drop',
    ran: ['early/forward', 'late/forward'],
  },
  {
    // nf_hook_entries_grow puts a new hook before existing ones of the same priority; the
    // differential test against the kernel pinned this down.
    name: 'equal priorities: the chain registered last (later in the ruleset) runs first',
    ruleset: { tables: [table('ip', 'first', [fwd('forward', 0, [])]), table('ip', 'second', [fwd('forward', 0, [])])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'accept',
    ran: ['second/forward', 'first/forward'],
  },
  {
    name: 'the policy decides when no rule does',
    ruleset: { tables: [table('ip', 'a', [fwd('forward', 0, [rule('other port', [eq('tcp dport', int(22))], ACCEPT)], 'drop')])] },
    packet: tcp('203.0.113.5', 443),
    verdict: 'drop',
    ran: ['a/forward'],
  },
  {
    name: 'an ip table does not see IPv6 packets',
    ruleset: { tables: [table('ip', 'v4only', [fwd('forward', 0, [rule('drop all v4', [], DROP)])])] },
    packet: { family: 6, saddr: '2001:db8::3', daddr: '2001:db8::5', l4proto: 6, dport: 443 },
    verdict: 'accept',
    ran: [],
    family: 6,
  },
  {
    name: 'an inet table sees IPv6 packets, and ip saddr != in it does not match them',
    ruleset: { tables: [table('inet', 'both', [fwd('forward', 0, [rule('v4 not from x', [ne('ip saddr', addr('10.0.0.1'))], DROP), rule('v6 drop', [eq('meta nfproto', sym('ipv6'))], reject())])])] },
    packet: { family: 6, saddr: '2001:db8::3', daddr: '2001:db8::5', l4proto: 6, dport: 443 },
    verdict: 'reject',
    by: 'v6 drop',
    family: 6,
  },
];

for (const c of hookCases) {
  test(c.name, () => {
    const fam = c.family ?? 4;
    const r = evalHook(c.ruleset, 'forward', fam, c.packet);
    assert.equal(r.verdict, c.verdict, explain(r));
    if (c.by !== undefined) assert.equal(describeOrigin(r.steps.at(-1)!.by!.origin), c.by, explain(r));
    if (c.ran) assert.deepEqual(r.steps.map((s) => `${s.table}/${s.chain}`), c.ran);
  });
}

function explain(r: { steps: { table: string; chain: string; verdict: string; by?: { origin: Origin } }[] }): string {
  return `By matching:\n${r.steps.map((s) => `  ${s.table}/${s.chain}: ${s.verdict}${s.by ? ` by ${describeOrigin(s.by.origin)}` : ''}`).join('\n')}`;
}

// ---- Chain-level control flow -----------------------------------------------------------------

const flow = table('ip', 'flow', [
  fwd('forward', 0, [
    rule('to sub', [eq('tcp dport', int(1))], jump('sub')),
    rule('after sub', [eq('tcp dport', int(1))], DROP),
    rule('goto sub', [eq('tcp dport', int(2))], goto('sub')),
    rule('never after goto', [eq('tcp dport', int(2))], DROP),
    rule('to returner', [eq('tcp dport', int(3))], jump('returner')),
    rule('after returner', [eq('tcp dport', int(3))], reject()),
    rule('continue', [eq('tcp dport', int(4))], CONTINUE),
    rule('after continue', [eq('tcp dport', int(4))], DROP),
    rule('base return', [eq('tcp dport', int(5))], RETURN),
    rule('after base return', [eq('tcp dport', int(5))], DROP),
    rule('nested', [eq('tcp dport', int(6))], jump('outer')),
  ], 'accept'),
  chain('sub', [rule('sub counts', [], COUNTER)]),
  chain('returner', [rule('return early', [], RETURN), rule('never reached', [], ACCEPT)]),
  chain('outer', [rule('to inner', [], jump('inner')), rule('after inner', [], DROP)]),
  chain('inner', [rule('inner accepts', [eq('ip daddr', addr('203.0.113.0', 24))], ACCEPT)]),
]);

const flowCases: { name: string; dport: number; daddr?: string; verdict: string; by?: string; path: string[] }[] = [
  { name: 'jump runs the target, and its end returns to the next rule', dport: 1, verdict: 'drop', by: 'after sub', path: ['forward', 'sub'] },
  { name: 'goto does not come back: the end of the target applies the base policy', dport: 2, verdict: 'accept', path: ['forward', 'sub'] },
  { name: 'return in a jumped-to chain resumes the caller', dport: 3, verdict: 'reject', by: 'after returner', path: ['forward', 'returner'] },
  { name: 'continue moves on to the next rule', dport: 4, verdict: 'drop', by: 'after continue', path: ['forward'] },
  { name: 'return in a base chain applies its policy', dport: 5, verdict: 'accept', path: ['forward'] },
  { name: 'an accept deep in nested jumps ends the base chain', dport: 6, daddr: '203.0.113.9', verdict: 'accept', by: 'inner accepts', path: ['forward', 'outer', 'inner'] },
  { name: 'nested chains unwind one level at a time', dport: 6, daddr: '192.0.2.9', verdict: 'drop', by: 'after inner', path: ['forward', 'outer', 'inner'] },
];

for (const c of flowCases) {
  test(c.name, () => {
    const r = evalChain(flow, 'forward', tcp(c.daddr ?? '203.0.113.5', c.dport));
    assert.equal(r.verdict, c.verdict);
    assert.equal(r.by && describeOrigin(r.by.origin), c.by);
    assert.deepEqual(r.path, c.path);
  });
}

test('a regular chain that ends reports continue to its caller', () => {
  assert.equal(evalChain(flow, 'sub', tcp('203.0.113.5', 1)).verdict, 'continue');
});

test('counters count only packets that reach them, and rules evaluated are counted', () => {
  const counters: Counters = new Map();
  const r = evalChain(flow, 'forward', tcp('203.0.113.5', 1), { counters });
  const sub = flow.chains.find((c) => c.name === 'sub')!.rules[0]!;
  assert.equal(counters.get(sub), 1);
  evalChain(flow, 'forward', tcp('203.0.113.5', 4), { counters });
  assert.equal(counters.get(sub), 1);
  assert.equal(r.rulesEvaluated, 3, 'to sub, sub counts, after sub');
});

// ---- Verdict maps, sets, intervals, concatenations, wildcards --------------------------------

const lookups = table('ip', 'lookups', [
  fwd('forward', 0, [
    rule('dispatch by source', [], vmap(['ip saddr'], 'dispatch')),
    rule('after dispatch', [eq('ip saddr', addr('10.137.0.9'))], DROP),
    rule('blocked nets', [inSet(['ip daddr'], 'blocked')], reject()),
    rule('allowed pairs', [inSet(['ip daddr', 'tcp dport'], 'pairs')], ACCEPT),
    rule('allowed ranges', [inSet(['ip daddr', 'tcp dport'], 'ranges')], ACCEPT),
    rule('not from vifs', [ne('iifname', wild('vif'))], ACCEPT),
    rule('ports anon', [inAnon('tcp dport', [int(22), range(8000, 8099)])], ACCEPT),
    rule('icmp echo', [eq('icmp type', sym('echo-request'))], ACCEPT),
    rule('not in trusted', [inSet(['ip saddr'], 'trusted', '!=')], DROP),
  ], 'accept'),
  chain('qbs-a', [rule('a drops 443', [eq('tcp dport', int(443))], DROP)]),
], [
  vmapOf('dispatch', ['ipv4_addr'], true, [[addr('10.137.0.3'), { kind: 'jump', chain: 'qbs-a' }], [addr('10.137.1.0', 24), { kind: 'drop' }]]),
  set('blocked', ['ipv4_addr'], true, [addr('192.0.2.0', 25), addr('192.0.2.128', 25), addr('198.18.0.1')]),
  set('pairs', ['ipv4_addr', 'inet_service'], false, [[addr('203.0.113.5'), int(443)], [addr('203.0.113.6'), int(80)]]),
  set('ranges', ['ipv4_addr', 'inet_service'], true, [[addr('203.0.113.64', 26), range(1000, 1999)]]),
  set('trusted', ['ipv4_addr'], false, [addr('10.137.0.4')]),
]);

const vif = { iifname: 'vif3.0' };
const lookupCases: { name: string; packet: Packet; verdict: string; by?: string }[] = [
  { name: 'a verdict map hit jumps to the client chain', packet: tcp('203.0.113.5', 443, vif), verdict: 'drop', by: 'a drops 443' },
  { name: 'a verdict map hit on an interval element applies its verdict', packet: tcp('203.0.113.5', 443, { ...vif, saddr: '10.137.1.77' }), verdict: 'drop', by: 'dispatch by source' },
  { name: 'a verdict map miss falls through to the next rule', packet: tcp('203.0.113.5', 443, { ...vif, saddr: '10.137.0.9' }), verdict: 'drop', by: 'after dispatch' },
  { name: 'interval sets match inside a prefix (merged halves)', packet: tcp('192.0.2.200', 1, { ...vif, saddr: '10.137.0.4' }), verdict: 'reject', by: 'blocked nets' },
  { name: 'interval sets hold single addresses too', packet: tcp('198.18.0.1', 1, { ...vif, saddr: '10.137.0.4' }), verdict: 'reject', by: 'blocked nets' },
  { name: 'a concatenated key matches the exact pair', packet: tcp('203.0.113.6', 80, { ...vif, saddr: '10.137.0.4' }), verdict: 'accept', by: 'allowed pairs' },
  { name: 'a concatenated key does not match a crossed pair', packet: tcp('203.0.113.6', 443, { ...vif, saddr: '10.137.0.4' }), verdict: 'accept', by: undefined },
  { name: 'a concatenation with a prefix and a port range matches inside both', packet: tcp('203.0.113.100', 1500, { ...vif, saddr: '10.137.0.4' }), verdict: 'accept', by: 'allowed ranges' },
  { name: 'iifname != "vif*" matches an uplink', packet: tcp('203.0.113.100', 9, { iifname: 'eth0', saddr: '10.137.0.5' }), verdict: 'accept', by: 'not from vifs' },
  { name: 'an anonymous set with a range matches inside it', packet: tcp('203.0.113.100', 8042, { ...vif, saddr: '10.137.0.5' }), verdict: 'accept', by: 'ports anon' },
  { name: 'icmp type by name', packet: { family: 4, saddr: '10.137.0.5', daddr: '203.0.113.1', l4proto: 1, icmpType: 8, ...vif }, verdict: 'accept', by: 'icmp echo' },
  { name: '!= @set matches a source outside the set', packet: tcp('203.0.113.100', 9, { ...vif, saddr: '10.137.0.5' }), verdict: 'drop', by: 'not in trusted' },
  { name: '!= @set does not match a source in the set', packet: tcp('203.0.113.100', 9, { ...vif, saddr: '10.137.0.4' }), verdict: 'accept', by: undefined },
  { name: 'iifname is absent where the hook has no input interface, so != "vif*" does not match', packet: tcp('203.0.113.100', 9, { saddr: '10.137.0.4' }), verdict: 'accept', by: undefined },
];

for (const c of lookupCases) {
  test(c.name, () => {
    const r = evalChain(lookups, 'forward', c.packet);
    assert.equal(r.verdict, c.verdict, JSON.stringify(r));
    assert.equal(r.by && describeOrigin(r.by.origin), c.by);
  });
}

// ---- Conntrack visibility and NAT inside one hook --------------------------------------------

test('chains before the conntrack hook (-200) see ct state invalid; later ones see the real state', () => {
  const rs: Ruleset = { tables: [table('ip', 't', [
    chain('raw', [rule('raw sees invalid', [eq('ct state', ct('invalid'))], COUNTER)], base('filter', 'prerouting', -300)),
    chain('filter', [rule('filter sees new', [eq('ct state', ct('new'))], DROP)], base('filter', 'prerouting', 0)),
  ])] };
  const counters: Counters = new Map();
  const r = evalHook(rs, 'prerouting', 4, tcp('203.0.113.5', 443), { counters });
  assert.equal(r.verdict, 'drop');
  assert.equal([...counters.values()][0], 1);
});

test('chains before the conntrack hook see no ct status: neither `ct status dnat` nor its negation matches', () => {
  const rs: Ruleset = { tables: [table('ip', 't', [
    chain('raw', [
      rule('dnat bit', [eq('ct status', sym('dnat'))], DROP),
      rule('no dnat bit', [ne('ct status', sym('dnat'))], DROP),
    ], base('filter', 'prerouting', -300)),
  ])] };
  const r = evalHook(rs, 'prerouting', 4, tcp('203.0.113.5', 443));
  assert.equal(r.verdict, 'accept');
});

const natRs: Ruleset = { tables: [table('ip', 'n', [
  chain('dnat1', [rule('first dnat', [eq('tcp dport', int(8080))], dnat('10.137.0.3', 80))], base('nat', 'prerouting', -100)),
  chain('dnat2', [rule('second dnat', [], dnat('10.137.0.99'))], base('nat', 'prerouting', -90)),
  chain('after', [rule('sees the new destination', [eq('ip daddr', addr('10.137.0.3')), eq('tcp dport', int(80))], log('dnat seen'), ACCEPT)], base('filter', 'prerouting', 0)),
])] };

test('dnat rewrites the destination for later chains, and the first NAT binding wins', () => {
  const r = evalHook(natRs, 'prerouting', 4, tcp('198.51.100.2', 8080));
  assert.equal(r.nat?.kind, 'dnat');
  assert.equal(r.packet.daddr, '10.137.0.3');
  assert.equal(r.packet.dport, 80);
  assert.deepEqual(r.steps.map((s) => s.verdict), ['accept', 'skipped', 'accept']);
  assert.equal(describeOrigin(r.steps[2]!.by!.origin), 'sees the new destination');
  assert.deepEqual(r.steps[2]!.logs, ['dnat seen']);
});

test('nat chains do not run for packets of an established flow', () => {
  const r = evalHook(natRs, 'prerouting', 4, tcp('198.51.100.2', 8080, { ct: 'established' }));
  assert.equal(r.nat, undefined);
  assert.equal(r.packet.daddr, '198.51.100.2');
  assert.deepEqual(r.steps.map((s) => s.verdict), ['skipped', 'skipped', 'accept']);
});

test('a ruleset the kernel would refuse does not load: jump to a missing chain', () => {
  const bad: Table = table('ip', 'bad', [fwd('forward', 0, [rule('dangling', [], jump('nowhere'))])]);
  assert.throws(() => evalChain(bad, 'forward', tcp('203.0.113.5', 1)), SimLoadError);
});

test('a ruleset the kernel would refuse does not load: dnat to something that is not an address', () => {
  const bad: Ruleset = { tables: [table('ip', 'n', [chain('dnat', [rule('bad dnat', [eq('tcp dport', int(1))], dnat('10.137.0.300'))], base('nat', 'prerouting', -100))])] };
  // Refused at load, even for a packet that never reaches the rule.
  assert.throws(() => evalHook(bad, 'prerouting', 4, tcp('203.0.113.5', 443)), SimLoadError);
});

test('a concatenation of iifname and address (Qubes antispoof) matches only the allowed pair', () => {
  const t = table('ip', 'qubes', [chain('antispoof', [rule('allowed', [inSet(['iifname', 'ip saddr'], 'allowed')], ACCEPT), rule('spoof', [], DROP)])], [
    set('allowed', ['ifname', 'ipv4_addr'], false, [[str('vif3.0'), addr('10.137.0.3')], [str('vif4.0'), addr('10.137.0.4')]]),
  ]);
  assert.equal(evalChain(t, 'antispoof', tcp('203.0.113.5', 1, { iifname: 'vif3.0' })).verdict, 'accept');
  assert.equal(evalChain(t, 'antispoof', tcp('203.0.113.5', 1, { iifname: 'vif4.0' })).verdict, 'drop');
});

// ---- Property: a set-merged chain decides like the linear chain it replaces ------------------

test('property: one rule with an address . port set decides like the linear rules it merges', () => {
  const arb = fc.array(fc.record({ net: fc.integer({ min: 0, max: 7 }), port: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 12 });
  fc.assert(
    fc.property(arb, fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 5 }), (elems, host, port) => {
      const a = (n: number) => `203.0.113.${n * 16}`;
      const linear = table('ip', 'lin', [fwd('forward', 0, elems.map((e, i) => rule(`r${i}`, [eq('ip daddr', addr(a(e.net), 28)), eq('tcp dport', int(e.port))], ACCEPT)), 'drop')]);
      const merged = table('ip', 'set', [fwd('forward', 0, [rule('merged', [inSet(['ip daddr', 'tcp dport'], 's')], ACCEPT)], 'drop')], [
        set('s', ['ipv4_addr', 'inet_service'], true, elems.map((e) => [addr(a(e.net), 28), int(e.port)])),
      ]);
      const p = tcp(`203.0.113.${host * 16 + 3}`, port);
      assert.equal(evalChain(merged, 'forward', p).verdict, evalChain(linear, 'forward', p).verdict);
    }),
    { numRuns: 300 },
  );
});
