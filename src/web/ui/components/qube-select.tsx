// The qube chooser of the pages that show one qube's data (Counters, Drop log): a select in a form
// of its own, whose choice is a navigation (the page reads the qube from its route, so a link or a
// reload shows the same).
import type { QubeView } from '../../../ops/views.js';

export function QubeSelect(p: {
  qubes: readonly QubeView[];
  value: string | undefined;
  /** The first option, for no qube chosen: a prompt (disabled) or a choice of its own ("all"). */
  none: { label: string; disabled?: boolean };
  onChoose: (name: string) => void;
}) {
  return (
    <form class="inline" onSubmit={(e) => e.preventDefault()}>
      <label>
        Qube
        <select value={p.value ?? ''} onChange={(e) => p.onChoose((e.target as HTMLSelectElement).value)}>
          <option value="" disabled={p.none.disabled ?? false}>
            {p.none.label}
          </option>
          {p.qubes.map((q) => (
            <option key={q.name} value={q.name}>
              {q.name}
            </option>
          ))}
        </select>
      </label>
    </form>
  );
}
