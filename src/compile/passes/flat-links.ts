// The flat layout of connections and forwards (issue 10, performance): instead of one rule list per
// chain (links-up, links-down, dnat-forwards), which the first packet of a flow walks up to its own
// rule, one verdict-map lookup per key shape jumps to a small chain holding the rules with exactly
// that key. The rules themselves are unchanged (same matches, counter, origin, order), so counters
// still map to each connection/forward and a packet meets the same first matching rule:
//   * a rule matches only packets whose key fields equal its key, so rules with different keys are
//     disjoint and their relative order cannot matter; rules sharing a key keep their order in its chain;
//   * a chain that does not decide returns, and evaluation goes on after the lookup, as it would
//     have after those rules in the list.
// Key shapes are chosen so that they partition what they cover: connection rules of a (source,
// destination) pair use the finer `saddr . daddr . l4proto . dport` key only if every rule of the pair
// has a single protocol and port, else all of the pair's rules go by the pair.
// layout 'qubes-linear' keeps the rule lists: the baseline bench/connections.bench.ts compares against.
import type { Chain, Field, IrRule, NamedMap, SetKeyType, Value } from '../../ir/types.js';
import { LINK_MAPS, linkKeyChain } from '../names.js';
import type { IpFamily } from '../context.js';
import { rule, sym } from './build.js';

export interface FlatPart {
  maps: NamedMap[];
  chains: Chain[];
}

interface Shape {
  map: string;
  prefix: string;
  fields: Field[];
  types: SetKeyType[];
}

const eq = (r: IrRule, f: Field): Value | undefined => {
  const m = r.matches.find((x) => x.kind === 'cmp' && x.op === '==' && x.field === f);
  return m?.kind === 'cmp' ? m.value : undefined;
};
const single = (v: Value | undefined): v is Value => v !== undefined && ((v.kind === 'addr' && v.len === undefined) || v.kind === 'int');

/** `tcp dport N` / `udp dport N` as `tcp . N`; null for ranges, protocol-only or any protocol. */
function l4Key(r: IrRule): Value[] | null {
  for (const p of ['tcp', 'udp'] as const) {
    const v = eq(r, `${p} dport`);
    if (v !== undefined) return v.kind === 'int' ? [sym(p), v] : null;
  }
  return null;
}

const part = (v: Value): string => (v.kind === 'addr' ? v.addr : v.kind === 'int' ? String(v.n) : v.kind === 'sym' ? v.s : '?');

/** One vmap rule for `items` (key → rule), its map and its chains; nothing when there are no items. */
function dispatch(out: FlatPart, origin: string, shape: Shape, items: { key: Value[]; rule: IrRule }[]): IrRule[] {
  if (!items.length) return [];
  const groups = new Map<string, { key: Value[]; rules: IrRule[] }>();
  for (const it of items) {
    const k = it.key.map(part).join(' ');
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { key: it.key, rules: [] }));
    g.rules.push(it.rule);
  }
  const elements = [];
  for (const g of groups.values()) {
    const chain = linkKeyChain(shape.prefix, g.key.map(part));
    out.chains.push({ name: chain, rules: g.rules });
    elements.push({ key: g.key.length === 1 ? g.key[0]! : g.key, verdict: { kind: 'jump' as const, chain } });
  }
  out.maps.push({ kind: 'map', name: shape.map, keyType: shape.types, interval: false, valueType: 'verdict', elements });
  return [rule(origin, [], { kind: 'vmap', fields: shape.fields, map: shape.map })];
}

const ipFields = (f: IpFamily) => (f === 'ip' ? (['ip saddr', 'ip daddr'] as const) : (['ip6 saddr', 'ip6 daddr'] as const));
const addrType = (f: IpFamily): SetKeyType => (f === 'ip' ? 'ipv4_addr' : 'ipv6_addr');

/**
 * Connection rules (each with an exact address in every one of `fields`) by those addresses, or by
 * them and protocol . port, see the header. If a rule has no exact address, the list stays as it is.
 */
