// Staged edits: change operations collected across pages and applied together from the Changes page
// (op `apply`: all or nothing, with a confirm timer). Kept in this tab's sessionStorage, so a reload
// keeps them and another tab has its own. Nothing here checks a step: `preview` and `apply` do.
//
//   stage({ name: 'firewall.add', input: { qube: 'work', rule: 'action=accept …' } }, 'allow work → 192.0.2.5:443')
//   const { steps, remove, clear } = useStaged();
import { useEffect, useState } from 'preact/hooks';

/** One change operation call, as `preview` and `apply` take it. */
export interface Step {
  name: string;
  input: object;
}

export interface Staged extends Step {
  /** What the page that staged it calls it (default: the op's name). */
  label: string;
}

const KEY = 'qnet-staged';
/** apply takes at most 1000 steps. */
const MAX = 1000;
const listeners = new Set<(s: Staged[]) => void>();

function load(): Staged[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((s): s is Staged => typeof s?.name === 'string' && typeof s?.label === 'string' && typeof s?.input === 'object' && s.input !== null) : [];
  } catch {
    return [];
  }
}

function save(list: Staged[]): void {
  sessionStorage.setItem(KEY, JSON.stringify(list));
  for (const l of listeners) l(list);
}

/** Add a change operation to the staged edits (shown, previewed and applied on the Changes page). */
export function stage(step: Step, label?: string): void {
  const list = load();
  if (list.length >= MAX) throw new Error(`at most ${MAX} staged edits`);
  save([...list, { name: step.name, input: step.input, label: label ?? step.name }]);
}

/** The staged edits, kept current, with ways to drop one or all. */
export function useStaged(): { steps: Staged[]; remove(index: number): void; clear(): void } {
  const [steps, setSteps] = useState(load);
  useEffect(() => {
    listeners.add(setSteps);
    return () => void listeners.delete(setSteps);
  }, []);
  return {
    steps,
    remove: (index) => save(load().filter((_, k) => k !== index)),
    clear: () => save([]),
  };
}
