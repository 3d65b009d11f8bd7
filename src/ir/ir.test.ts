import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalListing, kernelUnavailable, listRuleset, nft, withScratchNs } from '../../test/cases/compile/kernel.js';
import { diffRulesets, diffTransaction, fullTransaction, overlayTransaction } from './diff.js';
import { emitJson } from './emit-json.js';
import { emitFull } from './emit-text.js';
import { MAX_COMMENT_BYTES, sanitizeComment } from './render.js';
import { ORIGIN_MAX_BYTES } from '../model/origin.js';
import type { Chain, IrRule, NamedMap, NamedSet, Ruleset, Table } from './types.js';
import { assertValidRuleset, validateRuleset } from './validate.js';
import { BugError } from '../model/result.js';
import { evalChain, PROTO, type Packet } from '../sim/index.js';

const r = (text: string, rule: Omit<IrRule, 'origin'>): IrRule => ({ ...rule, origin: { kind: 'base', part: text }, comment: text });
const accept = { kind: 'verdict', verdict: { kind: 'accept' } } as const;
const jump = (chain: string) => ({ kind: 'verdict', verdict: { kind: 'jump', chain } }) as const;

function qubesTable(extra: Partial<Table> = {}): Table {
  return {
    family: 'ip',
    name: 'qubes',
    sets: [],
    chains: [
      { name: 'custom-input', rules: [], userOwned: true },
      {
        name: 'input',
        base: { type: 'filter', hook: 'input', priority: 0, policy: 'drop' },
        rules: [r('base: user input rules', { matches: [], stmts: [jump('custom-input')] })],
      },
    ],
    ...extra,
  };
}

function firewall(clients: Record<string, string[]>): Table {
  const chains: Chain[] = [
    { name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' }, rules: [r('dispatch', { matches: [], stmts: [{ kind: 'vmap', fields: ['ip saddr'], map: 'dispatch' }] })] },
  ];
  const map: NamedMap = { kind: 'map', name: 'dispatch', keyType: ['ipv4_addr'], interval: false, valueType: 'verdict', elements: [] };
  const sets: (NamedSet | NamedMap)[] = [map];
  for (const [addr, dsts] of Object.entries(clients)) {
    const name = `qbs-${addr.replace(/\./g, '-')}`;
    map.elements.push({ key: { kind: 'addr', addr }, verdict: { kind: 'jump', chain: name } });
    chains.push({
      name,
      rules: dsts.map((d, i) => r(`c rule ${i}`, { matches: [{ kind: 'cmp', field: 'ip daddr', op: '==', value: { kind: 'addr', addr: d } }], stmts: [accept] })),
    });
  }
  return { family: 'ip', name: 'qubes-firewall', sets, chains };
}

const rs = (...tables: Table[]): Ruleset => ({ tables });

// ---- validateRuleset -------------------------------------------------------------------------

test('validateRuleset: a clean ruleset has no findings', () => {
  assert.deepEqual(validateRuleset(rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] }))), []);
});

test('validateRuleset catches dangling jump, @set, vmap @map and map elements', () => {
  const t = firewall({ '10.137.0.3': ['1.1.1.1'] });
  t.chains[1]!.rules.push(r('x', { matches: [], stmts: [jump('nowhere')] }));
  t.chains[1]!.rules.push(r('y', { matches: [{ kind: 'in-set', fields: ['ip daddr'], op: '==', set: 'missing' }], stmts: [accept] }));
  t.chains[0]!.rules.push(r('z', { matches: [], stmts: [{ kind: 'vmap', fields: ['ip saddr'], map: 'nomap' }] }));
  (t.sets[0] as NamedMap).elements.push({ key: { kind: 'addr', addr: '10.137.0.9' }, verdict: { kind: 'goto', chain: 'gone' } });
  const checks = validateRuleset(rs(t)).map((d) => d.check).sort();
  assert.deepEqual(checks, ['missing-chain', 'missing-chain', 'missing-map', 'missing-set']);
});

