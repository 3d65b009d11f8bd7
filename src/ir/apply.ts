// A Transaction applied to a Ruleset the way nf_tables applies `nft -f`: each operation is checked
// against what exists at that point of the transaction, and the first refusal aborts the whole
// transaction (the input is never changed). Like knftables' fake (EXAMPLES.md Example 6), it
// refuses what the kernel refuses, so the sim backend and property tests check diff.ts and
// overlayTransaction without root:
// * deleting or flushing what is missing (ENOENT), including elements;
// * a base chain declared over a chain of another hook or kind (EEXIST);
// * a set declared again with another type or flags (EEXIST), a map element added again with
//   another verdict (EBUSY);
// * a reference to what is missing: a rule's @set, vmap @map, jump/goto, a map element's jump;
// * deleting a chain that has rules or is jumped to, or a set a rule looks up (EBUSY), so nothing
//   is left dangling.
// `add` of what exists is no error (nft has no `create` in these transactions), as in the kernel.
// One refusal is qnet's contract, not the kernel's: a rule added to a user-owned chain (the kernel
// would take it and qnet would have written into the user's chain). Not modelled: overlapping
// intervals in an interval set, and table comments changed by `add table`.
import { elementKey, elementText, renderBaseSpec } from './render.js';
import type { Op, Transaction } from './transaction.js';
import type { Chain, IrRule, MapElement, NamedMap, NamedSet, Ruleset, SetElement, Table } from './types.js';

export class ApplyError extends Error {
  constructor(
    readonly op: Op,
    readonly index: number,
    reason: string,
  ) {
    super(`op ${index + 1} (${op.op} in ${op.t.family} ${op.t.table}): ${reason}`);
  }
}

interface WorkChain {
  chain: Chain;
  rules: IrRule[];
  /** Changed by this transaction (else `chain` is returned as it was); the same for sets and tables. */
  touched: boolean;
}
interface WorkSet {
  set: NamedSet | NamedMap;
  elements: Map<string, SetElement | MapElement>;
  touched: boolean;
}
interface WorkTable {
  table: Table;
  comment: string | undefined;
  chains: Map<string, WorkChain>;
  sets: Map<string, WorkSet>;
  touched: boolean;
}

const tableKey = (family: string, name: string) => `${family} ${name}`;
const jumpTarget = (v: { kind: string; chain?: string } | undefined) => (v && (v.kind === 'jump' || v.kind === 'goto') ? v.chain : undefined);

/** What a rule refers to: chains it jumps to, sets and maps it looks up. */
function refsOf(r: IrRule): { chains: string[]; sets: string[] } {
  const chains: string[] = [];
  const sets: string[] = [];
  for (const m of r.matches) if (m.kind === 'in-set') sets.push(m.set);
  for (const s of r.stmts) {
    if (s.kind === 'vmap') sets.push(s.map);
    if (s.kind === 'verdict') {
      const c = jumpTarget(s.verdict);
      if (c !== undefined) chains.push(c);
    }
  }
  return { chains, sets };
}

const sameDecl = (x: NamedSet | NamedMap, y: NamedSet | NamedMap) =>
  x.kind === y.kind && x.interval === y.interval && x.keyType.join('.') === y.keyType.join('.');

/**
 * `rs` with `tx` applied (null: the namespace holds no tables yet). Objects the transaction does
 * not touch are returned as they were. Throws ApplyError on the first operation the kernel would
 * refuse; `rs` is never changed.
 */
