// From the ruleset in the kernel (`before`) to the wanted one (`after`) in one atomic transaction.
//
// * Tables qnet owns whole (no user-owned chain) are replaced when `before` is unknown:
//   `add table` + `delete table` + definition. nft 1.0.6 has no `destroy` (linux-kernel-notes.md),
//   and `add` first makes the `delete` safe when the table is absent.
// * A table holding a user-owned chain (Qubes' `custom-input`/`custom-forward` in `qubes`, reference
//   §4.7: "Qubes OS itself will never modify them") is never deleted: its user chains are declared
//   with `add chain` only, and qnet's own chains are flushed and refilled.
// * With `before` known, only what changed is touched (kube-proxy's partial sync, EXAMPLES.md
//   Examples 2–3): changed chains are flushed and refilled, set and map elements are mirrored
//   (delete the gone or changed ones, add the new ones), removed chains are deleted last, after
//   the rules and map elements that pointed at them are gone.
import { elementKey, elementText, renderBaseSpec, renderRuleBody } from './render.js';
import { Transaction, type Op, type TableRef } from './transaction.js';
import type { Chain, MapElement, NamedMap, NamedSet, Ruleset, SetElement, Table } from './types.js';

/** The nft script that takes `before` (null = unknown, e.g. first apply) to `after`. */
export function diffRulesets(before: Ruleset | null, after: Ruleset): string {
  return diffTransaction(before, after).toString();
}

/** The full load: what `diffRulesets(null, rs)` emits. */
export function fullTransaction(rs: Ruleset): Transaction {
  return diffTransaction(null, rs);
}

export function diffTransaction(before: Ruleset | null, after: Ruleset): Transaction {
  const tx = new Transaction();
  const old = new Map((before?.tables ?? []).map((t) => [tableId(t), t]));
  let dump: number | undefined;
  for (const t of after.tables) {
    const b = old.get(tableId(t));
    // The engine patches a changed client into the ruleset it keeps: unchanged objects are the
    // same objects, so comparing by reference first keeps a rule edit O(changed), not O(ruleset).
    if (b === t) continue;
    if (b) tableDelta(tx, b, t, () => (dump ??= elementDumpCost(before!)));
    else if (hasUserChains(t)) sharedTableFull(tx, t);
    else ownedTableFull(tx, t, before === null);
  }
  const wanted = new Set(after.tables.map(tableId));
  for (const b of before?.tables ?? []) if (!wanted.has(tableId(b))) removeTable(tx, b);
  return tx;
}

const tableId = (t: Table) => `${t.family} ${t.name}`;
const ref = (t: Table): TableRef => ({ family: t.family, table: t.name });
const hasUserChains = (t: Table) => t.chains.some((c) => c.userOwned);
const isMap = (s: NamedSet | NamedMap) => s.kind === 'map';
const elems = (s: NamedSet | NamedMap): (SetElement | MapElement)[] => s.elements;

/** Chains first (map elements may jump to them), then sets with their elements, then rules (they use sets). */
function ownedTableFull(tx: Transaction, t: Table, mayExist: boolean): void {
  const r = ref(t);
  if (mayExist) {
    tx.push({ op: 'add-table', t: r });
    tx.push({ op: 'delete-table', t: r });
  }
  tx.push({ op: 'add-table', t: r, comment: t.comment });
  for (const c of t.chains) tx.push({ op: 'add-chain', t: r, chain: c });
  for (const s of t.sets) tx.push({ op: 'add-set', t: r, set: s, elements: elems(s) });
  for (const c of t.chains) for (const rule of c.rules) tx.push({ op: 'add-rule', t: r, chain: c.name, rule });
}

/**
 * A table shared with the user, state unknown: declare everything, flush qnet's chains and sets,
 * refill (the sets may exist, so their elements come after the flush, as element commands). Chains qnet generated earlier and no longer wants cannot be known here; the engine keeps
 * `before` so that diffs delete them.
 */
