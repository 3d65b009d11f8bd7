// What the kernel holds, as far as this engine knows: one object, so a delta is always computed
// against the same truth. Per node, the ruleset loaded; for nodes an overlay left untidy (live rules
// with dead ones below, sets under `-gN` names beside unused ones), what they behave as (`live`)
// and the same under compile()'s names (`canonical`, which tidy() loads); and the untidy file,
// which names those nodes on disk so that whoever converges after a daemon died loads them whole.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Ruleset } from '../ir/types.js';

export class KernelMirror {
  /** What is loaded in each node; deltas are computed against it. */
  readonly applied = new Map<string, Ruleset>();
  /** Nodes an overlay left untidy (see above). */
  readonly untidy = new Map<string, { live: Ruleset; canonical: Ruleset }>();
  /** Overlays loaded since the last tidy(): each leaves a client's old rules and sets behind. */
  overlays = 0;

  /**
   * `untidyFile`: one node per line, written before an overlay loads, removed once tidy. Namespaces
   * do not outlive a reboot, so a plain write is enough.
   */
  constructor(private readonly untidyFile?: string) {}

  get needsTidy(): boolean {
    return this.untidy.size > 0;
  }

  /** The node was loaded: it holds `holds`; `after` is what it behaves as, `canonical` the same under compile()'s names. */
  async loaded(node: string, holds: Ruleset, after: Ruleset, canonical: Ruleset): Promise<void> {
    this.applied.set(node, holds);
    if (holds !== canonical) this.untidy.set(node, { live: after, canonical });
    else if (this.untidy.delete(node)) await this.writeUntidyFile();
  }

  /** Nodes a previous engine left untidy (a daemon that died before tidying). */
  async readUntidyFile(): Promise<Set<string>> {
    if (!this.untidyFile) return new Set();
    const text = await readFile(this.untidyFile, 'utf8').catch(() => '');
    return new Set(text.split('\n').filter(Boolean));
  }

  /** Keep the untidy file in step with `untidy` (plus `also`: about to be untidy, or still). */
  async writeUntidyFile(also: Iterable<string> = []): Promise<void> {
    const f = this.untidyFile;
    if (!f) return;
    const nodes = new Set([...this.untidy.keys(), ...also]);
    if (!nodes.size) return rm(f, { force: true });
    await mkdir(dirname(f), { recursive: true });
    await writeFile(f, [...nodes].sort().join('\n') + '\n');
  }
}
