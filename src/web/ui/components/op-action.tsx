// A change op run from a control: busy while it runs, and the daemon's refusal or warnings kept to
// be shown next to the control that asked (the page decides nothing; it says what the daemon said).
import { useState } from 'preact/hooks';
import { ApiError, call, type Diagnostic, type Reply } from '../api.js';
import { Problems } from './problems.js';

export interface OpAction {
  busy: boolean;
  /** The last refusal's diagnostics (empty after a success). */
  errors: Diagnostic[];
  /** The last success's warnings. */
  warnings: Diagnostic[];
  /** Run `op`; resolves to its reply, or undefined when refused (then `errors` says why). */
  run<T>(op: string, input: object): Promise<Reply<T> | undefined>;
  clear(): void;
}

export function useOpAction(): OpAction {
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Diagnostic[]>([]);
  const [warnings, setWarnings] = useState<Diagnostic[]>([]);
  return {
    busy,
    errors,
    warnings,
    async run<T>(op: string, input: object) {
      setBusy(true);
      try {
        const r = await call<T>(op, input);
        setErrors([]);
        setWarnings(r.warnings);
        return r;
      } catch (e) {
        setWarnings([]);
        setErrors(e instanceof ApiError ? e.diagnostics : [{ code: 'UI', message: String(e) }]);
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    clear() {
      setErrors([]);
      setWarnings([]);
    },
  };
}

/** What the last action got back: its refusal, else its warnings. */
export const ActionResult = ({ action, id }: { action: OpAction; id?: string }) => (
  <div id={id} class="action-result">
    <Problems items={action.errors} />
    <Problems items={action.warnings} kind="warning" />
  </div>
);
