// --dry-run (and `qnet diff CMD…`): run a changing command against a copy of the model and show what
// it would do instead of doing it — the nft operations each qube would load, and which probes would
// change verdict (what the change opens and closes).
import { diffTransaction } from '../ir/diff.js';
import type { Model, Qube } from '../model/qube.js';
import { cloneModel } from '../store/memory-store.js';
import { describeProbe, probeSet, verdictChanges, type Analysis } from '../sim/questions.js';
import { loadQubeFrom, type Store } from '../store/store.js';
import type { Io } from './io.js';
import { analysisOf } from './runtime.js';
import { json } from './table.js';

export interface ChangeReport {
  nodes: { node: string; operations: number; nft: string }[];
  opens: string[];
  closes: string[];
}

export async function reportChange(before: Analysis, after: Analysis, now: number): Promise<ChangeReport> {
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

export function printReport(io: Io, r: ChangeReport, asJson: boolean, verbose: boolean): void {
  if (asJson) return void io.out(json(r));
  if (!r.nodes.length && !r.opens.length && !r.closes.length) return void io.out('dry run: no change to any ruleset or verdict\n');
  io.out('dry run: nothing was changed\n');
  for (const n of r.nodes) {
    io.out(`${n.node}: ${n.operations} nft operation${n.operations === 1 ? '' : 's'}\n`);
    if (verbose) io.out(n.nft.replace(/^/gm, '    ') + '\n');
  }
  if (r.opens.length) io.out(`would open:\n${r.opens.map((l) => `  + ${l}\n`).join('')}`);
  if (r.closes.length) io.out(`would close:\n${r.closes.map((l) => `  - ${l}\n`).join('')}`);
}

/** A Store whose update runs the change on a copy and reports instead of writing. */
export class DryRunStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly io: Io,
    private readonly stateDir: string,
    private readonly opts: { json: boolean; verbose: boolean },
  ) {}

  load(): Promise<Model> {
    return this.inner.load();
  }

  loadQube(name: string): Promise<Qube | undefined> {
    return loadQubeFrom(this.inner, name);
  }

  async update<T>(change: (model: Model) => T | Promise<T>): Promise<T> {
    const model = await this.inner.load();
    const before = cloneModel(model);
    const result = await change(model);
    const now = this.io.now();
    const r = await reportChange(await analysisOf(before, this.stateDir, now), await analysisOf(model, this.stateDir, now), now);
    printReport(this.io, r, this.opts.json, this.opts.verbose);
    return result;
  }
}
