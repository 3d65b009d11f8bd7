// A daemon's diagnostics as the CLI prints them: code, message, hint. Text only (never HTML).
import type { Diagnostic } from '../api.js';
import type { ApiError } from '../api.js';

export function Problems({ items, kind = 'error' }: { items: readonly Diagnostic[]; kind?: 'error' | 'warning' }) {
  if (!items.length) return null;
  return (
    <ul class={`problems ${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {items.map((d, i) => (
        <li key={i} data-code={d.code}>
          <code>{d.code}</code> {d.message}
          {d.hint ? <div class="hint">{d.hint}</div> : null}
        </li>
      ))}
    </ul>
  );
}

export const ErrorOf = ({ error }: { error?: ApiError | undefined }) => (error ? <Problems items={error.diagnostics} /> : null);