test('validateRuleset catches bad names, verdict not last, jump to a base chain, loops, key mismatch', () => {
  const t = qubesTable();
  t.chains.push({ name: '9bad name', rules: [] });
  t.chains.push({ name: 'a', rules: [r('v', { matches: [], stmts: [accept, { kind: 'counter' }] }), r('j', { matches: [], stmts: [jump('b')] })] });
  t.chains.push({ name: 'b', rules: [r('j', { matches: [], stmts: [jump('a')] }), r('base', { matches: [], stmts: [jump('input')] })] });
  t.sets.push({ kind: 'set', name: 's', keyType: ['ipv4_addr'], interval: false, elements: [{ key: { kind: 'addr', addr: '10.0.0.0', len: 8 } }] });
  t.chains.push({ name: 'c', rules: [r('k', { matches: [{ kind: 'in-set', fields: ['ip daddr', 'tcp dport'], op: '==', set: 's' }], stmts: [accept] })] });
  const checks = new Set(validateRuleset(rs(t)).map((d) => d.check));
  for (const c of ['bad-name', 'verdict-not-last', 'jump-to-base', 'jump-loop', 'key-type', 'interval-without-flag'] as const) assert.ok(checks.has(c), c);
  // Problems are compiler bugs, not user errors: assertValidRuleset throws a BugError naming them.
  assert.throws(() => assertValidRuleset(rs(t)), (e: unknown) => e instanceof BugError && /jump-loop/.test(e.message));
  assert.doesNotThrow(() => assertValidRuleset(rs(qubesTable())));
});

test('validateRuleset: a user-owned chain must be empty and regular', () => {
  const t = qubesTable();
  t.chains[0]!.rules.push(r('mine', { matches: [], stmts: [accept] }));
  assert.deepEqual(validateRuleset(rs(t)).map((d) => d.check), ['user-chain-not-empty']);
});

// ---- emitters --------------------------------------------------------------------------------

test('comments: quotes and newlines replaced, cut to 128 bytes on a character boundary', () => {
  assert.ok(ORIGIN_MAX_BYTES <= MAX_COMMENT_BYTES, 'origins are never cut');
  assert.equal(sanitizeComment('work "rule"\n3'), "work 'rule' 3");
  const long = sanitizeComment('é'.repeat(100));
  assert.equal(new TextEncoder().encode(long).length, 128);
  assert.equal(long, 'é'.repeat(64));
});

test('full load never flushes or deletes a user-owned chain, nor the table holding one', () => {
  const text = emitFull(rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] })));
  assert.match(text, /^add chain ip qubes custom-input$/m);
  assert.doesNotMatch(text, /(flush|delete) chain ip qubes custom-input/);
  assert.doesNotMatch(text, /delete table ip qubes$/m);
  assert.match(text, /^add table ip qubes-firewall\ndelete table ip qubes-firewall\nadd table ip qubes-firewall$/m, 'owned table replaced whole');
  assert.match(text, /add rule ip qubes-firewall qbs-10-137-0-3 ip daddr 1\.1\.1\.1 accept comment "c rule 0"/);
});

test('JSON emitter: nft schema with add commands, same operations as the text', () => {
  const ruleset = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] }));
  const j = emitJson(ruleset);
  assert.deepEqual(j.nftables[0], { metainfo: { json_schema_version: 1 } });
  assert.equal(j.nftables.length - 1, fullTransaction(ruleset).ops.length);
  assert.deepEqual(j.nftables[1], { add: { table: { family: 'ip', name: 'qubes' } } });
  assert.ok(j.nftables.some((x) => JSON.stringify(x).includes('"vmap":{"key":{"payload":{"protocol":"ip","field":"saddr"}},"data":"@dispatch"}')));
});

// ---- diffs and operation counts (Example 7) --------------------------------------------------

test('no change: an empty transaction', () => {
  const a = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] }));
  const b = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] }));
  assert.equal(diffTransaction(a, b).size, 0);
  assert.equal(diffRulesets(a, b), '');
});

