// Pieces the connections and forwards pages share: the qube names offered while typing (any text may
// still be sent: the daemon says what is wrong with it), what each hop's kernel counted, and a
// connection or forward's state as the daemon reports it.
import type { HopCount } from '../../../ops/connections.js';
import type { QubeView } from '../../../ops/views.js';
import { useOp } from '../state.js';

export function QubeNames({ id }: { id: string }) {
  const q = useOp<QubeView[]>('qubes.list', {});
  return (
    <datalist id={id}>
      {(q.value ?? []).map((v) => (
        <option key={v.name} value={v.name} />
      ))}
    </datalist>
  );
}

/** Per hop: packets and bytes its rules counted, or "not running". */
export function Hops({ hops }: { hops?: readonly HopCount[] | undefined }) {
  if (!hops) return null;
  if (!hops.length) return <span class="empty">no hops</span>;
  return (
    <ul class="hops">
      {hops.map((h) => (
        <li key={h.node} data-hop={h.node}>
          <span class="hop-node">{h.node}</span>{' '}
          {h.packets === null ? <span class="empty">not running</span> : <span class="mono" data-packets={h.packets}>{`${h.packets} pkts, ${h.bytes ?? 0} B`}</span>}
        </li>
      ))}
    </ul>
  );
}

export function LinkState({ active, why }: { active: boolean; why?: string | undefined }) {
  return active ? <span class="ok">active</span> : <span class="inactive-state" title={why}>inactive{why ? `: ${why}` : ''}</span>;
}

/** Text as typed for a number field: a number when it is digits, else the text itself (the daemon's schema says why not). */
export const numberOrText = (s: string): number | string => (/^\s*[0-9]+\s*$/.test(s) ? Number(s) : s);

/** A list typed with spaces or commas. */
export const listOf = (s: string): string[] => s.split(/[\s,]+/).filter(Boolean);