function byConnection(out: FlatPart, f: IpFamily, rules: IrRule[], fields: Field[], fine: string, pair: string, prefix: string): IrRule[] {
  if (rules.some((r) => fields.some((x) => !single(eq(r, x))))) return rules; // see byFields
  const keyed = rules.map((r) => ({ r, pairKey: fields.map((x) => eq(r, x)!), l4: l4Key(r) }));
  const coarse = new Set<string>();
  for (const k of keyed) if (k.pairKey && !k.l4) coarse.add(k.pairKey.map(part).join(' '));
  const fineItems: { key: Value[]; rule: IrRule }[] = [];
  const pairItems: { key: Value[]; rule: IrRule }[] = [];
  for (const k of keyed) {
    if (k.l4 && !coarse.has(k.pairKey.map(part).join(' '))) fineItems.push({ key: [...k.pairKey, ...k.l4], rule: k.r });
    else pairItems.push({ key: k.pairKey, rule: k.r });
  }
  const t = fields.map(() => addrType(f));
  return [
    ...dispatch(out, 'connections', { map: fine, prefix: `${prefix}p`, fields: [...fields, 'meta l4proto', 'th dport'], types: [...t, 'inet_proto', 'inet_service'] }, fineItems),
    ...dispatch(out, 'connections', { map: pair, prefix, fields, types: t }, pairItems),
  ];
}

/**
 * Rules keyed by fields that each rule matches exactly. A rule without such a key may match packets
 * of any key, so then the list stays as it is (today every rule has one: a guard, not a path).
 */
function byFields(out: FlatPart, origin: string, shape: Shape, rules: IrRule[], keyOf: (r: IrRule) => Value[] | null): IrRule[] {
  const items = rules.map((r) => ({ key: keyOf(r), rule: r }));
  if (items.some((x) => !x.key)) return rules;
  return dispatch(out, origin, shape, items as { key: Value[]; rule: IrRule }[]);
}

export interface LinkLists {
  /** links-down: connections' accepts first, then forwards' (their order in the list). */
  downConn: IrRule[];
  downFwd: IrRule[];
  upAccept: IrRule[];
  upGuard: IrRule[];
  dnat: IrRule[];
  /** qubes input: connections' accepts first, then forwards'. */
  inputConn: IrRule[];
  inputFwd: IrRule[];
}

/** The flat form of one node's link rules: the rules of links-down, links-up and dnat-forwards. */
export function flatten(f: IpFamily, l: LinkLists): FlatPart & { down: IrRule[]; up: IrRule[]; dnat: IrRule[]; input: IrRule[] } {
  const out: FlatPart = { maps: [], chains: [] };
  const [sF, dF] = ipFields(f);
  const t = addrType(f);
  const down = [
    ...byConnection(out, f, l.downConn, [sF, dF], LINK_MAPS.downConn, LINK_MAPS.downPair, 'ld'),
    ...byFields(out, 'forwards', { map: LINK_MAPS.downFwd, prefix: 'lf', fields: [dF, 'meta l4proto', 'th dport'], types: [t, 'inet_proto', 'inet_service'] }, l.downFwd, (r) => {
      const d = eq(r, dF);
      const p = l4Key(r);
      return single(d) && p ? [d, ...p] : null;
    }),
  ];
  const up = [
    ...byConnection(out, f, l.upAccept, [sF, dF], LINK_MAPS.upConn, LINK_MAPS.upPair, 'lu'),
    ...byFields(out, 'connections', { map: LINK_MAPS.upGuard, prefix: 'lg', fields: [dF], types: [t] }, l.upGuard, (r) => {
      const d = eq(r, dF);
      return single(d) ? [d] : null;
    }),
  ];
  const dnat = byFields(out, 'forwards', { map: LINK_MAPS.dnat, prefix: 'dn', fields: ['meta l4proto', 'th dport'], types: ['inet_proto', 'inet_service'] }, l.dnat, l4Key);
  const input = [
    ...byConnection(out, f, l.inputConn, [sF], LINK_MAPS.inputConn, LINK_MAPS.inputSource, 'ic'),
    ...byFields(out, 'forwards', { map: LINK_MAPS.inputFwd, prefix: 'if', fields: ['meta l4proto', 'th dport'], types: ['inet_proto', 'inet_service'] }, l.inputFwd, l4Key),
  ];
  return { ...out, down, up, dnat, input };
}