function sharedTableFull(tx: Transaction, t: Table): void {
  const r = ref(t);
  tx.push({ op: 'add-table', t: r, comment: t.comment });
  for (const c of t.chains) tx.push({ op: 'add-chain', t: r, chain: c });
  for (const c of t.chains) if (!c.userOwned) tx.push({ op: 'flush-chain', t: r, name: c.name });
  for (const s of t.sets) tx.push({ op: 'add-set', t: r, set: s });
  for (const s of t.sets) tx.push({ op: 'flush-set', t: r, name: s.name, map: isMap(s) });
  for (const s of t.sets) tx.push({ op: 'add-element', t: r, set: s.name, map: isMap(s), elements: elems(s) });
  for (const c of t.chains) if (!c.userOwned) for (const rule of c.rules) tx.push({ op: 'add-rule', t: r, chain: c.name, rule });
}

function removeTable(tx: Transaction, b: Table): void {
  const r = ref(b);
  if (!hasUserChains(b)) {
    tx.push({ op: 'delete-table', t: r });
    return;
  }
  const mine = b.chains.filter((c) => !c.userOwned);
  for (const c of mine) tx.push({ op: 'flush-chain', t: r, name: c.name });
  for (const s of b.sets) tx.push({ op: 'delete-set', t: r, name: s.name, map: isMap(s) });
  for (const c of mine) tx.push({ op: 'delete-chain', t: r, name: c.name });
}

/**
 * What nft 1.0.6 reads before it runs any element command (`add/delete element`): every element
 * of every non-concatenated interval set in the namespace (its cache flag NFT_CACHE_SETELEM_MAYBE;
 * seen with strace: one dump per such set). With 1,000 clients × 100 rules that is 1,000 dumps and
 * ~110 ms, against ~25 ms for the rest of a one-client transaction.
 */
function elementDumpCost(rs: Ruleset): number {
  let n = 0;
  for (const t of rs.tables) for (const s of t.sets) if (s.interval && s.keyType.length === 1) n += s.elements.length;
  return n;
}

const sameDecl = (x: NamedSet | NamedMap, y: NamedSet | NamedMap) =>
  x.kind === y.kind &&
  x.interval === y.interval &&
  x.keyType.join('.') === y.keyType.join('.') &&
  x.comment === y.comment;

const hookOf = (c: Chain) => (c.base ? `${c.base.type} ${c.base.hook} ${c.base.priority}` : 'regular');
const rulesText = (c: Chain) => c.rules.map(renderRuleBody);

function sameRules(x: Chain, y: Chain): boolean {
  if (x.rules.length !== y.rules.length) return false;
  const a = rulesText(x);
  const b = rulesText(y);
  return a.every((s, i) => s === b[i]);
}

/**
 * The chains (of `t`) whose rules look up each of `names` (sets or maps): one pass over the
 * table's rules for all of them, keeping only what is asked.
 */
function usersOf(t: Table, names: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!names.size) return out;
  const add = (set: string, chain: string) => {
    if (!names.has(set)) return;
    const l = out.get(set) ?? out.set(set, []).get(set)!;
    if (l[l.length - 1] !== chain) l.push(chain);
  };
  for (const c of t.chains)
    for (const r of c.rules) {
      for (const m of r.matches) if (m.kind === 'in-set') add(m.set, c.name);
      for (const st of r.stmts) if (st.kind === 'vmap') add(st.map, c.name);
    }
  return out;
}