export function applyTransaction(rs: Ruleset | null, tx: Transaction): Ruleset {
  if (tx.error) throw new Error(`the transaction does not render: ${tx.error.message}`);
  const tables = new Map<string, WorkTable>();
  for (const t of rs?.tables ?? []) tables.set(tableKey(t.family, t.name), open(t));
  tx.ops.forEach((o, i) => {
    const fail = (reason: string): never => {
      throw new ApplyError(o, i, reason);
    };
    const key = tableKey(o.t.family, o.t.table);
    if (o.op === 'add-table') {
      if (!tables.has(key)) tables.set(key, { table: { family: o.t.family, name: o.t.table, sets: [], chains: [] }, comment: o.comment, chains: new Map(), sets: new Map(), touched: true });
      return;
    }
    const t = tables.get(key) ?? fail('no such table');
    if (o.op === 'delete-table') {
      tables.delete(key);
      return;
    }
    const chain = (name: string) => t.chains.get(name) ?? fail(`no such chain ${name}`);
    const set = (name: string, map: boolean) => {
      const s = t.sets.get(name);
      if (!s || (s.set.kind === 'map') !== map) fail(`no such ${map ? 'map' : 'set'} ${name}`);
      return s!;
    };
    const checkRefs = (r: IrRule) => {
      const { chains, sets } = refsOf(r);
      for (const c of chains) if (!t.chains.has(c)) fail(`the rule jumps to ${c}, which does not exist`);
      for (const s of sets) if (!t.sets.has(s)) fail(`the rule looks up @${s}, which does not exist`);
    };
    const addElements = (s: WorkSet, elements: readonly (SetElement | MapElement)[]) => {
      for (const e of elements) {
        const target = jumpTarget((e as MapElement).verdict);
        if (target !== undefined && !t.chains.has(target)) fail(`an element of ${s.set.name} jumps to ${target}, which does not exist`);
        const k = elementKey(e);
        const have = s.elements.get(k);
        if (have && s.set.kind === 'map' && elementText({ key: have.key, verdict: (have as MapElement).verdict }) !== elementText({ key: e.key, verdict: (e as MapElement).verdict }))
          fail(`${s.set.name} has ${k} already, with another verdict`);
        if (!have) {
          s.elements.set(k, e);
          s.touched = true;
        }
      }
    };
    switch (o.op) {
      case 'add-chain': {
        const have = t.chains.get(o.chain.name);
        if (!have) {
          t.chains.set(o.chain.name, { chain: o.chain, rules: [], touched: true });
          t.touched = true;
          return;
        }
        const a = have.chain.base;
        const b = o.chain.base;
        if (!a !== !b || (a && b && (a.type !== b.type || a.hook !== b.hook || a.priority !== b.priority))) fail(`chain ${o.chain.name} exists with another hook`);
        if (a && b && renderBaseSpec(a) !== renderBaseSpec(b)) {
          have.chain = { ...have.chain, base: { ...a, policy: b.policy } };
          have.touched = true;
        }
        return;
      }
      case 'flush-chain': {
        const c = chain(o.name);
        c.rules = [];
        c.touched = true;
        return;
      }
      case 'delete-chain': {
        const c = chain(o.name);
        if (c.rules.length) fail(`chain ${o.name} is not empty`);
        for (const other of t.chains.values()) if (other.rules.some((r) => refsOf(r).chains.includes(o.name))) fail(`chain ${o.name} is jumped to from ${other.chain.name}`);
        for (const s of t.sets.values()) for (const e of s.elements.values()) if (jumpTarget((e as MapElement).verdict) === o.name) fail(`chain ${o.name} is jumped to from map ${s.set.name}`);
        t.chains.delete(o.name);
        t.touched = true;
        return;
      }
      case 'add-set': {
        const have = t.sets.get(o.set.name);
        if (have && !sameDecl(have.set, o.set)) fail(`${o.set.kind} ${o.set.name} exists with another type`);
        const s = have ?? { set: o.set, elements: new Map(), touched: true };
        if (!have) {
          t.sets.set(o.set.name, s);
          t.touched = true;
        }
        addElements(s, o.elements ?? []);
        return;
      }
      case 'flush-set': {
        const s = set(o.name, o.map);
        s.elements = new Map();
        s.touched = true;
        return;
      }
      case 'delete-set': {
        set(o.name, o.map);
        for (const c of t.chains.values()) if (c.rules.some((r) => refsOf(r).sets.includes(o.name))) fail(`@${o.name} is used by chain ${c.chain.name}`);
        t.sets.delete(o.name);
        t.touched = true;
        return;
      }
      case 'add-element':
        addElements(set(o.set, o.map), o.elements);
        return;
      case 'delete-element': {
        const s = set(o.set, o.map);
        for (const e of o.elements) if (!s.elements.delete(elementKey(e))) fail(`${o.set} has no element ${elementKey(e)}`);
        s.touched = true;
        return;
      }
      case 'add-rule':
      case 'insert-rule': {
        const c = chain(o.chain);
        if (c.chain.userOwned) fail(`chain ${o.chain} belongs to the user`);
        checkRefs(o.rule);
        c.rules = o.op === 'add-rule' ? [...c.rules, o.rule] : [o.rule, ...c.rules];
        c.touched = true;
        return;
      }
    }
  });
  return { tables: [...tables.values()].map(close) };
}

function open(t: Table): WorkTable {
  return {
    table: t,
    comment: t.comment,
    chains: new Map(t.chains.map((c) => [c.name, { chain: c, rules: c.rules, touched: false }])),
    sets: new Map(t.sets.map((s) => [s.name, { set: s, elements: new Map(s.elements.map((e) => [elementKey(e), e])), touched: false }])),
    touched: false,
  };
}

function close(w: WorkTable): Table {
  const touched = w.touched || [...w.chains.values()].some((c) => c.touched) || [...w.sets.values()].some((s) => s.touched);
  if (!touched) return w.table;
  return {
    family: w.table.family,
    name: w.table.name,
    ...(w.comment !== undefined ? { comment: w.comment } : {}),
    sets: [...w.sets.values()].map((s) => (s.touched ? ({ ...s.set, elements: [...s.elements.values()] } as NamedSet | NamedMap) : s.set)),
    chains: [...w.chains.values()].map((c) => (c.touched ? { ...c.chain, rules: c.rules } : c.chain)),
  };
}
