// A Store whose every change reaches the kernel: the change is made to the model under the writer
// lock, the engine converges the kernel to it, and only then is the model written. If converging
// throws (an infrastructure failure, not a rule failure, which fails closed instead), nothing is
// written and the next change converges again from what the kernel really has.
import type { Model, Qube } from '../model/qube.js';
import { cloneModel } from '../store/memory-store.js';
import { formatQubesFile } from '../store/qubes-file.js';
import { loadQubeFrom, type Store } from '../store/store.js';
import type { Engine } from './engine.js';

export class EngineStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly engine: () => Promise<Engine>,
    /** The daemon remembers what it loaded; the offline CLI assumes the kernel holds the model it reads. */
    private readonly assumeKernelHoldsModel: boolean,
    /** Whether there is a kernel to converge at all (offline with the simulator there is not). */
    private readonly enabled: () => Promise<boolean> = async () => true,
  ) {}

  load(): Promise<Model> {
    return this.inner.load();
  }

  loadQube(name: string): Promise<Qube | undefined> {
    return loadQubeFrom(this.inner, name);
  }

  update<T>(change: (model: Model) => T | Promise<T>): Promise<T> {
    return this.inner.update(async (model) => {
      const running = (m: Model) => [...m.qubes.values()].some((q) => q.state === 'Running');
      const wasRunning = running(model);
      // A netvm killed behind our back is noticed before the change, so the change sees the truth.
      const died = wasRunning && (await this.enabled()) ? await (await this.engine()).noticeDeaths(model) : [];
      // The model the kernel holds, for the offline path's delta; only needed when something runs.
      const before = this.assumeKernelHoldsModel && wasRunning ? cloneModel(model) : undefined;
      // The fast path needs an engine that knows what it loaded (the daemon's); offline it never applies.
      const fast = !this.assumeKernelHoldsModel;
      const props = fast ? formatQubesFile(model) : '';
      const rulesBefore = new Map(fast ? [...model.qubes].map(([n, q]) => [n, q.rules]) : []);
      const result = await change(model);
      if (!(wasRunning || running(model)) || !(await this.enabled())) return result;
      const engine = await this.engine();
      // Only some qubes' rules changed (the arrays were replaced; everything qubes.json holds, which
      // is all but the rules, is the same): the engine's fast path.
      if (fast && !died.length && formatQubesFile(model) === props) {
        const edited = [...model.qubes.values()].filter((q) => rulesBefore.get(q.name) !== q.rules).map((q) => q.name);
        if (edited.length && (await engine.applyRuleEdits(model, edited, rulesBefore))) return result;
      }
      await engine.converge(model, before ? { assume: before } : {});
      return result;
    });
  }
}
