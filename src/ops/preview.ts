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
import { defineOp, result, type Host } from './types.js';

export interface ChangeReport {
  nodes: { node: string; operations: number; nft: string }[];
  opens: string[];
  closes: string[];
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
  return {
    nodes,
    opens: changes.filter((c) => c.after === 'accept').map(line),
    closes: changes.filter((c) => c.after !== 'accept').map(line),
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
