// ir/apply.ts: transactions applied with the kernel's rules. Unit tests pin each refusal; property
// tests (random small models, compiled) hold diff.ts to its promise without root: applying
// diffTransaction(b, a) to what holds b gives a, and an overlay engine's edits followed by tidy()
// leave exactly what a full compile gives.
// Address plan: 10.137.0.0/16 qubes (sys-net .1, sys-firewall .2, work .3, personal .4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { compile } from '../compile/compile.js';
import { StaticResolver } from '../compile/dns.js';
import { Engine } from '../engine/engine.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { arbRule } from '../model/rule-arbitraries.test-helpers.js';
import type { Rule } from '../model/rule.js';
import { planNetwork, startSet } from '../model/topology.js';
import { applyTransaction } from './apply.js';
import { diffTransaction, fullTransaction } from './diff.js';
import { elementText, renderChainSpec, renderRuleBody, renderSetSpec } from './render.js';
import { Transaction, type Op } from './transaction.js';
import type { Chain, IrRule, NamedSet, Ruleset } from './types.js';

const NOW = 1_800_000_000;

/** The ruleset as text with order only where the kernel keeps it (rules in a chain). */
function canon(rs: Ruleset): string {
  const byName = <T extends { name: string }>(xs: readonly T[]) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const t of [...rs.tables].sort((a, b) => `${a.family} ${a.name}`.localeCompare(`${b.family} ${b.name}`))) {
    out.push(`table ${t.family} ${t.name}`);
    for (const s of byName(t.sets)) out.push(`  ${s.kind} ${s.name}${renderSetSpec(s, [])}`, ...s.elements.map((e) => `    ${elementText(e)}`).sort());
    for (const c of byName(t.chains)) out.push(`  chain ${c.name}${renderChainSpec(c)}`, ...(c.userOwned ? [] : c.rules.map((r) => `    ${renderRuleBody(r)}`)));
  }
  return out.join('\n');
}

// ---- Refusals -----------------------------------------------------------------------------------

const T = { family: 'ip' as const, table: 'x' };
const rule = (stmts: IrRule['stmts'], matches: IrRule['matches'] = []): IrRule => ({ matches, stmts, origin: { kind: 'base', part: 't' } });
const chain = (name: string, rules: IrRule[] = []): Chain => ({ name, rules });
const set: NamedSet = { kind: 'set', name: 's', keyType: ['ipv4_addr'], interval: false, elements: [{ key: { kind: 'addr', addr: '192.0.2.1' } }] };
const base: Ruleset = { tables: [{ family: 'ip', name: 'x', sets: [set], chains: [chain('a', [rule([{ kind: 'verdict', verdict: { kind: 'jump', chain: 'b' } }])]), chain('b', [rule([{ kind: 'verdict', verdict: { kind: 'accept' } }], [{ kind: 'in-set', fields: ['ip saddr'], op: '==', set: 's' }])])] }] };
const tx = (...ops: Op[]) => {
  const t = new Transaction();
  for (const o of ops) t.push(o);
  return t;
};

test('applyTransaction refuses what the kernel refuses, and changes nothing then', () => {
  const copy = JSON.stringify(base);
  const refused: [string, Transaction, RegExp][] = [
    ['delete a missing table', tx({ op: 'delete-table', t: { family: 'ip', table: 'y' } }), /no such table/],
    ['flush a missing chain', tx({ op: 'flush-chain', t: T, name: 'z' }), /no such chain z/],
    ['delete a chain with rules', tx({ op: 'delete-chain', t: T, name: 'a' }), /not empty/],
    ['delete a chain jumped to', tx({ op: 'flush-chain', t: T, name: 'b' }, { op: 'delete-chain', t: T, name: 'b' }), /jumped to from a/],
    ['delete a set in use', tx({ op: 'delete-set', t: T, name: 's', map: false }), /used by chain b/],
    ['delete a missing element', tx({ op: 'delete-element', t: T, set: 's', map: false, elements: [{ key: { kind: 'addr', addr: '192.0.2.9' } }] }), /no element 192.0.2.9/],
    ['a rule jumping nowhere', tx({ op: 'add-rule', t: T, chain: 'a', rule: rule([{ kind: 'verdict', verdict: { kind: 'goto', chain: 'nope' } }]) }), /jumps to nope/],
    ['a rule looking up a missing set', tx({ op: 'add-rule', t: T, chain: 'a', rule: rule([{ kind: 'vmap', fields: ['ip saddr'], map: 'm' }]) }), /@m/],
    ['a set declared again with another type', tx({ op: 'add-set', t: T, set: { ...set, keyType: ['ipv6_addr'] } }), /another type/],
    ['a base chain over a regular one', tx({ op: 'add-chain', t: T, chain: { ...chain('a'), base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } } }), /another hook/],
    // All or nothing: the first op alone would succeed.
    ['a good op then a bad one', tx({ op: 'flush-chain', t: T, name: 'a' }, { op: 'delete-table', t: { family: 'ip', table: 'y' } }), /op 2 \(delete-table/],
  ];
  for (const [what, t, why] of refused) assert.throws(() => applyTransaction(base, t), why, what);
  assert.equal(JSON.stringify(base), copy, 'the input is unchanged');
});