function tableDelta(tx: Transaction, b: Table, a: Table, dumpCost: () => number): void {
  const r = ref(a);
  // What differs, found by identity first: the engine shares every unchanged chain and set with
  // what is loaded, so a rule edit touches a few objects out of thousands, and only those are
  // looked up by name. (A fresh compile shares nothing; then everything is compared, as before.)
  const bChainObjs = new Set(b.chains);
  const aChainObjs = new Set(a.chains);
  const bSetObjs = new Set(b.sets);
  const aSetObjs = new Set(a.sets);
  const newChains = a.chains.filter((c) => !bChainObjs.has(c));
  const oldChains = b.chains.filter((c) => !aChainObjs.has(c));
  const newSets = a.sets.filter((x) => !bSetObjs.has(x));
  const oldSets = b.sets.filter((x) => !aSetObjs.has(x));
  const bChains = new Map(oldChains.map((c) => [c.name, c]));
  const bSets = new Map(oldSets.map((x) => [x.name, x]));
  const aChainNames = new Set(newChains.map((c) => c.name));
  const aSetNames = new Set(newSets.map((x) => x.name));

  // Sets whose declaration changed are recreated; every chain using them must let go first.
  const replacedSets = newSets.filter((x) => {
    const o = bSets.get(x.name);
    return o !== undefined && !sameDecl(o, x);
  });
  // Sets whose elements differ (and a declaration that stays) may be recreated too, see below.
  const changedElements = newSets.filter((x) => {
    const o = bSets.get(x.name);
    return o !== undefined && sameDecl(o, x) && !sameElements(o, x);
  });
  const users = usersOf(b, new Set([...replacedSets, ...changedElements].map((x) => x.name)));
  const usersOfSet = (name: string) => users.get(name) ?? [];
  replacedSets.push(...recreateInsteadOfMirror(b, a, changedElements, bChains, usersOfSet, dumpCost));
  const mustRefill = new Set(replacedSets.flatMap((x) => usersOfSet(x.name)));
  // Unchanged chains (shared objects) that use a replaced set are refilled too.
  const refillShared = mustRefill.size ? a.chains.filter((c) => bChainObjs.has(c) && mustRefill.has(c.name)) : [];

  const added: Chain[] = [];
  const refilled: Chain[] = [...refillShared];
  const replacedChains: Chain[] = [];
  const policyOnly: Chain[] = [];
  for (const c of newChains) {
    const o = bChains.get(c.name);
    if (!o) {
      added.push(c);
      continue;
    }
    if (c.userOwned) continue; // declared by the user's side of the contract; never touched
    if (hookOf(o) !== hookOf(c)) replacedChains.push(c);
    else {
      if (c.base && o.base && renderBaseSpec(c.base) !== renderBaseSpec(o.base)) policyOnly.push(c);
      if (mustRefill.has(c.name) || !sameRules(o, c)) refilled.push(c);
    }
  }
  const removedChains = oldChains.filter((c) => !aChainNames.has(c.name) && !c.userOwned);
  const removedSets = oldSets.filter((x) => !aSetNames.has(x.name));

  // 1. declarations the rest needs
  for (const c of [...added, ...policyOnly]) tx.push({ op: 'add-chain', t: r, chain: c });
  // 2. drop rules that change or go away (this also drops their references)
  for (const c of [...refilled, ...replacedChains, ...removedChains]) tx.push({ op: 'flush-chain', t: r, name: c.name });
  // 3. element mirror: delete the gone and the changed
  const toAdd: { s: NamedSet | NamedMap; e: (SetElement | MapElement)[] }[] = [];
  const replaced = new Set(replacedSets);
  for (const s of newSets) {
    const o = bSets.get(s.name);
    if (!o || replaced.has(s)) continue; // declared with their elements in step 4
    // Elements both hold as the same object are unchanged (a patched set shares them with what is
    // loaded): only the others are rendered and compared, as below.
    const [want, have] = elementsApart(s, o);
    const del = [...have].filter(([k, e]) => !want.has(k) || elementText(want.get(k)!) !== elementText(e)).map(([, e]) => e);
    const add = [...want].filter(([k, e]) => !have.has(k) || elementText(have.get(k)!) !== elementText(e)).map(([, e]) => e);
    tx.push({ op: 'delete-element', t: r, set: s.name, map: isMap(s), elements: del });
    toAdd.push({ s, e: add });
  }
  // 4. recreate what changed shape; declare new sets (after the chains their elements may jump to)
  for (const s of [...removedSets, ...replacedSets]) tx.push({ op: 'delete-set', t: r, name: s.name, map: isMap(s) });
  for (const c of replacedChains) tx.push({ op: 'delete-chain', t: r, name: c.name });
  for (const c of replacedChains) tx.push({ op: 'add-chain', t: r, chain: c });
  for (const s of [...newSets.filter((x) => !bSets.has(x.name)), ...replacedSets]) tx.push({ op: 'add-set', t: r, set: s, elements: elems(s) });
  // 5. fill
  for (const { s, e } of toAdd) tx.push({ op: 'add-element', t: r, set: s.name, map: isMap(s), elements: e });
  for (const c of [...added.filter((x) => !x.userOwned), ...refilled, ...replacedChains])
    for (const rule of c.rules) tx.push({ op: 'add-rule', t: r, chain: c.name, rule });
  // 6. chains nobody points at any more
  for (const c of removedChains) tx.push({ op: 'delete-chain', t: r, name: c.name });
}

