// Rulesets assembled from per-client fragments (compileClient): what a rule edit loads without
// compiling every qube. The engine keeps the ruleset it loaded; these replace one client's chain and
// sets in it (sharing every other object, so the diff skips them by reference), rename sets apart
// for an overlay, and tell which clients' chains differ between two rulesets.
import { sameSet } from '../ir/diff.js';
import { renderMatch, renderStatement } from '../ir/render.js';
import type { Chain, IrRule, NamedMap, NamedSet, Ruleset, Table } from '../ir/types.js';
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Model } from '../model/qube.js';
import { clientsOf } from '../model/topology.js';
import { compileClient, type ClientFragment, type CompileInput } from './compile.js';
import { clientChain, clientOwns, isFirewallTable } from './names.js';

/** The firewall table (`qubes-firewall` or a shard) of `rs` that holds client chain `chain`. */
function clientTable(rs: Ruleset | null, family: 'ip' | 'ip6', chain: string): Table | undefined {
  return rs?.tables.find((t) => t.family === family && isFirewallTable(t.name) && ownedSets(t).chains.has(chain));
}

/** The sets of `rs` that belong to the fragment's client (all are named after its chain). */
export function clientSets(rs: Ruleset, f: ClientFragment): (NamedSet | NamedMap)[] {
  const t = clientTable(rs, f.family, f.chain.name);
  return t ? [...(ownedSets(t).sets.get(f.chain.name) ?? [])] : [];
}

/**
 * Per firewall table, each chain's sets as clientOwns() assigns them (a set belongs to every chain
 * its name extends at a `-`), made once per table object: a rule edit asks for one client's sets in
 * tables of thousands, several times, and patchClient() hands the index on to the table it makes.
 */
interface OwnedIndex {
  chains: ReadonlySet<string>;
  sets: Map<string, (NamedSet | NamedMap)[]>;
}
const ownedIndex = new WeakMap<Table, OwnedIndex>();

/** The chains (of `chains`) that own a set or chain named `name` (see clientOwns). */
function ownersOf(name: string, chains: ReadonlySet<string>): string[] {
  const out: string[] = chains.has(name) ? [name] : [];
  for (let i = name.indexOf('-'); i > 0; i = name.indexOf('-', i + 1)) if (chains.has(name.slice(0, i))) out.push(name.slice(0, i));
  return out;
}

function ownedSets(t: Table): OwnedIndex {
  let index = ownedIndex.get(t);
  if (index) return index;
  index = { chains: new Set(t.chains.map((c) => c.name)), sets: new Map() };
  for (const x of t.sets) for (const chain of ownersOf(x.name, index.chains)) (index.sets.get(chain) ?? index.sets.set(chain, []).get(chain)!).push(x);
  ownedIndex.set(t, index);
  return index;
}

/**
 * The ruleset with a client's chain and sets replaced by freshly compiled fragments; every other
 * object is shared with `rs` (the diff then skips it by reference). Null if the client has no chain
 * there yet (a new client: the full path adds it to the dispatch map too).
 */
export function patchClient(rs: Ruleset, fragments: readonly ClientFragment[]): Ruleset | null {
  const tables = [...rs.tables];
  for (const fr of fragments) {
    const i = tables.findIndex((t) => t.name === fr.table && t.family === fr.family);
    const t = tables[i];
    if (!t) return null;
    const at = t.chains.findIndex((c) => c.name === fr.chain.name);
    if (at < 0) return null;
    const index = ownedSets(t);
    const old = new Set(index.sets.get(fr.chain.name));
    const chains = [...t.chains];
    chains[at] = fr.chain;
    const patched: Table = { ...t, chains, sets: [...t.sets.filter((x) => !old.has(x)), ...fr.sets] };
    // The same chain names, one client's sets replaced: the index carries over when those sets
    // are that client's alone (else it is made again when asked for).
    const alone = (x: NamedSet | NamedMap) => {
      const o = ownersOf(x.name, index.chains);
      return o.length === 1 && o[0] === fr.chain.name;
    };
    if ([...old].every(alone) && fr.sets.every(alone)) ownedIndex.set(patched, { chains: index.chains, sets: new Map(index.sets).set(fr.chain.name, [...fr.sets]) });
    tables[i] = patched;
  }
  return { tables };
}

/**
 * The fragment ready for an overlay, which adds sets but cannot change one: a set the node has
 * already, the same, is the node's own object (nothing to load); one whose name the kernel uses for
 * something else is renamed to a free `<name>-g<N>` (still prefixed by the client chain's name),
 * and the rules point at the new names. `live`: the sets the node's live rules use, by name.
 */
