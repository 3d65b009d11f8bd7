// Connections and forwards added or removed without compiling every node (issue 10, performance):
// only the changed links' keys are compiled, on each hop, and patched into what the nodes hold.
//
// A key (a flat-links chain and its map element, an element of links-up-dests, @allowed or
// forward-ports) gets its rules only from links towards one destination (connections: every key
// names B's address, or is in B's own input) or on one `proto port` (forwards). So the links towards
// the changed links' destinations and on their ports, compiled alone (passes/links.ts LinkScope),
// give every key they touch exactly as the full compile does: the same rules in the same order,
// the same fine/pair split, the same deduplicated guards and elements. Those keys are replaced in
// each node's `qubes` tables; every other object is shared with what the node holds, so the diff
// (ir/diff.ts, by identity first) sends only the touched chains and elements.
//
// Null (the caller compiles in full) when the change is not of that kind: a map, set or chain the
// links need would appear or vanish (the first link of a shape on a node, the last one going), or
// what the node holds is not compile()'s for the touched keys.
import { elementKey, renderRuleBody } from '../ir/render.js';
import type { Chain, MapElement, NamedMap, NamedSet, Ruleset, SetElement, Table } from '../ir/types.js';
import { connectionsOf, forwardsOf, type Connection, type PortForward } from '../model/connection.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Model } from '../model/qube.js';
import { makeContext, type CompileInput } from './context.js';
import { ALLOWED_SET, FORWARD_PORTS_SET, LINKS_UP_SET, QUBES_TABLE } from './names.js';
import { addr, int, str, sym } from './passes/build.js';
import { compileLinks, type LinkScope, type NodeLinks } from './passes/links.js';

export interface LinkPatch {
  /** The nodes whose rulesets change, patched. */
  rulesets: Map<string, Ruleset>;
  /** The scoped compile's diagnostics (about the changed links and those sharing their keys). */
  diagnostics: Diagnostic[];
}

/** The links of `mine` that differ from those of `other` (added, removed or changed), by id; the same object is the same link. */
function changed<T extends { id: string }>(mine: readonly T[], other: readonly T[]): T[] {
  const theirs = new Map(other.map((x) => [x.id, x]));
  return mine.filter((x) => {
    const o = theirs.get(x.id);
    return o !== x && (o === undefined || JSON.stringify(o) !== JSON.stringify(x));
  });
}

/** Destinations of a connection: B, and A too when both ways. */
const destsOf = (c: Connection) => (c.bothWays ? [c.to, c.from] : [c.to]);
/** The `proto port` keys of a forward: the port it is offered on, and the one the qube listens on. */
const portsOf = (f: PortForward) => [`${f.proto} ${f.port}`, `${f.proto} ${f.toPort ?? f.port}`];

/**
 * `before` and `after` differ only in their connections and forwards; `input` (plan, answers, now,
 * layout) is the same for both, and `held(node)` is what compile(before) gives for that node.
 */
export function patchLinks(input: Omit<CompileInput, 'model'>, before: Model, after: Model, held: (node: string) => Ruleset | undefined): LinkPatch | null {
  if ((input.layout ?? 'qnet') !== 'qnet') return null; // the rule lists of the baseline layout are not keyed
  const conns = [...changed(connectionsOf(before), connectionsOf(after)), ...changed(connectionsOf(after), connectionsOf(before))];
  const fwds = [...changed(forwardsOf(before), forwardsOf(after)), ...changed(forwardsOf(after), forwardsOf(before))];
  const dests = new Set(conns.flatMap(destsOf));
  const ports = new Set(fwds.flatMap(portsOf));
  const scoped = (m: Model) => {
    const scope: LinkScope = {
      connections: connectionsOf(m).filter((c) => destsOf(c).some((d) => dests.has(d))),
      forwards: forwardsOf(m).filter((f) => portsOf(f).some((p) => ports.has(p))),
      dests,
      ports,
    };
    const { ctx, diagnostics } = makeContext({ ...input, model: m });
    return { links: compileLinks(ctx, scope), diagnostics };
  };
  const was = scoped(before).links;
  const { links: now, diagnostics } = scoped(after);
  const rulesets = new Map<string, Ruleset>();
  const nodes = new Set([...was.keys(), ...now.keys()].map((k) => k.slice(k.indexOf(' ') + 1)));
  for (const node of nodes) {
    const rs = held(node);
    if (!rs) return null;
    let touched = false;
    const tables: Table[] = [];
    for (const t of rs.tables) {
      const key = `${t.family} ${node}`;
      if (t.name !== QUBES_TABLE || (!was.has(key) && !now.has(key))) {
        tables.push(t);
        continue;
      }
      const p = patchTable(t, was.get(key), now.get(key));
      if (!p) return null;
      touched ||= p !== t;
      tables.push(p);
    }
    if (touched) rulesets.set(node, { tables });
  }
  return { rulesets, diagnostics };
}

const EMPTY: NodeLinks = { down: [], downFwd: [], up: [], upGuard: [], maps: [], chains: [], upDests: [], ports: [], input: [], inputFwd: [], dnat: [], allowed: [] };

