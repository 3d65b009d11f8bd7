// STAND-IN (web-droplog): the Changes page's helper owns this module; keep that version when both
// land. Same API: stage(step, label?) appends {step: {name, input}, label} to the JSON array in
// sessionStorage 'qnet-staged', which the Changes page previews (op `preview`) and applies.
export interface StagedStep {
  name: string;
  input: object;
}

const KEY = 'qnet-staged';

export function stage(step: StagedStep, label?: string): void {
  let list: unknown[] = [];
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) ?? '[]') as unknown;
    if (Array.isArray(v)) list = v;
  } catch {
    /* a broken list is replaced */
  }
  list.push({ step, ...(label !== undefined ? { label } : {}) });
  sessionStorage.setItem(KEY, JSON.stringify(list));
}