export function renameSetsApart(fr: ClientFragment, live: ReadonlyMap<string, NamedSet | NamedMap>, taken: ReadonlySet<string>): ClientFragment {
  const renamed = new Map<string, string>();
  const kept = new Map<string, NamedSet | NamedMap>();
  for (const x of fr.sets) {
    const have = live.get(x.name);
    if (have && sameSet(have, x)) kept.set(x.name, have);
    else if (taken.has(x.name)) {
      let n = 1;
      while (taken.has(`${x.name}-g${n}`)) n++;
      renamed.set(x.name, `${x.name}-g${n}`);
    }
  }
  if (!renamed.size && !kept.size) return fr;
  const to = (name: string) => renamed.get(name) ?? name;
  return {
    family: fr.family,
    table: fr.table,
    sets: fr.sets.map((x) => (kept.get(x.name) as NamedSet | undefined) ?? (renamed.has(x.name) ? { ...x, name: to(x.name) } : x)),
    chain: {
      ...fr.chain,
      rules: fr.chain.rules.map((r) => ({
        ...r,
        matches: r.matches.map((m) => (m.kind === 'in-set' ? { ...m, set: to(m.set) } : m)),
        stmts: r.stmts.map((st) => (st.kind === 'vmap' ? { ...st, map: to(st.map) } : st)),
      })),
    },
  };
}

/**
 * A ruleset of just these clients' chains and sets in `netvm`'s firewall tables: what compile()
 * puts there for them. Diffed against the same for the old rules, it is an edit's delta. Null if a
 * client has no chain there (nothing to patch: the full path adds it to the dispatch map too).
 */
export function clientsRuleset(input: CompileInput, netvm: string, clients: readonly string[], warn?: (d: Diagnostic) => void): Ruleset | null {
  const tables = new Map<string, Table>();
  for (const c of clients) {
    const { fragments, diagnostics } = compileClient(input, netvm, c);
    for (const d of diagnostics) if (d.severity === 'warning') warn?.(d);
    if (!fragments.length) return null;
    for (const f of fragments) {
      const key = `${f.family} ${f.table}`;
      const t = tables.get(key) ?? tables.set(key, { family: f.family, name: f.table, sets: [], chains: [] }).get(key)!;
      t.chains.push(f.chain);
      t.sets.push(...f.sets);
    }
  }
  return { tables: [...tables.values()] };
}

/** Chains of a client in a firewall table: its own chain and the chains it jumps into. */
function clientChains(t: Table | undefined, chain: string): Chain[] {
  const owns = clientOwns(chain);
  return t ? t.chains.filter((c) => owns(c.name)) : [];
}

/** What a rule does, without where it came from (a rule renumbered is the same rule). */
const ruleBody = (r: IrRule) => `${r.matches.map(renderMatch).join(' ')} | ${r.stmts.map(renderStatement).join(' ')}`;

function sameChains(x: readonly Chain[], y: readonly Chain[]): boolean {
  return x.length === y.length && x.every((c, i) => {
    const d = y[i]!;
    return c === d || (c.name === d.name && c.rules.length === d.rules.length && c.rules.every((r, j) => r === d.rules[j] || ruleBody(r) === ruleBody(d.rules[j]!)));
  });
}

function sameSets(x: readonly (NamedSet | NamedMap)[], y: readonly (NamedSet | NamedMap)[]): boolean {
  const byName = new Map(y.map((s) => [s.name, s]));
  return x.length === y.length && x.every((s) => {
    const t = byName.get(s.name);
    return t !== undefined && sameSet(s, t);
  });
}

/** Clients of `node` whose firewall chains or sets differ between two rulesets (all of them for a full load). */
export function changedClients(model: Model, node: string, before: Ruleset | null, after: Ruleset): string[] {
  const out: string[] = [];
  for (const c of clientsOf(model, node)) {
    if (c.state !== 'Running') continue;
    const addrs: [string | null, 'ip' | 'ip6'][] = [
      [qubeIp(model, c), 'ip'],
      [qubeIp6(model, c), 'ip6'],
    ];
    const differs = addrs.some(([a, fam]) => {
      if (!a) return false;
      const chain = clientChain(a);
      const [x, y] = [clientTable(before, fam, chain), clientTable(after, fam, chain)];
      const owns = clientOwns(chain);
      const sets = (t: Table | undefined) => t?.sets.filter((s) => owns(s.name)) ?? [];
      return !sameChains(clientChains(x, chain), clientChains(y, chain)) || !sameSets(sets(x), sets(y));
    });
    if (differs) out.push(c.name);
  }
  return out;
}