/**
 * Sets whose declaration is unchanged but whose elements changed, to be recreated rather than
 * mirrored with element commands: when nothing in this table needs an element command otherwise,
 * and recreating them (their elements, plus the rules of the chains using them that are not
 * refilled anyway) moves fewer objects than nft's element dump (elementDumpCost). Only sets used by
 * qnet's regular chains qualify: refilling a base chain would reset the counters of a hop every
 * client crosses; a user chain is never touched.
 */
function recreateInsteadOfMirror(
  b: Table,
  a: Table,
  changed: readonly (NamedSet | NamedMap)[],
  bChains: ReadonlyMap<string, Chain>,
  usersOfSet: (name: string) => string[],
  dumpCost: () => number,
): (NamedSet | NamedMap)[] {
  if (!changed.length) return [];
  let cost = 0;
  for (const x of changed) {
    cost += x.elements.length;
    for (const name of usersOfSet(x.name)) {
      // A set has a user or two: a scan each is cheaper than maps of every chain.
      const before = bChains.get(name) ?? b.chains.find((c) => c.name === name)!;
      const after = a.chains.find((c) => c.name === name);
      if (before.base || before.userOwned || !after) return [];
      // A chain whose rules changed is refilled anyway; an unchanged one costs its rules.
      const refilledAnyway = bChains.has(name) && !sameRules(before, after);
      if (!refilledAnyway) cost += after.rules.length;
    }
  }
  return cost < dumpCost() ? [...changed] : [];
}

/** The elements of `a` and of `b` that are not the same object in the other, by key. */
function elementsApart(a: NamedSet | NamedMap, b: NamedSet | NamedMap): [Map<string, SetElement | MapElement>, Map<string, SetElement | MapElement>] {
  const aObjs = new Set<SetElement | MapElement>(elems(a));
  const bObjs = new Set<SetElement | MapElement>(elems(b));
  const byKey = (xs: (SetElement | MapElement)[], other: Set<SetElement | MapElement>) => new Map(xs.filter((e) => !other.has(e)).map((e) => [elementKey(e), e]));
  return [byKey(elems(a), bObjs), byKey(elems(b), aObjs)];
}

/** Same declaration and elements: loading one where the other is changes nothing. */
export const sameSet = (x: NamedSet | NamedMap, y: NamedSet | NamedMap) => x === y || (sameDecl(x, y) && sameElements(x, y));

function sameElements(x: NamedSet | NamedMap, y: NamedSet | NamedMap): boolean {
  if (x.elements.length !== y.elements.length) return false;
  const objs = new Set<SetElement | MapElement>(elems(x));
  if (elems(y).every((e) => objs.has(e))) return true;
  const have = new Set(elems(x).map(elementText));
  return elems(y).every((e) => have.has(elementText(e)));
}

/**
 * What a load of `after` over `before` sends: with `overlay`, an overlay where the change allows
 * one (overlayTransaction), else the plain diff. `holds`: what the kernel then holds.
 */
export function loadTransaction(before: Ruleset | null, after: Ruleset, overlay = false): { tx: Transaction; holds: Ruleset; overlaid: boolean } {
  const o = overlay && before ? overlayTransaction(before, after) : null;
  return o ? { ...o, overlaid: true } : { tx: diffTransaction(before, after), holds: after, overlaid: false };
}

