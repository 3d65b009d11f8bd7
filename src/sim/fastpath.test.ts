// The verdict-only walk ({ trace: false, reply: false }, no state) shares code with the traced one
// but writes into scratch objects instead of allocating hops, flows and hook results. These tests
// hold the two together: the same verdict, node, reason, deciding rule and rule count on every
// probe, and a caller's state that is used between verdict-only probes tracks flows and counters
// exactly as it does alone. Also the typed-array table behind exact numeric set tuples.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compile } from '../compile/compile.js';
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import type { Rule } from '../model/rule.js';
import { planNetwork } from '../model/topology.js';
import { newSimState, type SimState } from './conntrack.js';
import type { Probe } from './packet.js';
import { ConcatIndex } from './setindex.js';
import { preparePlan, route } from './route.js';
import { qubesWorld } from './testing/qubes.js';
import type { Atom, Scalar } from './values.js';
import { simulate, type SimResult, type World } from './walk.js';

const dst4 = (a: string, prefix = 32): Rule['dsthost'] => ({ type: 'dst4', text: `${a}/${prefix}`, addr: a, prefix });

function compiled(rules: Record<string, Rule[] | null>): World & { model: Model } {
  const model = defaultLayout();
  for (const [name, r] of Object.entries(rules)) model.qubes.set(name, { ...model.qubes.get(name)!, rules: r });
  model.qubes.set('sys-net', { ...model.qubes.get('sys-net')!, features: { ipv6: '1' } });
  const plan = planNetwork(model, { uplink: 'world' });
  return { model, plan, rulesets: compile({ model, plan, resolutions: new Map(), now: 0 }).rulesets };
}

const RULES: Record<string, Rule[] | null> = {
  work: [{ action: 'drop', dsthost: dst4('203.0.113.0', 28) }, { action: 'accept', proto: 'udp', dstports: { start: 50, end: 60 } }, { action: 'accept', proto: 'icmp' }, { action: 'accept', specialtarget: 'dns' }],
  personal: [{ action: 'accept', dsthost: dst4('203.0.113.66'), proto: 'tcp', dstports: { start: 443, end: 443 } }],
  untrusted: [],
};

const worlds: [string, World & { model: Model }][] = [
  ['compiled (qnet layout, IPv6 on)', compiled(RULES)],
  ['hand-built Qubes R4.2, linear dispatch', qubesWorld({ rules: RULES, dispatch: 'linear' })],
];

/** From every qube and the outside to every qube, some outside hosts, the virtual DNS, loopback; tcp, udp, icmp. */
function probes(m: Model): Probe[] {
  const dsts = new Set(['203.0.113.5', '203.0.113.66', '10.139.1.1', '192.0.2.53', '198.51.100.1', '127.0.0.1', '2001:db8:1::5', '10.137.0.99']);
  for (const q of m.qubes.values()) for (const a of [qubeIp(m, q), qubeIp6(m, q)]) if (a) dsts.add(a);
  const svcs: Partial<Probe>[] = [{ proto: 'tcp', dport: 443 }, { proto: 'udp', dport: 53 }, { proto: 'udp', dport: 55 }, { proto: 'icmp' }];
  const out: Probe[] = [];
  for (const from of [...m.qubes.keys(), 'outside']) for (const to of dsts) for (const s of svcs) out.push({ from, to, ...s } as Probe);
  out.push({ from: 'work', to: '203.0.113.5', proto: 'tcp', dport: 443, src: '10.137.0.4' });
  return out;
}

/** What a verdict-only walk promises to report, identically. */
const verdictOf = (r: SimResult) => ({ verdict: r.verdict, node: r.node, reason: r.reason, by: r.by, reject: r.reject, deliveredTo: r.deliveredTo, rulesEvaluated: r.rulesEvaluated });

