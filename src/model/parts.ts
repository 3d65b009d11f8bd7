// A model seen as named parts, so that an apply can say exactly what it changed and put it back:
//   globals             default_netvm and uplink
//   qube:NAME           a qube's properties (not its rules, not whether it runs)
//   rules:NAME          its rule list
//   connection:ID       one connection;  forward:ID  one port forward
// A part absent from a Parts record did not exist. Values are plain JSON data. Whether a qube runs
// is never a part: putting a change back neither starts nor stops qubes (a qube it removes stops).
import type { Effect } from './effect.js';
import type { Model, Qube } from './qube.js';
import type { RuleList } from './rule.js';

export type Parts = Record<string, unknown>;

function qubeProps(q: Qube): unknown {
  const { rules: _r, state: _s, rulesProblem: _p, ...props } = q;
  // JSON's view: a key set to undefined is no key.
  return JSON.parse(JSON.stringify(props)) as unknown;
}

const globalsOf = (m: Model) => ({ default_netvm: m.default_netvm, ...(m.uplink !== undefined ? { uplink: m.uplink } : {}) });

/** Every part of `m`, by key. */
export function partsOf(m: Model): Map<string, unknown> {
  const out = new Map<string, unknown>();
  out.set('globals', globalsOf(m));
  for (const q of m.qubes.values()) {
    out.set(`qube:${q.name}`, qubeProps(q));
    out.set(`rules:${q.name}`, q.rules);
  }
  for (const c of m.connections ?? []) out.set(`connection:${c.id}`, c);
  for (const f of m.forwards ?? []) out.set(`forward:${f.id}`, f);
  return out;
}

/** One part of `m` (undefined: absent), reading no other qube's rules. */
export function partOf(m: Model, key: string): unknown {
  const [kind, name = ''] = splitKey(key);
  switch (kind) {
    case 'globals':
      return globalsOf(m);
    case 'qube': {
      const q = m.qubes.get(name);
      return q && qubeProps(q);
    }
    case 'rules':
      return m.qubes.get(name)?.rules;
    case 'connection':
      return m.connections?.find((c) => c.id === name);
    case 'forward':
      return m.forwards?.find((f) => f.id === name);
  }
  return undefined;
}

const splitKey = (key: string): [string, string | undefined] => {
  const i = key.indexOf(':');
  return i < 0 ? [key, undefined] : [key.slice(0, i), key.slice(i + 1)];
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The parts that differ between two models: each as it was in `before` and as it is in `after`. */
export function changedParts(before: Model, after: Model): { before: Parts; after: Parts } {
  const a = partsOf(before);
  const b = partsOf(after);
  const out = { before: {} as Parts, after: {} as Parts };
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (same(a.get(k), b.get(k))) continue;
    if (a.has(k)) out.before[k] = JSON.parse(JSON.stringify(a.get(k) ?? null)) as unknown;
    if (b.has(k)) out.after[k] = JSON.parse(JSON.stringify(b.get(k) ?? null)) as unknown;
  }
  return out;
}

/** The keys among `keys` whose part in `m` is not as `want` has it. */
export function partsDiffering(m: Model, keys: readonly string[], want: Parts): string[] {
  return keys.filter((k) => {
    const now = partOf(m, k);
    const has = Object.hasOwn(want, k);
    return has ? now === undefined || !same(now, want[k]) : now !== undefined;
  });
}

/**
 * Put `keys` of `m` as `parts` has them (absent in `parts`: removed). A qube put back is Halted
 * unless it runs now; its rules follow their own part.
 */
export function restoreParts(m: Model, keys: readonly string[], parts: Parts): void {
  const has = (k: string) => Object.hasOwn(parts, k);
  const sorted = [...keys].sort((x, y) => rank(x) - rank(y));
  for (const k of sorted) {
    const [kind, name = ''] = splitKey(k);
    if (kind === 'globals' && has(k)) {
      const g = parts[k] as { default_netvm: string | null; uplink?: string };
      m.default_netvm = g.default_netvm;
      if (g.uplink === undefined) delete m.uplink;
      else m.uplink = g.uplink;
    } else if (kind === 'qube') {
      const now = m.qubes.get(name);
      if (!has(k)) m.qubes.delete(name);
      else {
        const q = { ...(parts[k] as Omit<Qube, 'rules' | 'state'>), state: now?.state ?? 'Halted', rules: now ? now.rules : [] } as Qube;
        if (now?.rulesProblem) q.rulesProblem = now.rulesProblem;
        m.qubes.set(name, q);
      }
    } else if (kind === 'rules') {
      const q = m.qubes.get(name);
      if (q && has(k)) {
        delete q.rulesProblem; // rules put back are written over a broken file, as firewall.set does
        q.rules = parts[k] as RuleList;
      }
    } else if (kind === 'connection' || kind === 'forward') {
      const field = kind === 'connection' ? 'connections' : 'forwards';
      const list = ((m[field] ?? []) as { id: string }[]).filter((x) => x.id !== name);
      if (has(k)) list.push(parts[k] as { id: string });
      list.sort((x, y) => Number(x.id.slice(1)) - Number(y.id.slice(1)));
      if (list.length) (m as unknown as Record<string, unknown>)[field] = list;
      else delete m[field];
    }
  }
  m.qubes = new Map([...m.qubes].sort(([, a], [, b]) => a.qid - b.qid));
}

/** Qubes before their rules (a rule list needs its qube); the rest after. */
const rank = (k: string) => (k.startsWith('globals') ? 0 : k.startsWith('qube:') ? 1 : k.startsWith('rules:') ? 2 : 3);

/** What putting these parts back touches: only rule lists is a rule edit; anything else converges. */
export function effectOfParts(keys: readonly string[]): Effect {
  return keys.length && keys.every((k) => k.startsWith('rules:')) ? { kind: 'rules', qubes: keys.map((k) => k.slice('rules:'.length)) } : { kind: 'all' };
}

/** `the rules of work`, `qube work`, `connection c1`: a part as a person reads it. */
export function describePart(key: string): string {
  const [kind, name] = splitKey(key);
  switch (kind) {
    case 'globals':
      return 'the global properties';
    case 'qube':
      return `qube ${name}`;
    case 'rules':
      return `the rules of ${name}`;
    default:
      return `${kind} ${name}`;
  }
}
