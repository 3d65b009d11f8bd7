// The firewall editor (#/firewall/<qube>): a qube's rules as firewall.view gives them — each with the
// earlier rule that covers it, names with what they resolved to and when they refresh, expiry
// counting down — between the rows qnet adds around them (read-only). Edits go through one op each
// (add, replace, del, move) with the rule as it was read as `expect`, so an edit never lands on
// another rule when the list changed meanwhile (QNET1905). The list is virtual (100k rules render
// like 40) and searched by field here, over the view's value. Without a qube: a list to choose from.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { href } from '../route.js';
import { ApiError, call, type Diagnostic, type QnetEvent } from '../api.js';
import { canEdit, useEvents, useOp, useSession } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import { VirtualList } from '../components/virtual-list.js';
import { draftOf, EMPTY_DRAFT, RuleForm } from '../components/rule-form.js';
import { Countdown, useNow } from '../components/countdown.js';
import type { FirewallRow, FirewallView, NameView, QubeView } from '../../../ops/views.js';

/** Rules in the first answer: a first screen at once, before the whole list arrives. */
const FIRST = 80;

export function FirewallPage({ route }: { route: Route }) {
  const qube = route.args[0];
  return qube ? <Editor key={qube} qube={qube} /> : <Picker />;
}

function Picker() {
  const q = useOp<QubeView[]>('qubes.list', {});
  return (
    <section>
      <h1>Firewall</h1>
      <p>Choose a qube to see and edit its outbound rules.</p>
      <ErrorOf error={q.error} />
      <ul class="fw-picker" aria-label="qubes">
        {(q.value ?? []).map((v) => (
          <li key={v.name} data-qube={v.name}>
            <span class={`label label-${v.label}`} aria-hidden="true" /> <a href={href('firewall', v.name)}>{v.name}</a>{' '}
            <span class="muted">{v.netvm ? `enforced by ${v.netvm}` : 'no netvm: no rules apply'}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

const asApiError = (e: unknown) => (e instanceof ApiError ? e : new ApiError(0, [{ code: 'UI', message: String(e) }]));

/** A change event that may have changed this qube's rules (or a reconnect, after which anything may have). */
function touches(e: QnetEvent, qube: string): boolean {
  if (e.type === 'hello') return true;
  if (e.type !== 'changed') return false;
  return e.effect.kind === 'all' || ('qubes' in e.effect && e.effect.qubes.includes(qube));
}

/** The view: its first rules at once, then all; read again (coalesced) after each change that touches the qube. */
function useView(qube: string) {
  const [state, setState] = useState<{ view?: FirewallView; complete: boolean; error?: ApiError; skew: number }>({ complete: false, skew: 0 });
  const busy = useRef(false);
  const again = useRef(false);
  const full = useRef(false);
  const load = useCallback(async () => {
    if (busy.current) {
      again.current = true;
      return;
    }
    busy.current = true;
    try {
      do {
        again.current = false;
        const r = await call<FirewallView>('firewall.view', { qube });
        full.current = true;
        setState({ view: r.value, complete: true, skew: r.value.now - Date.now() / 1000 });
      } while (again.current);
    } catch (e) {
      setState((s) => ({ ...s, error: asApiError(e) }));
    } finally {
      busy.current = false;
    }
  }, [qube]);
  useEffect(() => {
    // One after the other: the daemon answers one request at a time, so the first screen is not
    // made to wait behind the whole list.
    call<FirewallView>('firewall.view', { qube, limit: FIRST }).then(
      (r) => {
        if (!full.current) setState({ view: r.value, complete: r.value.rules.length === r.value.count, skew: r.value.now - Date.now() / 1000 });
      },
      () => {}, // the full read says why
    ).finally(() => void load());
  }, [qube, load]);
  useEvents((e) => {
    if (touches(e, qube)) void load();
  });
  return { ...state, reload: load };
}

type SearchField = 'any' | 'action' | 'dst' | 'proto' | 'port' | 'icmptype' | 'special' | 'comment' | 'expire' | 'shadowed';
const SEARCH_FIELDS: [SearchField, string][] = [
  ['any', 'any field'],
  ['action', 'action'],
  ['dst', 'destination'],
  ['proto', 'protocol'],
  ['port', 'port'],
  ['icmptype', 'ICMP type'],
  ['special', 'specialtarget'],
  ['comment', 'comment'],
  ['expire', 'expiring'],
  ['shadowed', 'never matches'],
];

/** Rows whose `field` matches `text` (a display filter over the view; no policy). */
function filterRows(rows: readonly FirewallRow[], field: SearchField, text: string): readonly FirewallRow[] {
  const t = text.trim().toLowerCase();
  if (field === 'shadowed') return rows.filter((r) => r.shadowedBy !== undefined);
  if (field === 'expire') return rows.filter((r) => r.expire !== undefined);
  if (!t) return rows;
  switch (field) {
    case 'any':
      return rows.filter((r) => r.api.toLowerCase().includes(t));
    case 'action':
      return rows.filter((r) => r.action.startsWith(t));
    case 'dst':
      return rows.filter((r) => r.dsthost !== undefined && r.dsthost.toLowerCase().includes(t));
    case 'proto':
      return rows.filter((r) => (r.proto ?? 'any') === t);
    case 'port': {
      const n = Number(t);
      if (!Number.isInteger(n)) return [];
      return rows.filter((r) => r.dstports !== undefined && r.dstports.start <= n && n <= r.dstports.end);
    }
    case 'icmptype':
      return rows.filter((r) => r.icmptype !== undefined && String(r.icmptype) === t);
    case 'special':
      return rows.filter((r) => r.specialtarget !== undefined && r.specialtarget.includes(t));
    case 'comment':
      return rows.filter((r) => r.comment !== undefined && r.comment.toLowerCase().includes(t));
  }
}

function useMedia(query: string): boolean {
  const [on, setOn] = useState(() => matchMedia(query).matches);
  useEffect(() => {
    const m = matchMedia(query);
    const fn = () => setOn(m.matches);
    m.addEventListener('change', fn);
    return () => m.removeEventListener('change', fn);
  }, [query]);
  return on;
}

type Form = { kind: 'add'; version: string; key: number } | { kind: 'edit'; row: FirewallRow; version: string; key: number };
interface Status {
  ok?: string;
  /** From the click to the daemon's answer, which comes once the kernel holds the change. */
  ms?: number;
  problems: Diagnostic[];
  warnings: Diagnostic[];
}

const ports = (r: FirewallRow) => (r.dstports ? (r.dstports.start === r.dstports.end ? `${r.dstports.start}` : `${r.dstports.start}-${r.dstports.end}`) : '');

function Editor({ qube }: { qube: string }) {
  const session = useSession();
  const editable = canEdit(session);
  const { view, complete, error, skew, reload } = useView(qube);
  const narrow = useMedia('(max-width: 700px)');
  const rowHeight = narrow ? 64 : 34;
  const [field, setField] = useState<SearchField>('any');
  const [text, setText] = useState('');
  const [active, setActive] = useState(0);
  const [reveal, setReveal] = useState<{ index: number }>();
  const [form, setForm] = useState<Form | null>(null);
  const [before, setBefore] = useState('');
  const [status, setStatus] = useState<Status>({ problems: [], warnings: [] });
  const [drag, setDrag] = useState<{ from: number; over?: number }>();
  /** After a move: the rule number to keep the focus on once the list is read again. */
  const follow = useRef<number | undefined>(undefined);
  /** The row index to focus once it is rendered (after a reveal scrolls it into view). */
  const focusTo = useRef<number | undefined>(undefined);
  const listBox = useRef<HTMLDivElement>(null);

  const rows = view?.rules ?? [];
  const filtered = useMemo(() => {
    const t0 = performance.now();
    const out = filterRows(rows, field, text);
    return { rows: out, ms: performance.now() - t0 };
  }, [rows, field, text]);
  const shown = filtered.rows;
  const names = useMemo(() => new Map((view?.names ?? []).map((n) => [n.name, n])), [view]);
  const clock = useNow(rows.some((r) => r.expire !== undefined) || (view?.names ?? []).some((n) => n.refreshAt !== undefined));

  // Keep the focus where the user is: on the moved rule after a move, in range after a filter.
  useEffect(() => {
    if (follow.current !== undefined) {
      const i = shown.findIndex((r) => r.no === follow.current);
      follow.current = undefined;
      if (i >= 0) {
        setActive(i);
        setReveal({ index: i });
        focusTo.current = i;
      }
    } else if (active >= shown.length && shown.length) setActive(shown.length - 1);
  }, [shown]);
  // A form opened on a first-screen view (no version yet) takes the first whole view's version.
  useEffect(() => {
    if (form && form.version === '' && view?.version) setForm({ ...form, version: view.version });
  }, [view, form]);
  useEffect(() => {
    if (focusTo.current === undefined) return;
    const el = listBox.current?.querySelector<HTMLElement>(`[data-idx="${focusTo.current}"]`);
    if (!el) return; // not rendered yet: the next render
    focusTo.current = undefined;
    el.focus();
  });

  if (error && !view)
    return (
      <section>
        <h1>Firewall of {qube}</h1>
        <ErrorOf error={error} />
        <p>
          <a href={href('firewall')}>Choose another qube</a>
        </p>
      </section>
    );
  if (!view) return <p class="empty">Loading the rules of {qube}…</p>;

  const change = async (op: string, input: object, what: string, inForm = false): Promise<Diagnostic[] | null> => {
    const t0 = performance.now();
    try {
      const r = await call(op, { qube, ...input });
      const ms = performance.now() - t0;
      setStatus({ ok: `${what} (${ms.toFixed(0)} ms)`, ms, problems: [], warnings: r.warnings });
      void reload();
      return null;
    } catch (e) {
      const err = asApiError(e);
      setStatus({ problems: inForm ? [] : err.diagnostics, warnings: [] });
      return err.diagnostics;
    }
  };
  const move = (from: number, to: number) => {
    const r = rows[from];
    if (!r || to < 0 || to >= view.count || from === to) return;
    follow.current = to;
    void change('firewall.move', { from, to, expect: r.api }, `moved rule ${from} to ${to}`);
  };
  const focusRow = (i: number) => {
    const n = Math.max(0, Math.min(shown.length - 1, i));
    setActive(n);
    setReveal({ index: n });
    focusTo.current = n;
  };
  const onRowKey = (e: KeyboardEvent, i: number, r: FirewallRow) => {
    if (e.target !== e.currentTarget) return; // keys in the row's buttons are theirs
    const page = Math.max(1, Math.floor(480 / rowHeight));
    if (e.altKey && editable && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      e.preventDefault();
      move(r.no, r.no + (e.key === 'ArrowUp' ? -1 : 1));
    } else if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      e.preventDefault();
      focusRow(i + (e.key === 'ArrowUp' ? -1 : 1));
    } else if (e.key === 'PageUp' || e.key === 'PageDown') {
      e.preventDefault();
      focusRow(i + (e.key === 'PageUp' ? -page : page));
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      focusRow(e.key === 'Home' ? 0 : shown.length - 1);
    } else if (e.key === 'Enter' && editable) {
      e.preventDefault();
      setForm({ kind: 'edit', row: r, version: view.version, key: Date.now() });
    }
  };
  const goto = (no: number) => {
    const i = shown.findIndex((r) => r.no === no);
    if (i >= 0) focusRow(i);
    else {
      // Not in the filtered rows: clear the filter, then go there.
      setText('');
      setField('any');
      follow.current = no;
    }
  };

  const nameInfo = (n: NameView | undefined) => {
    if (!n) return null;
    if (n.error) return <span class="bad name-info"> unresolved ({n.error}): rule disabled</span>;
    const addrs = [...n.a, ...n.aaaa];
    return (
      <span class="name-info muted" title={addrs.join(', ')}>
        {' '}
        → <span class="mono">{addrs.slice(0, 3).join(', ')}{addrs.length > 3 ? ` +${addrs.length - 3}` : ''}</span>
        {n.refreshAt !== undefined ? (
          <>
            {' '}
            · refresh in <Countdown at={n.refreshAt} now={clock} skew={skew} done="now" />
          </>
        ) : n.ttl !== undefined ? (
          ` · ttl ${n.ttl}s`
        ) : null}
      </span>
    );
  };

  const ruleRow = (i: number) => {
    const r = shown[i]!;
    const dropping = drag !== undefined && drag.over === r.no && drag.from !== r.no;
    const dst = r.dsthost ?? (r.specialtarget === 'dns' ? '' : 'any');
    return (
      <div
        role="row"
        class={`fw-row${r.shadowedBy !== undefined ? ' shadowed' : ''}${dropping ? ` drop-${drag!.from > r.no ? 'above' : 'below'}` : ''}${drag?.from === r.no ? ' dragging' : ''}`}
        data-no={r.no}
        data-idx={i}
        aria-rowindex={i + 2 + (view?.implicit.filter((x) => x.place === 'before').length ?? 0)}
        tabIndex={i === active ? 0 : -1}
        draggable={editable}
        onFocus={() => setActive(i)}
        onKeyDown={(e) => onRowKey(e, i, r)}
        onDragStart={(e) => {
          e.dataTransfer?.setData('text/plain', String(r.no));
          if (e.dataTransfer) e.dataTransfer.effectAllowed = 'move';
          setDrag({ from: r.no });
        }}
        onDragOver={(e) => {
          if (!drag) return;
          e.preventDefault();
          if (drag.over !== r.no) setDrag({ ...drag, over: r.no });
        }}
        onDrop={(e) => {
          e.preventDefault();
          const from = drag?.from;
          setDrag(undefined);
          if (from !== undefined) move(from, r.no);
        }}
        onDragEnd={() => setDrag(undefined)}
        title={editable ? 'drag to move, or Alt+↑/↓' : undefined}
      >
        <span role="cell" class="c-handle" aria-hidden="true">
          {editable ? '⠿' : ''}
        </span>
        <span role="cell" class="c-no">{r.no}</span>
        <span role="cell" class="c-action">
          <span class={`act act-${r.action}`}>{r.action}</span>
        </span>
        <span role="cell" class="c-dst" title={r.api}>
          <span class="mono">{dst}</span>
          {r.specialtarget === 'dns' ? <span class="tag">dns servers</span> : null}
          {r.dsttype === 'dsthost' ? nameInfo(names.get(r.dsthost!)) : null}
        </span>
        <span role="cell" class="c-proto">{r.proto ?? (r.specialtarget === 'dns' ? 'tcp+udp' : 'any')}</span>
        <span role="cell" class="c-ports mono">
          {ports(r)}
          {r.icmptype !== undefined ? `type ${r.icmptype}` : ''}
        </span>
        <span role="cell" class="c-expire">
          {r.expire !== undefined ? (
            <span class="expire">
              <Countdown at={r.expire} now={clock} skew={skew} done="expired" />
            </span>
          ) : null}
        </span>
        <span role="cell" class="c-comment" title={r.comment}>
          {r.comment ?? ''}
        </span>
        <span role="cell" class="c-warn">
          {r.shadowedBy !== undefined ? (
            <span class="shadow" data-code="QNET1906" title={`rule ${r.no} never matches: rule ${r.shadowedBy} covers it`}>
              <code>QNET1906</code> rule {r.no} never matches:{' '}
              <button type="button" class="link" onClick={() => goto(r.shadowedBy!)}>
                rule {r.shadowedBy}
              </button>{' '}
              covers it
            </span>
          ) : null}
        </span>
        <span role="cell" class="c-ops">
          {editable ? (
            <>
              <button type="button" aria-label={`edit rule ${r.no}`} onClick={() => setForm({ kind: 'edit', row: r, version: view.version, key: Date.now() })}>
                Edit
              </button>
              <button type="button" class="danger" aria-label={`delete rule ${r.no}`} onClick={() => void change('firewall.del', { ruleNo: r.no, expect: r.api }, `deleted rule ${r.no}`)}>
                Delete
              </button>
            </>
          ) : null}
        </span>
      </div>
    );
  };

  const implicitRow = (x: FirewallView['implicit'][number]) => (
    <div role="row" class={`fw-row implicit ${x.place}`} key={`${x.place}-${x.part}`} data-part={x.part} title={`added by qnet, read-only: ${x.node}, ${x.chain} (${x.part})`}>
      <span role="cell" class="c-handle" />
      <span role="cell" class="c-no muted small">{x.place}</span>
      <span role="cell" class="c-action">
        <span class={`act act-${x.action}`}>{x.action}</span>
      </span>
      <span role="cell" class="c-match">{x.match}</span>
      <span role="cell" class="c-note muted">
        {x.note} <span class="where">({x.node}: {x.chain})</span>
      </span>
    </div>
  );

  const changedUnderneath =
    form && form.version !== view.version && view.version !== '' ? (
      <p class="notice" role="status" data-testid="changed-underneath">
        The rules changed while this form was open (another window or the CLI). Your draft is kept;
        {form.kind === 'edit' ? ` saving is refused (QNET1905) if rule ${form.row.no} is no longer the rule you opened.` : ' check the position before adding.'}
      </p>
    ) : null;

  const beforeRows = view.implicit.filter((x) => x.place === 'before');
  const afterRows = view.implicit.filter((x) => x.place === 'after');
  return (
    <section class="fw">
      <h1>
        Firewall of {qube} {view.netvm ? <span class="muted">enforced by {view.netvm}</span> : <span class="muted">(no netvm: no rules apply)</span>}
      </h1>
      <p class="fw-summary">
        <a href={href('firewall')}>All qubes</a> · {view.count} rules
        {view.shadowed ? (
          <>
            {' '}
            ·{' '}
            <button type="button" class="link warn" data-testid="shadowed-count" onClick={() => (setField('shadowed'), setText(''))}>
              {view.shadowed} never match
            </button>
          </>
        ) : null}
        {!complete ? <span class="muted"> · loading all rules…</span> : null}
        {error ? <ErrorOf error={error} /> : null}
      </p>

      <div class="fw-tools">
        <form class="fw-search" role="search" onSubmit={(e) => e.preventDefault()}>
          <label>
            <span class="sr-only">Search in</span>
            <select aria-label="search field" value={field} onChange={(e) => setField((e.target as HTMLSelectElement).value as SearchField)}>
              {SEARCH_FIELDS.map(([k, label]) => (
                <option key={k} value={k}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <input type="search" aria-label="search rules" placeholder="search…" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
          <span class="muted" role="status" data-testid="count" data-filter-ms={filtered.ms.toFixed(1)} data-complete={String(complete)}>
            {shown.length === rows.length ? `${view.count} rules` : `${shown.length} of ${view.count} rules`}
          </span>
        </form>
        {editable ? (
          <button type="button" class="primary" onClick={() => setForm({ kind: 'add', version: view.version, key: Date.now() })}>
            Add rule
          </button>
        ) : null}
      </div>

      <div class="fw-status" role="status" aria-live="polite" data-edit-ms={status.ms?.toFixed(1)}>
        {status.ok ? <span class="ok">{status.ok}</span> : null}
        <Problems items={status.problems} />
        <Problems items={status.warnings} kind="warning" />
      </div>

      {form && editable ? (
        <RuleForm
          key={form.key}
          title={form.kind === 'add' ? 'Add a rule' : `Edit rule ${form.row.no}`}
          initial={form.kind === 'add' ? EMPTY_DRAFT : draftOf(form.row)}
          now={Date.now() / 1000 + skew}
          submitLabel={form.kind === 'add' ? 'Add' : 'Save'}
          notice={changedUnderneath}
          onCancel={() => setForm(null)}
          onSubmit={async (line) => {
            let refused: Diagnostic[] | null;
            if (form.kind === 'edit') refused = await change('firewall.replace', { ruleNo: form.row.no, rule: line, expect: form.row.api }, `saved rule ${form.row.no}`, true);
            else {
              const at = before.trim() === '' ? undefined : Number(before);
              const expect = at === undefined ? undefined : rows[at]?.api;
              refused = await change('firewall.add', { rule: line, ...(at !== undefined ? { before: at } : {}), ...(expect ? { expect } : {}) }, 'added a rule', true);
            }
            if (!refused) setForm(null);
            return refused;
          }}
        >
          {form.kind === 'add' ? (
            <div class="field field-before">
              <label for="rf-before">Before rule</label>
              <input id="rf-before" inputMode="numeric" placeholder="at the end" value={before} onInput={(e) => setBefore((e.target as HTMLInputElement).value)} />
            </div>
          ) : null}
        </RuleForm>
      ) : null}

      <div class="fw-table" role="table" aria-label={`rules of ${qube}`} aria-rowcount={shown.length + 1 + view.implicit.length} ref={listBox}>
        <div role="rowgroup" class="fw-head">
          <div role="row" class="fw-row head">
            <span role="columnheader" class="c-handle" />
            <span role="columnheader" class="c-no">#</span>
            <span role="columnheader" class="c-action">action</span>
            <span role="columnheader" class="c-dst">destination</span>
            <span role="columnheader" class="c-proto">proto</span>
            <span role="columnheader" class="c-ports">ports / type</span>
            <span role="columnheader" class="c-expire">expires</span>
            <span role="columnheader" class="c-comment">comment</span>
            <span role="columnheader" class="c-warn">warnings</span>
            <span role="columnheader" class="c-ops" />
          </div>
        </div>
        <div role="rowgroup" class="fw-implicit" aria-label={`before the rules, in ${view.netvm ?? 'no netvm'}`}>
          {beforeRows.map(implicitRow)}
        </div>
        {shown.length ? (
          <VirtualList count={shown.length} rowHeight={rowHeight} height={narrow ? 420 : 560} row={ruleRow} reveal={reveal} attrs={{ role: 'rowgroup', 'aria-label': 'the rules, first match wins' }} />
        ) : (
          <p class="empty">{rows.length ? 'No rule matches the search.' : 'No rules: everything is refused.'}</p>
        )}
        <div role="rowgroup" class="fw-implicit" aria-label="after the rules">
          {afterRows.map(implicitRow)}
        </div>
      </div>
      {editable ? <p class="muted small">Keyboard: ↑/↓ move between rules, Alt+↑/↓ moves the rule, Enter edits it. Or drag a rule.</p> : null}
    </section>
  );
}
