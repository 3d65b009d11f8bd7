// A Store whose every change reaches the kernel: the change is made to the model under the writer
// lock, the engine converges the kernel to it, and only then is the model written. If converging
// throws (an infrastructure failure, not a rule failure, which fails closed instead), nothing is
// written and the next change converges again from what the kernel really has.
//
// What the change touched is declared by its maker (an Effect), never re-derived here: a rule edit
// takes the engine's rule-edit path (the daemon's, against what it loaded; offline, against
// compile() of the model before the change), a links-only change the link-edit path (the same
// two ways), anything else or nothing declared converges.
import type { Effect } from '../model/effect.js';
import type { Model, Qube } from '../model/qube.js';
import type { RuleList } from '../model/rule.js';
import { cloneData, cloneModel } from '../store/memory-store.js';
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

  update<T>(change: (model: Model) => T | Promise<T>, effect?: Effect): Promise<T> {
    const inner = async (model: Model) => {
      const running = (m: Model) => [...m.qubes.values()].some((q) => q.state === 'Running');
      const wasRunning = running(model);
      // A netvm killed behind our back is noticed before the change, so the change sees the truth.
      const died = wasRunning && (await this.enabled()) ? await (await this.engine()).noticeDeaths(model) : [];
      // A reload offline cannot know what the kernel holds (its answers may be stale): it converges
      // from nothing, loading every running node again.
      const reload = effect?.kind === 'rules' && effect.reload === true;
      const edited = effect?.kind === 'rules' && !died.length && !(reload && this.assumeKernelHoldsModel) ? effect.qubes.filter((n) => model.qubes.has(n)) : undefined;
      // The rules before the change, copied: a change may edit a list in place.
      const rulesBefore = new Map<string, RuleList>((edited ?? []).map((n) => [n, cloneData(model.qubes.get(n)!.rules)]));
      // Offline, what the kernel holds is assumed to be compile() of the model as read: kept whole
      // for a converge, and for a rule edit rebuilt from the edited qubes' old rules (see below).
      // A links-only change: the model before it is this one with its links as they were (the
      // lists copied: a links change replaces links, it does not edit one in place); the engine
      // patches the changed ones in.
      const linksBefore = effect?.kind === 'links' && !died.length ? { ...model, connections: [...(model.connections ?? [])], forwards: [...(model.forwards ?? [])] } : undefined;
      const before = this.assumeKernelHoldsModel && wasRunning && !edited && !reload ? (linksBefore ?? cloneModel(model)) : undefined;
      const result = await change(model);
      if (!(wasRunning || running(model)) || !(await this.enabled())) return result;
      const engine = await this.engine();
      // The daemon: these qubes' names are asked again now, then their chains patched as for an edit.
      if (reload && edited?.length) await engine.resolve(model, engine.deps.now(), new Set(edited), true);
      if (edited) {
        if (!edited.length) return result;
        const ok = this.assumeKernelHoldsModel
          ? await engine.applyRuleEditsAssumed(model, withRules(model, rulesBefore), edited)
          : await engine.applyRuleEdits(model, edited, reload ? undefined : rulesBefore); // a reload may close: flows are checked
        if (ok) return result;
      }
      if (linksBefore) {
        const ok = this.assumeKernelHoldsModel ? await engine.applyLinkEditsAssumed(model, linksBefore) : await engine.applyLinkEdits(model, linksBefore);
        if (ok) return result;
      }
      const assume = before ?? (edited && this.assumeKernelHoldsModel ? withRules(model, rulesBefore) : undefined);
      await engine.converge(model, assume ? { assume } : {});
      return result;
    };
    return effect ? this.inner.update(inner, effect) : this.inner.update(inner);
  }
}

/** The model with these qubes' rule lists as given (a rule edit changes nothing else). */
function withRules(model: Model, rules: ReadonlyMap<string, RuleList>): Model {
  const qubes = new Map(model.qubes);
  for (const [n, r] of rules) {
    const q = qubes.get(n);
    if (q) qubes.set(n, { ...q, rules: r });
  }
  return { ...model, qubes };
}