test('add 1 rule to work: flush + 2 rules + 0 elements = 3 operations', () => {
  const before = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'], '10.137.0.4': ['2.2.2.2'] }));
  const after = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1', '3.3.3.3'], '10.137.0.4': ['2.2.2.2'] }));
  const tx = diffTransaction(before, after);
  const c = tx.counts();
  assert.equal(c['flush-chain'], 1);
  assert.equal(c['add-rule'], 2);
  assert.equal(c['add-element'] + c['delete-element'], 0);
  assert.equal(tx.size, 3);
  assert.match(tx.toString(), /^flush chain ip qubes-firewall qbs-10-137-0-3$/m);
  assert.doesNotMatch(tx.toString(), /qbs-10-137-0-4|custom-input/);
});

test('a new client: add chain + its rule + 1 map element = 3; a removed client: 1 element + flush + delete = 3', () => {
  const one = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] }));
  const two = rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'], '10.137.0.4': ['2.2.2.2'] }));
  const up = diffTransaction(one, two);
  assert.deepEqual([up.counts()['add-chain'], up.counts()['add-rule'], up.counts()['add-element']], [1, 1, 1]);
  assert.equal(up.size, 3);
  const down = diffTransaction(two, one);
  assert.deepEqual([down.counts()['delete-element'], down.counts()['flush-chain'], down.counts()['delete-chain']], [1, 1, 1]);
  assert.equal(down.size, 3);
  const text = down.toString();
  assert.ok(text.indexOf('delete element') < text.indexOf('delete chain'), 'the map element pointing at the chain goes first');
});

test('changed set elements are mirrored: only the difference is sent (DNS refresh)', () => {
  const mk = (addrs: string[]): Ruleset => {
    const t = firewall({ '10.137.0.3': [] });
    t.sets.push({ kind: 'set', name: 'qbs-10-137-0-3-d0', keyType: ['ipv4_addr'], interval: false, elements: addrs.map((a) => ({ key: { kind: 'addr', addr: a } })) });
    t.chains[1]!.rules.push(r('packed', { matches: [{ kind: 'in-set', fields: ['ip daddr'], op: '==', set: 'qbs-10-137-0-3-d0' }], stmts: [accept] }));
    return rs(t);
  };
  const tx = diffTransaction(mk(['1.1.1.1', '1.1.1.2', '1.1.1.3']), mk(['1.1.1.1', '1.1.1.3', '1.1.1.4']));
  assert.equal(tx.size, 2, 'delete 1.1.1.2 + add 1.1.1.4, no chain rebuilt');
  assert.equal(tx.toString(), 'delete element ip qubes-firewall qbs-10-137-0-3-d0 { 1.1.1.2 }\nadd element ip qubes-firewall qbs-10-137-0-3-d0 { 1.1.1.4 }\n');
});

/**
 * A client chain whose packed set holds `addrs`, beside `others` clients that each own a
 * non-concatenated interval set of `perOther` prefixes (what nft 1.0.6 dumps before any element
 * command). `base`: the set is used by a base chain instead of the client chain.
 */
function packedClients(addrs: string[], others: number, perOther: number, base = false): Ruleset {
  const t = firewall({ '10.137.0.3': [] });
  const user = base ? t.chains[0]! : t.chains[1]!;
  t.sets.push({ kind: 'set', name: 'qbs-10-137-0-3-d0', keyType: ['ipv4_addr'], interval: true, comment: 'work rules 0-2 packed', elements: addrs.map((a) => ({ key: { kind: 'addr', addr: a } })) });
  user.rules.unshift(r('packed', { matches: [{ kind: 'in-set', fields: ['ip daddr'], op: '==', set: 'qbs-10-137-0-3-d0' }], stmts: [accept] }));
  for (let i = 0; i < others; i++) {
    const name = `qbs-10-137-1-${i}`;
    (t.sets[0] as NamedMap).elements.push({ key: { kind: 'addr', addr: `10.137.1.${i}` }, verdict: { kind: 'jump', chain: name } });
    t.sets.push({ kind: 'set', name: `${name}-d0`, keyType: ['ipv4_addr'], interval: true, elements: Array.from({ length: perOther }, (_, k) => ({ key: { kind: 'addr', addr: `${20 + k}.${i}.0.0`, len: 16 } })) });
    t.chains.push({ name, rules: [r('o', { matches: [{ kind: 'in-set', fields: ['ip daddr'], op: '==', set: `${name}-d0` }], stmts: [accept] })] });
  }
  return rs(t);
}