/** The table with the keys of `was` (what it holds for them) replaced by those of `now`; null: see the header. */
function patchTable(t: Table, was: NodeLinks = EMPTY, now: NodeLinks = EMPTY): Table | null {
  // Every rule of the scoped links is behind a verdict map (flat-links.ts keeps a list only for a
  // rule without an exact key, which no link makes today): else the rule lists are not keyed.
  const keyed = (n: NodeLinks) => [n.down, n.up, n.dnat, n.input].every((l) => l.every((r) => r.stmts.length === 1 && r.stmts[0]!.kind === 'vmap'));
  if (!keyed(was) || !keyed(now)) return null;
  const chains = patchChains(t.chains, was.chains, now.chains);
  if (!chains) return null;
  const sets: (NamedSet | NamedMap)[] = [];
  const mapsWas = new Map(was.maps.map((m) => [m.name, m]));
  const mapsNow = new Map(now.maps.map((m) => [m.name, m]));
  const elementsOf = (name: string): [SetElement[], SetElement[], boolean] | undefined => {
    switch (name) {
      case LINKS_UP_SET:
        return [was.upDests.map((a) => ({ key: addr(a) })), now.upDests.map((a) => ({ key: addr(a) })), true];
      case FORWARD_PORTS_SET:
        return [was.ports.map(([p, n]) => ({ key: [sym(p), int(n)] })), now.ports.map(([p, n]) => ({ key: [sym(p), int(n)] })), true];
      case ALLOWED_SET: {
        const el = (x: NodeLinks['allowed'][number]): SetElement => ({ key: [str(x.vif), addr(x.addr)], comment: x.qube });
        return [was.allowed.map(el), now.allowed.map(el), false];
      }
    }
    const [w, n] = [mapsWas.get(name), mapsNow.get(name)];
    return w || n ? [w?.elements ?? [], n?.elements ?? [], true] : undefined;
  };
  const seen = new Set<string>();
  for (const s of t.sets) {
    seen.add(s.name);
    const e = elementsOf(s.name);
    if (!e) {
      sets.push(s);
      continue;
    }
    const [w, n, mustStay] = e;
    const els = patchElements(s.elements, w, n);
    if (!els || (mustStay && !els.length)) return null; // the map (and its lookup) would go
    sets.push(els === s.elements ? s : ({ ...s, elements: els } as NamedSet | NamedMap));
  }
  // A map or set the links need that the node does not have (its lookup rule is missing too), or
  // one they had that it does not hold.
  for (const [name, m] of [...mapsNow, ...mapsWas]) if (!seen.has(name) && m.elements.length) return null;
  if (was.upDests.length && !seen.has(LINKS_UP_SET)) return null;
  if (was.ports.length && !seen.has(FORWARD_PORTS_SET)) return null;
  if ((now.upDests.length && !seen.has(LINKS_UP_SET)) || (now.ports.length && !seen.has(FORWARD_PORTS_SET)) || (now.allowed.length && !seen.has(ALLOWED_SET))) return null;
  if (chains === t.chains && sets.every((s, i) => s === t.sets[i])) return t;
  return { ...t, chains, sets };
}

const rulesText = (c: Chain) => c.rules.map(renderRuleBody).join('\n');

/** The chains with those of `was` replaced by those of `now` (unchanged ones kept as they are held). */
function patchChains(held: Chain[], was: Chain[], now: Chain[]): Chain[] | null {
  if (!was.length && !now.length) return held;
  const w = new Map(was.map((c) => [c.name, c]));
  const n = new Map(now.map((c) => [c.name, c]));
  let found = 0;
  let same = true;
  const out: Chain[] = [];
  for (const c of held) {
    const old = w.get(c.name);
    if (!old) {
      // A key's chain held but not compiled from the scoped links: the node is not compile()'s.
      if (n.has(c.name)) return null;
      out.push(c);
      continue;
    }
    // The node must hold exactly what compile() gave for the touched keys.
    if (rulesText(c) !== rulesText(old)) return null;
    found++;
    const next = n.get(c.name);
    if (next && rulesText(next) === rulesText(c)) out.push(c);
    else {
      same = false;
      if (next) out.push(next);
    }
  }
  if (found !== w.size) return null;
  for (const c of now)
    if (!w.has(c.name)) {
      out.push(c);
      same = false;
    }
  return same ? held : out;
}

/**
 * Element keys per held set or map, made once per object and handed on to the object a patch
 * makes from it: a link edit touches a few elements of maps of thousands, several times.
 */
const keyIndex = new WeakMap<readonly (SetElement | MapElement)[], Set<string>>();
function keysOf(elements: readonly (SetElement | MapElement)[]): Set<string> {
  let k = keyIndex.get(elements);
  if (!k) keyIndex.set(elements, (k = new Set(elements.map(elementKey))));
  return k;
}

/**
 * The elements with the keys of `was` that `now` lacks removed and those only `now` has added
 * (a key in both is the same element: a flat-links element names its chain by its key). Null when
 * the held elements lack one of `was`, or hold one only `now` has.
 */
function patchElements<E extends SetElement | MapElement>(held: E[], was: E[], now: E[]): E[] | null {
  if (!was.length && !now.length) return held;
  const w = new Set(was.map(elementKey));
  const n = new Map(now.map((e) => [elementKey(e), e]));
  const have = keysOf(held);
  for (const k of w) if (!have.has(k)) return null;
  const gone = [...w].filter((k) => !n.has(k));
  const added: [string, E][] = [];
  for (const [k, e] of n)
    if (!w.has(k)) {
      if (have.has(k)) return null; // held but not compiled from these links
      added.push([k, e]);
    }
  if (!gone.length && !added.length) return held;
  const drop = new Set(gone);
  const out = [...(drop.size ? held.filter((e) => !drop.has(elementKey(e))) : held), ...added.map(([, e]) => e)];
  const keys = new Set(have);
  for (const k of gone) keys.delete(k);
  for (const [k] of added) keys.add(k);
  keyIndex.set(out, keys);
  return out;
}