test('applyTransaction accepts adding what exists, keeps untouched objects, and frees a chain once nothing points at it', () => {
  const out = applyTransaction(base, tx({ op: 'add-table', t: T }, { op: 'add-set', t: T, set }, { op: 'add-chain', t: T, chain: chain('b') }));
  assert.equal(out.tables[0], base.tables[0], 'nothing touched: the same table object');
  const freed = applyTransaction(base, tx({ op: 'flush-chain', t: T, name: 'a' }, { op: 'flush-chain', t: T, name: 'b' }, { op: 'delete-chain', t: T, name: 'b' }, { op: 'delete-set', t: T, name: 's', map: false }));
  assert.deepEqual(freed.tables[0]!.chains.map((c) => [c.name, c.rules.length]), [['a', 0]]);
  assert.deepEqual(freed.tables[0]!.sets, []);
  assert.equal(base.tables[0]!.chains.length, 2, 'the input keeps its chains');
});

// ---- Properties over compiled random models -----------------------------------------------------

const arbRules: fc.Arbitrary<Rule[] | null> = fc.oneof(fc.constant(null), fc.array(arbRule, { maxLength: 6 }));
const arbModel = fc.record({ work: arbRules, personal: arbRules, ipv6: fc.boolean(), personalRuns: fc.boolean() }).map(({ work, personal, ipv6, personalRuns }) => {
  const m: Model = defaultLayout();
  m.qubes.get('work')!.rules = work;
  m.qubes.get('personal')!.rules = personal;
  if (ipv6) m.qubes.set('sys-net', { ...m.qubes.get('sys-net')!, features: { ipv6: '1' } });
  for (const q of startSet(m, personalRuns ? ['work', 'personal'] : ['work'])) q.state = 'Running';
  return m;
});
const compiled = (m: Model) => {
  const running = new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
  return compile({ model: m, plan: planNetwork(m, { uplink: 'world', only: running }), resolutions: new Map(), now: NOW }).rulesets;
};

test('property: applying diffTransaction(b, a) to what holds b gives a; a full load from nothing gives a', () => {
  fc.assert(
    fc.property(arbModel, arbModel, (mb, ma) => {
      const b = compiled(mb);
      const a = compiled(ma);
      for (const [node, rs] of a) {
        assert.equal(canon(applyTransaction(null, fullTransaction(rs))), canon(rs), `${node}: full load`);
        const held = b.get(node);
        if (held) assert.equal(canon(applyTransaction(held, diffTransaction(held, rs))), canon(rs), `${node}: delta`);
      }
    }),
    { numRuns: 60 },
  );
});

test('property: an overlay engine\'s rule edits, then tidy(), leave what a full compile gives (on the sim, which applies each transaction)', async () => {
  await fc.assert(
    fc.asyncProperty(arbModel, fc.array(fc.record({ qube: fc.constantFrom('work', 'personal'), rules: arbRules }), { minLength: 1, maxLength: 4 }), async (m, edits) => {
      const backend = new SimBackend();
      const engine = new Engine({ backend, resolver: new StaticResolver({}), uplink: 'world', now: () => NOW, overlay: true, world: { ensure: async (p) => backend.bringUp(p, ['world']), destroy: async () => backend.tearDown(['world']) } });
      await engine.converge(m);
      for (const e of edits) {
        const previous = new Map([[e.qube, m.qubes.get(e.qube)!.rules]]);
        m.qubes.get(e.qube)!.rules = e.rules;
        if (!(await engine.applyRuleEdits(m, [e.qube], previous))) await engine.converge(m);
        assert.ok(![...engine.status.values()].some((s) => s.state !== 'applied'), 'every load was accepted');
      }
      await engine.tidy(m);
      for (const [node, rs] of compiled(m)) assert.equal(canon(backend.rulesets.get(node)!), canon(rs), node);
    }),
    { numRuns: 40 },
  );
});
