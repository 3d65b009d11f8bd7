// The store: where the model lives between commands. FileStore (file-store.ts) is the Qubes-shaped
// state directory; MemoryStore (memory-store.ts) serves tests and the simulator. Only the store
// touches the files; everything above it works on a Model.
import type { Effect } from '../model/effect.js';
import type { Model, Qube } from '../model/qube.js';

export interface Store {
  /**
   * Qubes, globals and every qube's rules. A qube whose firewall file is broken is there, blocked
   * (`rules` = [], `rulesProblem` names the file: see rules-problem.ts); a broken qubes.json entry
   * is left out and reported in `model.problems`. What cannot be isolated (qubes.json not JSON, not
   * a regular file, …) is a QnetError naming the file.
   */
  load(): Promise<Model>;
  /**
   * Read-modify-write under the writer lock: loads the model, lets `change` edit it in place
   * (add/remove/rename qubes, replace or edit the `qube.rules` lists — the Rule objects in them
   * may be frozen and shared: build new ones rather than changing them), then writes only the files whose content
   * changed, each atomically. If `change` throws, nothing is written. Returns what `change` returned.
   * `effect` says what the change touches (default: anything); stores that drive the kernel use it
   * to take the smallest path, FileStore to read only the named qubes' files for a rule edit (the
   * others' rules are read when first asked for), plain stores ignore it.
   * A qube still marked with `rulesProblem` must keep `rules` = [] (refused otherwise, QNET3024);
   * replaceRules() clears the mark and sets new rules, which are then written over the broken file.
   */
  update<T>(change: (model: Model) => T | Promise<T>, effect?: Effect): Promise<T>;
  /**
   * Optional, for commands that only read one qube: that qube (a copy) with its rules, undefined
   * when there is no such qube. A store may then skip reading other qubes' rules, so a broken file
   * of another qube is not read here; the qube's own broken file marks it as load() does.
   */
  loadQube?(name: string): Promise<Qube | undefined>;
}

/** One qube through `store.loadQube` where the store has it, else through a whole load(). */
export function loadQubeFrom(store: Store, name: string): Promise<Qube | undefined> {
  return store.loadQube ? store.loadQube(name) : store.load().then((m) => m.qubes.get(name));
}