for (const [name, w] of worlds) {
  test(`verdict-only walks agree with traced walks on every probe: ${name}`, () => {
    let accepted = 0;
    for (const p of probes(w.model)) {
      const full = simulate(w, p);
      const fast = simulate(w, p, undefined, { trace: false, reply: false });
      assert.deepEqual(verdictOf(fast), verdictOf(full), JSON.stringify(p));
      assert.deepEqual(fast.hops, [], 'no hops without tracing');
      assert.equal(fast.reply, undefined);
      // A traced walk that keeps no flows (no reply leg) records the same hops as one that does.
      const { reply: _, ...original } = full;
      assert.deepEqual(simulate(w, p, undefined, { reply: false }), original, JSON.stringify(p));
      if (full.verdict === 'accept') accepted++;
    }
    assert.ok(accepted > 10, 'the probe set reaches something');
  });

  test(`a state used between verdict-only probes tracks flows and counters as it does alone: ${name}`, () => {
    const ps = probes(w.model);
    const dump = (st: SimState) =>
      JSON.stringify({
        ct: [...st.conntrack].map(([n, t]) => [n, [...t].map(([k, r]) => [k, r.dir, r.conn])]),
        co: [...st.counters].map(([n, c]) => [n, [...c.values()]]),
      }, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    const alone = newSimState();
    const mixed = newSimState();
    for (const round of [0, 1]) {
      for (let i = 0; i < ps.length; i++) {
        const a = simulate(w, ps[i]!, alone);
        // Verdict-only probes of other flows, before and after: they must not touch `mixed`.
        simulate(w, ps[(i + 7) % ps.length]!, undefined, { trace: false, reply: false });
        const b = simulate(w, ps[i]!, mixed);
        simulate(w, ps[(i + 13) % ps.length]!, undefined, { trace: false, reply: false });
        assert.deepEqual(b, a, `round ${round}: ${JSON.stringify(ps[i])}`);
      }
    }
    assert.equal(dump(mixed), dump(alone));
    // Established flows are what the second round saw: at least one probe came back established.
    const again = simulate(w, { from: 'work', to: '192.0.2.53', proto: 'udp', dport: 55 }, alone);
    assert.equal(again.hops[0]?.ct, 'established', JSON.stringify(again.hops[0]));
  });
}

test('exact numeric set tuples: the hash table answers like a first-match scan', () => {
  const tuple = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0, 6, 17, 2 ** 31, 2 ** 32 - 1), fc.integer({ min: 0, max: 3 }));
  fc.assert(
    fc.property(fc.array(tuple, { maxLength: 40 }), fc.array(fc.tuple(fc.constantFrom<Scalar>(0, 1, 2, 3, -1, 6, 17, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 0.5, '1'), fc.constantFrom<Scalar>(0, 6, 17, 2 ** 31, 2 ** 32 - 1, -1), fc.constantFrom<Scalar>(0, 1, 3, 4))), (elems, lookups) => {
      const entries = elems.map((k, i) => ({ atoms: k.map((v): Atom => ({ a: 'point', v })), value: i }));
      const idx = new ConcatIndex(entries);
      for (const xs of [...elems, ...lookups]) {
        const scan = entries.find((e) => e.atoms.every((a, i) => (a as { v: Scalar }).v === xs[i]));
        assert.equal(idx.get(xs), scan?.value, JSON.stringify(xs));
        // The membership test a set's `==` match uses (the table exists when every key is a u32 tuple).
        if (idx.table) assert.equal(idx.table.has(xs), scan !== undefined, JSON.stringify(xs));
      }
    }),
  );
});

test('a flattened node routes like its route levels: local addresses, longest prefix, no route', () => {
  for (const [name, w] of worlds) {
    const pp = preparePlan(w.plan);
    let flat = 0;
    for (const pn of pp.nodes.values()) {
      const f = pn.fast4;
      if (!f) continue;
      flat++;
      // Addresses around every local address and route of the node, and some elsewhere.
      const near = new Set<number>([0, 0x7f000001, 0xcb007105, 0xffffffff, 0x0a8a0101]);
      for (const r of pn.v4.routes) for (const a of [r.lo as number, r.hi as number]) for (const d of [-1, 0, 1]) near.add((a + d) >>> 0);
      for (const k of pn.v4.local) for (const d of [-1, 0, 1]) near.add(((k as number) + d) >>> 0);
      for (const da of near)
        for (const originated of [true, false]) {
          const fast = route(pp, pn, da, 4, originated);
          pn.fast4 = undefined;
          const slow = route(pp, pn, da, 4, originated);
          pn.fast4 = f;
          assert.deepEqual(fast, slow, `${name}: ${pn.name} → ${da}`);
        }
    }
    assert.ok(flat > 0, `${name}: some node is flattened`);
  }
});

test('exact tuples with a string component: the nested maps answer like a first-match scan', () => {
  const str = fc.constantFrom('vif3.0', 'vif4.0', 'eth0', '');
  const num = fc.constantFrom(0, 1, 6, 2 ** 31, 2 ** 32 - 1);
  const probe = fc.constantFrom<Scalar>('vif3.0', 'vif4.0', 'eth0', '', 'x', 0, 1, 6, 2 ** 31, 2 ** 32 - 1, 2 ** 32, -1, 0.5);
  for (const width of [2, 3]) {
    fc.assert(
      fc.property(fc.array(fc.tuple(str, num, num), { maxLength: 12 }), fc.array(fc.tuple(probe, probe, probe)), (elems, lookups) => {
        const keys = elems.map((k) => k.slice(0, width) as Scalar[]);
        const entries = keys.map((k, i) => ({ atoms: k.map((v): Atom => ({ a: 'point', v })), value: i }));
        const idx = new ConcatIndex(entries);
        for (const xs of [...keys, ...lookups.map((l) => l.slice(0, width))]) {
          const scan = entries.find((e) => e.atoms.every((a, i) => (a as { v: Scalar }).v === xs[i]));
          assert.equal(idx.get(xs), scan?.value, JSON.stringify(xs));
        }
      }),
    );
  }
});