test('nft 1.0.6 dumps interval sets before element commands: a small changed client set is recreated instead', () => {
  const tx = diffTransaction(packedClients(['1.1.1.1', '1.1.1.2'], 20, 10), packedClients(['1.1.1.1', '1.1.1.4'], 20, 10));
  const text = tx.toString();
  assert.doesNotMatch(text, /^(add|delete) element/m, text);
  assert.match(text, /^flush chain ip qubes-firewall qbs-10-137-0-3\ndelete set ip qubes-firewall qbs-10-137-0-3-d0\nadd set ip qubes-firewall qbs-10-137-0-3-d0 \{ type ipv4_addr; flags interval; comment "work rules 0-2 packed"; elements = \{ 1\.1\.1\.1, 1\.1\.1\.4 \}; \}\nadd rule ip qubes-firewall qbs-10-137-0-3 ip daddr @qbs-10-137-0-3-d0 accept comment "packed"\n$/);
  assert.doesNotMatch(text, /qbs-10-137-1-/, 'no other client is touched');
});

test('the element mirror stays where it moves less: few interval elements elsewhere, or a base chain uses the set', () => {
  const small = diffTransaction(packedClients(['1.1.1.1', '1.1.1.2'], 0, 0), packedClients(['1.1.1.1', '1.1.1.4'], 0, 0)).toString();
  assert.equal(small, 'delete element ip qubes-firewall qbs-10-137-0-3-d0 { 1.1.1.2 }\nadd element ip qubes-firewall qbs-10-137-0-3-d0 { 1.1.1.4 }\n');
  const base = diffTransaction(packedClients(['1.1.1.1', '1.1.1.2'], 20, 10, true), packedClients(['1.1.1.1', '1.1.1.4'], 20, 10, true)).toString();
  assert.match(base, /^delete element .*\nadd element .*1\.1\.1\.4/, 'refilling a base chain would reset every client\'s hop counters');
  assert.doesNotMatch(base, /flush chain/);
});

// ---- overlays: additions only, tidied later ---------------------------------------------------

/** work's chain using set `set` (holding `addrs`) and ending in a reject, beside personal's chain. */
function withSet(set: string, addrs: string[]): Ruleset {
  const t = firewall({ '10.137.0.3': [], '10.137.0.4': ['2.2.2.2'] });
  t.sets.push({ kind: 'set', name: set, keyType: ['ipv4_addr'], interval: true, elements: addrs.map((a) => ({ key: { kind: 'addr', addr: a } })) });
  t.chains[1]!.rules.push(
    r('packed', { matches: [{ kind: 'in-set', fields: ['ip daddr'], op: '==', set }], stmts: [accept] }),
    r('policy', { matches: [], stmts: [{ kind: 'verdict', verdict: { kind: 'reject' } }] }),
  );
  return rs(t);
}

/** `after` sharing every object of `before` but work's chain and set (what the engine's patch gives). */
function patched(before: Ruleset, after: Ruleset): Ruleset {
  const [b] = before.tables;
  const [a] = after.tables;
  return rs({ ...b!, chains: [b!.chains[0]!, a!.chains[1]!, b!.chains[2]!], sets: [b!.sets[0]!, a!.sets.at(-1)!] });
}

