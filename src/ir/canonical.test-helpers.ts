// A ruleset as the kernel keeps it, for tests that compare two: chains and sets by name, set and
// map elements unordered (nft keeps neither declaration order), rules in order and whole.
import { elementText } from './render.js';
import type { Ruleset } from './types.js';

export function canonicalRuleset(rs: Ruleset | undefined | null): unknown {
  if (!rs) return rs;
  const byName = <T extends { name: string }>(xs: readonly T[]) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [...rs.tables]
    .sort((a, b) => `${a.family} ${a.name}`.localeCompare(`${b.family} ${b.name}`))
    .map((t) => ({ ...t, chains: byName(t.chains), sets: byName(t.sets).map((s) => ({ ...s, elements: s.elements.map(elementText).sort() })) }));
}