/**
 * A transaction that only adds, for when `after` differs from what the kernel holds only in some
 * regular chains being rewritten whole (a rule edit, a DNS answer) and in sets under new names:
 * the new sets are added with their elements, and each rewritten chain gets its new rules inserted
 * in front of the old ones. The new rules end in an unconditional verdict, so the old rules below
 * are never reached: the kernel behaves as `after` at once. The point is speed: a transaction that
 * deletes anything (a flush, a set) makes nft wait for an RCU grace period as it closes its socket
 * (nf_tables flushes its destroy work then: 10–20 ms here), one that only adds does not.
 *
 * `holds` is what the kernel then holds: `after`, plus the old rules below each rewritten chain's
 * new ones and the sets only they used. `diffTransaction(holds, after)` removes those later, off
 * the hot path. Null when the change is not of this kind (the caller diffs as usual).
 */
export function overlayTransaction(kernel: Ruleset, after: Ruleset): { tx: Transaction; holds: Ruleset } | null {
  const tx = new Transaction();
  const old = new Map(kernel.tables.map((t) => [tableId(t), t]));
  if (old.size !== after.tables.length) return null;
  const tables: Table[] = [];
  // Identity first, as in tableDelta: an edit touches one chain and a few sets of thousands.
  for (const a of after.tables) {
    const b = old.get(tableId(a));
    if (!b) return null;
    if (b === a) {
      tables.push(a);
      continue;
    }
    if (a.comment !== b.comment || a.chains.length !== b.chains.length) return null; // a chain added or removed
    const r = ref(a);
    const chains: Chain[] = [];
    const inserts: Op[] = [];
    for (let i = 0; i < a.chains.length; i++) {
      const c = a.chains[i]!;
      const o = b.chains[i]!;
      if (c === o) {
        chains.push(c);
        continue;
      }
      if (o.name !== c.name || o.base || c.base || o.userOwned || c.userOwned || o.comment !== c.comment || !endsInVerdict(c)) return null;
      if (liveAlready(o, c)) {
        chains.push(o); // the kernel already runs these rules: keep what it holds, below them too
        continue;
      }
      for (let j = c.rules.length - 1; j >= 0; j--) inserts.push({ op: 'insert-rule', t: r, chain: c.name, rule: c.rules[j]! });
      chains.push({ ...c, rules: [...c.rules, ...o.rules] });
    }
    const bSetObjs = new Set(b.sets);
    const aSetObjs = new Set(a.sets);
    const adds: Op[] = [];
    for (const x of a.sets) {
      if (bSetObjs.has(x)) continue;
      if (b.sets.some((y) => y.name === x.name && !aSetObjs.has(y))) return null; // changed in place: the caller renames it apart
      adds.push({ op: 'add-set', t: r, set: x, elements: elems(x) });
    }
    for (const o of [...adds, ...inserts]) tx.push(o); // sets first: the inserted rules use them
    // Sets no longer wanted stay until the old rules that use them are gone.
    tables.push({ ...a, chains, sets: [...a.sets, ...b.sets.filter((y) => !aSetObjs.has(y))] });
  }
  return { tx, holds: { tables } };
}

/**
 * Whether `held` starts with the rules of `want`: the same objects (overlaid earlier, not tidied
 * yet) or the same text (a chain rebuilt unchanged, e.g. the other family's chain of an edited
 * client: patchClient replaces every family's chain). The caller has checked that `want` ends in a
 * verdict, so rules below it in `held` are never reached. Text suffices: a set changed under its
 * own name makes the overlay refuse, so equal text looks up equal sets.
 */
const liveAlready = (held: Chain, want: Chain) =>
  held.rules.length >= want.rules.length && want.rules.every((r, i) => held.rules[i] === r || renderRuleBody(held.rules[i]!) === renderRuleBody(r));

/** Whether the chain's last rule decides for every packet that reaches it (nothing falls through). */
function endsInVerdict(c: Chain): boolean {
  const last = c.rules[c.rules.length - 1];
  if (!last || last.matches.length) return false;
  return last.stmts.some((s) => s.kind === 'verdict' && ['accept', 'drop', 'reject', 'return', 'goto'].includes(s.verdict.kind));
}
