// What changes would do, without doing them (`--dry-run`, `qnet diff CMD…`, the manager's staged
// edits): the change ops run in order against a copy of the model, then the report says which nft
// operations each qube would load and which probes change verdict (what opens, what closes).
import * as v from 'valibot';
import { diffTransaction } from '../ir/diff.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { diag } from '../model/diagnostics.js';
import type { Effect } from '../model/effect.js';
import type { Model, Qube } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { describeProbe, probeSet, verdictChanges, type Analysis } from '../sim/questions.js';
import { cloneModel } from '../store/memory-store.js';
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import { VIRTUAL_DNS } from '../model/netplan.js';
import { formatApiRule } from '../model/rule-format.js';
import { ACCEPT_ALL } from '../model/rule.js';
import { OUTSIDE, OUTSIDE_HOST } from '../sim/walk.js';
import { defineOp, result, type Host } from './types.js';

/** One probe whose verdict changes: who gains (opens) or loses (closes) what. */
export interface ReachChange {
  from: string;
  to: string;
  /** The qube `to` belongs to, or `outside`/the DNS resolvers where that is what it is. */
  toName?: string;
  proto: string;
  port?: number;
  /** The rule that decides after the change, when one does. */
  by?: string;
}

/** A qube's rule list before and after, as a line diff of the Admin API forms. */
export interface RulesDiff {
  qube: string;
  lines: { op: '+' | '-' | ' '; text: string }[];
}

export interface ChangeReport {
  nodes: { node: string; operations: number; nft: string }[];
  opens: string[];
  closes: string[];
  rules: RulesDiff[];
  gains: ReachChange[];
  losses: ReachChange[];
}

/** At most this many unchanged lines around a change are shown. */
const CONTEXT = 2;

/** The rules that differ, qube by qube: common head and tail kept (a few as context), the middle replaced. */
export function rulesDiff(before: Model, after: Model): RulesDiff[] {
  const out: RulesDiff[] = [];
  // No file reads as the one rule Qubes means by it.
  const text = (q: Qube | undefined) => (q ? (q.rules ?? [ACCEPT_ALL]).map(formatApiRule) : []);
  for (const name of new Set([...before.qubes.keys(), ...after.qubes.keys()])) {
    const a = text(before.qubes.get(name));
    const b = text(after.qubes.get(name));
    if (a.length === b.length && a.every((x, k) => x === b[k])) continue;
    let head = 0;
    while (head < a.length && head < b.length && a[head] === b[head]) head++;
    let tail = 0;
    while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
    const lines: RulesDiff['lines'] = [];
    for (let k = Math.max(0, head - CONTEXT); k < head; k++) lines.push({ op: ' ', text: a[k]! });
    for (let k = head; k < a.length - tail; k++) lines.push({ op: '-', text: a[k]! });
    for (let k = head; k < b.length - tail; k++) lines.push({ op: '+', text: b[k]! });
    for (let k = a.length - tail; k < Math.min(a.length, a.length - tail + CONTEXT); k++) lines.push({ op: ' ', text: a[k]! });
    out.push({ qube: name, lines });
  }
  return out;
}

export function reportChange(before: Analysis, after: Analysis, now: number): ChangeReport {
  const nodes: ChangeReport['nodes'] = [];
  for (const node of new Set([...before.rulesets.keys(), ...after.rulesets.keys()])) {
    const a = after.rulesets.get(node);
    if (!a) {
      nodes.push({ node, operations: 0, nft: '# no longer networked: nothing loaded\n' });
      continue;
    }
    const tx = diffTransaction(before.rulesets.get(node) ?? null, a);
    if (tx.size) nodes.push({ node, operations: tx.size, nft: tx.toString() });
  }
  const resolutions = new Map([...before.resolutions, ...after.resolutions]);
  const changes = verdictChanges(before, after, probeSet([before.model, after.model], resolutions, now));
  const line = (c: (typeof changes)[number]) => `${describeProbe(c.probe)}${c.by ? ` (${c.by})` : ''}`;
  const names = new Map<string, string>([[OUTSIDE_HOST[4], OUTSIDE], ...VIRTUAL_DNS.map((a) => [a, 'dns'] as [string, string])]);
  for (const m of [before.model, after.model]) for (const q of m.qubes.values()) for (const a of [qubeIp(m, q), qubeIp6(m, q)]) if (a) names.set(a, q.name);
  const reach = (c: (typeof changes)[number]): ReachChange => ({
    from: c.probe.from,
    to: c.probe.to,
    ...(names.has(c.probe.to) ? { toName: names.get(c.probe.to)! } : {}),
    proto: c.probe.proto,
    ...(c.probe.dport !== undefined ? { port: c.probe.dport } : {}),
    ...(c.by ? { by: c.by } : {}),
  });
  const opened = changes.filter((c) => c.after === 'accept');
  const closed = changes.filter((c) => c.after !== 'accept');
  return {
    nodes,
    opens: opened.map(line),
    closes: closed.map(line),
    rules: rulesDiff(before.model, after.model),
    gains: opened.map(reach),
    losses: closed.map(reach),
  };
}

/** A host whose changes edit a working copy: reads see them, nothing reaches files or kernel. */
export class PreviewHost implements Host {
  readonly stateDir: string;
  constructor(
    private readonly base: Host,
    readonly working: Model,
  ) {
    this.stateDir = base.stateDir;
  }
  now = () => this.base.now();
  read = async () => cloneModel(this.working);
  readQube = async (name: string) => cloneModel(this.working).qubes.get(name);
  change = async <T>(_effect: Effect, edit: (m: Model) => T | Promise<T>): Promise<T> => edit(this.working);
  analysis = (m: Model) => this.base.analysis(m);
  resolve = (m: Model, names: readonly string[]) => this.base.resolve(m, names);
  runtime = () => this.base.runtime(); // never chooses one: a preview records nothing
  counters = (): never => {
    throw new QnetError(diag('QNET6103', 'a preview cannot read counters'));
  };
  applyStatus = () => this.base.applyStatus();
}

const step = v.strictObject({ name: v.pipe(v.string(), v.minLength(1), v.maxLength(64)), input: v.unknown() });
/** A list of change operations, as `preview` and `apply` take it. */
export const steps = v.pipe(v.array(step), v.minLength(1), v.maxLength(1000));

export const preview = defineOp({
  name: 'preview',
  kind: 'read',
  summary: 'what a list of change operations would load and which verdicts would change; nothing is changed',
  input: v.strictObject({ ops: steps }),
  run: async (i, host) => {
    const { invoke, findOp } = await import('./registry.js');
    const before = await host.read();
    const p = new PreviewHost(host, cloneModel(before));
    const warnings: Diagnostic[] = [];
    const values: unknown[] = [];
    for (const s of i.ops) {
      const op = await findOp(s.name);
      if (op?.kind !== 'change') throw new QnetError(diag('QNET6104', `'${s.name}' is not a change operation: only changes can be previewed`));
      const r = await invoke(p, s.name, s.input);
      values.push(r.value);
      warnings.push(...r.warnings);
    }
    const now = host.now();
    const report = reportChange(await host.analysis(before), await host.analysis(p.working), now);
    return result({ ...report, values }, warnings);
  },
});
