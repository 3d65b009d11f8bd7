// Pieces the connections and forwards pages share: the qube names offered while typing (any text may
// still be sent: the daemon says what is wrong with it), what each hop's kernel counted, and a
// connection or forward's state as the daemon reports it.
import type { ComponentChildren, JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { HopCount } from '../../../ops/connections.js';
import type { QubeView } from '../../../ops/views.js';
import { canEdit, useOp, useSession } from '../state.js';
import { ErrorOf } from './problems.js';
import { ActionResult, useOpAction, type OpAction } from './op-action.js';

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

/** An input's onInput (or a select's onChange) that sets a string state. */
export const inputValue = (set: (s: string) => void) => (e: Event) => set((e.currentTarget as HTMLInputElement).value);

/** The end of an add form: its comment, its button and the daemon's answer (described by `id`). */
export function AddFormEnd(p: { comment: string; setComment: (s: string) => void; act: OpAction; submit: string; id: string }) {
  return (
    <>
      <label>
        Comment
        <input name="comment" value={p.comment} onInput={inputValue(p.setComment)} maxLength={200} />
      </label>
      <button type="submit" class="primary" disabled={p.act.busy}>
        {p.submit}
      </button>
      <ActionResult action={p.act} id={p.id} />
    </>
  );
}

/** Text as typed for a number field: a number when it is digits, else the text itself (the daemon's schema says why not). */
export const numberOrText = (s: string): number | string => (/^\s*[0-9]+\s*$/.test(s) ? Number(s) : s);

/** A list typed with spaces or commas. */
export const listOf = (s: string): string[] => s.split(/[\s,]+/).filter(Boolean);

/** The cells every connection and forward row ends with: its counts per hop (when asked), its trace, and delete (editors). */
export function LinkTail(p: { hops?: readonly HopCount[] | undefined; verbose: boolean; trace: string; editor: boolean; del: { op: string; id: string; what: string } }) {
  const act = useOpAction();
  return (
    <>
      {p.verbose ? (
        <td>
          <Hops hops={p.hops} />
        </td>
      ) : null}
      <td>
        <a href={p.trace}>trace</a>
      </td>
      {p.editor ? (
        <td>
          <button type="button" class="danger" disabled={act.busy} onClick={() => void act.run(p.del.op, { id: p.del.id })} aria-label={`delete ${p.del.what} ${p.del.id}`}>
            Delete
          </button>
          <ActionResult action={act} />
        </td>
      ) : null}
    </>
  );
}

/**
 * The connections or forwards page: what it is, the add form (editors), the per-hop toggle, and the
 * list from `op` with its own leading columns, then per hop / trace / delete (LinkTail in each row).
 */
export function LinkListPage<T extends { id: string }>(p: {
  title: string;
  legend: string;
  op: string;
  add: () => JSX.Element;
  empty: string;
  label: string;
  columns: readonly string[];
  row: (item: T, verbose: boolean, editor: boolean) => ComponentChildren;
}) {
  const editor = canEdit(useSession());
  const [verbose, setVerbose] = useState(false);
  const list = useOp<T[]>(p.op, { verbose });
  const rows = list.value ?? [];
  const Add = p.add;
  return (
    <section class="links-page">
      <h1>{p.title}</h1>
      <p class="legend">{p.legend}</p>
      {editor ? <Add /> : null}
      <label class="check">
        <input type="checkbox" checked={verbose} onChange={(e) => setVerbose(e.currentTarget.checked)} /> Packets and bytes per hop
      </label>
      <ErrorOf error={list.error} />
      {list.value && !rows.length ? <p class="empty">{p.empty}</p> : null}
      {rows.length ? (
        <div class="table-scroll">
          <table class="grid" aria-label={p.label}>
            <thead>
              <tr>
                {p.columns.map((c) => (
                  <th key={c} scope="col">
                    {c}
                  </th>
                ))}
                {verbose ? <th scope="col">Per hop</th> : null}
                <th scope="col">Trace</th>
                {editor ? <th scope="col">Delete</th> : null}
              </tr>
            </thead>
            <tbody>{rows.map((r) => p.row(r, verbose, editor))}</tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
