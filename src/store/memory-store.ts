// The store without files, for tests and the simulator. Same contract as FileStore: callers get deep
// copies (no aliasing of the stored model), a change that throws or yields an invalid model leaves
// the store as it was, updates run one at a time, and expired rules are dropped from a qube's list
// only when that list is changed (FileStore drops them when it writes the file, as Qubes' save()).
import { diag } from '../model/diagnostics.js';
import type { Model, Qube } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { isExpired } from '../model/rule.js';
import type { Store } from './store.js';
import { checkModel } from './qubes-file.js';
import { rulesUnknown } from './rules-problem.js';

export const MODEL_INVALID = 'QNET3022';

export interface StoreOptions {
  /** Milliseconds since the epoch, like Date.now (the default). Decides which rules have expired. */
  now?: () => number;
}

export class MemoryStore implements Store {
  private model: Model;
  private readonly now: () => number;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(initial?: Model, opts: StoreOptions = {}) {
    this.model = initial ? sortByQid(cloneModel(initial)) : emptyModel();
    this.now = opts.now ?? Date.now;
  }

  async load(): Promise<Model> {
    return cloneModel(this.model);
  }

  update<T>(change: (model: Model) => T | Promise<T>): Promise<T> {
    const run = this.tail.then(async () => {
      const next = cloneModel(this.model);
      const result = await change(next);
      assertValidModel(next);
      // The same guard as FileStore: rules of a qube marked broken are unknown, so not editable.
      for (const q of next.qubes.values())
        if (q.rulesProblem && (q.rules === null || q.rules.length !== 0)) throw new QnetError(rulesUnknown(q));
      const before = new Map([...this.model.qubes.values()].map((q) => [q.qid, q.rules]));
      const nowSec = this.now() / 1000;
      for (const q of next.qubes.values())
        if (q.rules !== null && !sameData(q.rules, before.get(q.qid))) q.rules = q.rules.filter((r) => !isExpired(r, nowSec));
      // Copy again: `change` may have kept references into `next`.
      this.model = sortByQid(cloneModel(next));
      return result;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

export const emptyModel = (): Model => ({ default_netvm: null, qubes: new Map() });

/** Refuse a model qubes.json could not hold (bad names, duplicate qids, unknown labels, …). */
export function assertValidModel(model: Model, text?: string): void {
  const issues = checkModel(model, text);
  if (issues.length === 0) return;
  const lines = issues.slice(0, 10).map((d) => d.message);
  if (issues.length > 10) lines.push(`… and ${issues.length - 10} more`);
  throw new QnetError(diag(MODEL_INVALID, `the change was not saved: ${lines.join('; ')}`));
}

export function sortByQid(model: Model): Model {
  model.qubes = new Map([...model.qubes].sort(([, a], [, b]) => a.qid - b.qid));
  return model;
}

export function cloneModel(model: Model): Model {
  return {
    default_netvm: model.default_netvm,
    ...(model.uplink !== undefined ? { uplink: model.uplink } : {}),
    qubes: new Map([...model.qubes].map(([name, q]) => [name, cloneData(q) as Qube])),
    ...(model.connections?.length ? { connections: cloneData(model.connections) } : {}),
    ...(model.forwards?.length ? { forwards: cloneData(model.forwards) } : {}),
    ...(model.problems?.length ? { problems: cloneData(model.problems) } : {}),
  };
}


/** A deep copy of plain data (objects, arrays, primitives): what the model is made of. */
export function cloneData<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = cloneData(v[i]);
    return out as T;
  }
  // Spread first (V8 copies a whole object shape at once), then replace nested objects.
  const o: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  for (const k in o) {
    const x = o[k];
    if (typeof x === 'object' && x !== null) o[k] = cloneData(x);
  }
  return o as T;
}

/**
 * Deep equality of plain data, treating a key set to `undefined` as absent (as JSON and the XML
 * formatter do). Linear in the size of the data; no allocation, so 100k rules compare in ms.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const aArr = Array.isArray(a);
  if (aArr !== Array.isArray(b)) return false;
  if (aArr) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!sameData(x[i], y[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    n++;
    if (!Object.hasOwn(y, k) || !sameData(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}