test('overlay: new sets and the rewritten chain\'s rules inserted in front; nothing deleted; holds keeps the old below', () => {
  const before = withSet('qbs-10-137-0-3-d0', ['1.1.1.1']);
  const after = patched(before, withSet('qbs-10-137-0-3-d0-g1', ['1.1.1.2']));
  const o = overlayTransaction(before, after)!;
  assert.ok(o);
  assert.equal(
    o.tx.toString(),
    'add set ip qubes-firewall qbs-10-137-0-3-d0-g1 { type ipv4_addr; flags interval; elements = { 1.1.1.2 }; }\n' +
      'insert rule ip qubes-firewall qbs-10-137-0-3 reject comment "policy"\n' +
      'insert rule ip qubes-firewall qbs-10-137-0-3 ip daddr @qbs-10-137-0-3-d0-g1 accept comment "packed"\n',
  );
  const work = o.holds.tables[0]!.chains[1]!;
  assert.deepEqual(work.rules.map((x) => x.comment), ['packed', 'policy', 'packed', 'policy']);
  assert.deepEqual(o.holds.tables[0]!.sets.map((x) => x.name), ['dispatch', 'qbs-10-137-0-3-d0-g1', 'qbs-10-137-0-3-d0']);
  assert.equal(o.holds.tables[0]!.chains[2], after.tables[0]!.chains[2], 'personal is shared, untouched');
  // Tidying: the old rules and the old set go, nothing else.
  const tidy = diffTransaction(o.holds, after).toString();
  assert.match(tidy, /^flush chain ip qubes-firewall qbs-10-137-0-3$/m);
  assert.match(tidy, /^delete set ip qubes-firewall qbs-10-137-0-3-d0$/m);
  assert.doesNotMatch(tidy, /10-137-0-4|add set/);
  // A second overlay before the tidy leaves work's live rules alone.
  const personal = withSet('qbs-10-137-0-4-d0', ['4.4.4.4']).tables[0]!;
  const after2 = rs({
    ...after.tables[0]!,
    chains: [after.tables[0]!.chains[0]!, after.tables[0]!.chains[1]!, { ...personal.chains[1]!, name: 'qbs-10-137-0-4' }],
    sets: [...after.tables[0]!.sets, personal.sets.at(-1)!], // the set personal's new rules use
  });
  const o2 = overlayTransaction(o.holds, after2)!;
  assert.doesNotMatch(o2.tx.toString(), /qbs-10-137-0-3/, o2.tx.toString());
  assert.equal(o2.holds.tables[0]!.chains[1], work, "work's held chain carries on as it is");
  // What the kernel then holds decides every packet as `after` does.
  sameVerdicts(o.holds, after, 'qbs-10-137-0-3');
  sameVerdicts(o2.holds, after2, 'qbs-10-137-0-4');
});

/** The client chain `chain` gives the same verdict in `held` as in `want`, for a few probe packets. */
function sameVerdicts(held: Ruleset, want: Ruleset, chain: string): void {
  const saddr = chain.replace('qbs-', '').replace(/-/g, '.');
  for (const daddr of ['1.1.1.1', '1.1.1.2', '2.2.2.2', '4.4.4.4', '9.9.9.9']) {
    const p: Packet = { family: 4, saddr, daddr, l4proto: PROTO.tcp, sport: 40000, dport: 443, iifname: 'vif3.0', iifgroup: 2, ct: 'new' };
    const v = (x: Ruleset) => evalChain(x.tables[0]!, chain, p).verdict;
    assert.equal(v(held), v(want), `${chain} to ${daddr}`);
  }
}

test('overlay: a chain rebuilt with the same rules (new objects) inserts nothing and stays as held', () => {
  const before = withSet('qbs-10-137-0-3-d0', ['1.1.1.1']);
  const [b] = before.tables;
  const work = b!.chains[1]!;
  // What patchClient gives for an edit of personal's rules: work unchanged, but its chain rebuilt.
  const rebuilt: Chain = { ...work, rules: work.rules.map((x) => ({ ...x })) };
  const personal: Chain = { ...b!.chains[2]!, rules: [r('p', { matches: [], stmts: [{ kind: 'verdict', verdict: { kind: 'reject' } }] })] };
  const after = rs({ ...b!, chains: [b!.chains[0]!, rebuilt, personal] });
  const o = overlayTransaction(before, after)!;
  assert.ok(o);
  assert.equal(o.tx.toString(), 'insert rule ip qubes-firewall qbs-10-137-0-4 reject comment "p"\n');
  assert.equal(o.holds.tables[0]!.chains[1], work, 'the held chain is kept');
  assert.doesNotMatch(diffTransaction(o.holds, after).toString(), /qbs-10-137-0-3/, 'and the tidy leaves it alone');
});

test('overlay: refused (null) where inserting cannot give the new behaviour', () => {
  const before = withSet('qbs-10-137-0-3-d0', ['1.1.1.1']);
  assert.equal(overlayTransaction(before, patched(before, withSet('qbs-10-137-0-3-d0', ['1.1.1.2']))), null, 'a set changed under its own name');
  const open = withSet('qbs-10-137-0-3-d0-g1', ['1.1.1.2']);
  open.tables[0]!.chains[1]!.rules.pop();
  assert.equal(overlayTransaction(before, patched(before, open)), null, 'no final verdict: packets would fall into the old rules');
  const base = rs({ ...before.tables[0]!, chains: [{ ...before.tables[0]!.chains[0]!, rules: [] }, ...before.tables[0]!.chains.slice(1)] });
  assert.equal(overlayTransaction(before, base), null, 'a base chain');
  assert.equal(overlayTransaction(before, rs(firewall({ '10.137.0.3': [] }))), null, 'a chain removed');
});

test('removing the shared table keeps the user chains; removing an owned table deletes it', () => {
  const text = diffRulesets(rs(qubesTable(), firewall({})), rs());
  assert.match(text, /^delete table ip qubes-firewall$/m);
  assert.match(text, /^delete chain ip qubes input$/m);
  assert.doesNotMatch(text, /custom-input|delete table ip qubes$/m);
});

// ---- the kernel agrees: applying a diff gives what a fresh full load gives -------------------

const kernelSkip = kernelUnavailable();

test('kernel: full loads are idempotent and diffs land on the same state as a fresh load', { skip: kernelSkip ?? false }, () => {
  const steps: Ruleset[] = [
    rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1'] })),
    rs(qubesTable(), firewall({ '10.137.0.3': ['1.1.1.1', '3.3.3.3'], '10.137.0.4': ['2.2.2.2'] })),
    rs(qubesTable({ chains: [...qubesTable().chains, { name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' }, rules: [] }] }), firewall({ '10.137.0.4': ['2.2.2.2'] })),
    rs(qubesTable()),
    // a client set recreated instead of mirrored, then mirrored (nothing else to dump)
    rs(qubesTable(), ...packedClients(['1.1.1.1', '1.1.1.2'], 20, 10).tables),
    rs(qubesTable(), ...packedClients(['1.1.1.1', '1.1.1.4'], 20, 10).tables),
    rs(qubesTable(), ...packedClients(['1.1.1.1', '1.1.1.5'], 0, 0).tables),
  ];
  withScratchNs((ns) => {
    // a user rule in custom-input must survive everything
    assert.ok(nft(ns, 'add table ip qubes\nadd chain ip qubes custom-input\nadd rule ip qubes custom-input tcp dport 22 accept\n', { check: false }).ok);
    let prev: Ruleset | null = null;
    for (const s of steps) {
      const load = nft(ns, diffRulesets(prev, s), { check: false });
      assert.ok(load.ok, load.stderr);
      const viaDiff = canonicalListing(listRuleset(ns));
      assert.match(viaDiff, /tcp dport 22 accept/, 'the user rule survives');
      const again = nft(ns, emitFull(s), { check: false });
      assert.ok(again.ok, `full load on top of the diffed state: ${again.stderr}`);
      assert.equal(canonicalListing(listRuleset(ns)), viaDiff, 'a full load changes nothing after the diff');
      prev = s;
    }
  });
});
