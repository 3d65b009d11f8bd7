// Changes: the staged edits (staging.ts), what they would do (op `preview`: each qube's rule diff,
// who gains and who loses reachability, the nft per node), Apply (op `apply`: all or nothing, with a
// confirm-or-roll-back timer), the pending apply's countdown with Confirm / Roll back now, and the
// recent applies with Undo (op `history`, `undo`). A viewer sees the history and a pending apply,
// and no control that changes anything.
import { useEffect, useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { ApiError, call } from '../api.js';
import { canEdit, useOp, useSession } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import { stage, useStaged, type Staged } from '../staging.js';
import type { QubeView } from '../../../ops/views.js';
import type { ChangeReport, ReachChange } from '../../../ops/preview.js';
import type { Diagnostic } from '../api.js';

interface HistoryEntry {
  id: string;
  at: number;
  label?: string;
  steps: string[];
  state: 'pending' | 'confirmed' | 'rolled-back' | 'undone';
  confirmBy?: number;
  ended?: number;
  changed: string[];
  undoable: boolean;
  why?: string;
}

/** A change op's outcome on this page: its warnings, or the daemon's refusal. */
interface Outcome {
  ok?: string;
  problems: Diagnostic[];
  warnings: Diagnostic[];
}

async function run(op: string, input: object, ok: string): Promise<Outcome> {
  try {
    const r = await call(op, input);
    return { ok, problems: [], warnings: r.warnings };
  } catch (e) {
    return { problems: e instanceof ApiError ? e.diagnostics : [{ code: 'UI', message: String(e) }], warnings: [] };
  }
}

export function ChangesPage(_: { route: Route }) {
  const session = useSession();
  const editor = canEdit(session);
  const history = useOp<HistoryEntry[]>('history', {});
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const pending = (history.value ?? []).filter((h) => h.state === 'pending');
  const done = (o: Outcome) => {
    setOutcome(o);
    history.reload();
  };
  const act = async (op: string, input: object, ok: string) => done(await run(op, input, ok));
  return (
    <section class="changes">
      <h1>Changes</h1>
      {pending.map((p) => (
        <PendingBanner key={p.id} p={p} editor={editor} act={act} />
      ))}
      {outcome ? (
        <div class="outcome" data-testid="outcome">
          {outcome.ok ? (
            <p class="ok" role="status">
              {outcome.ok}
            </p>
          ) : null}
          <Problems items={outcome.problems} />
          <Problems items={outcome.warnings} kind="warning" />
        </div>
      ) : null}
      {editor ? <Staging done={done} /> : null}
      <h2>Recent applies</h2>
      <ErrorOf error={history.error} />
      <HistoryTable items={history.value ?? []} editor={editor} act={act} />
    </section>
  );
}

const mmss = (s: number) => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;

function PendingBanner({ p, editor, act }: { p: HistoryEntry; editor: boolean; act: (op: string, input: object, ok: string) => Promise<void> }) {
  const [now, setNow] = useState(() => Math.floor(Date.now() / 1000));
  useEffect(() => {
    const t = setInterval(() => setNow(Math.floor(Date.now() / 1000)), 1000);
    return () => clearInterval(t);
  }, []);
  const left = Math.max(0, (p.confirmBy ?? now) - now);
  const at = p.confirmBy !== undefined ? new Date(p.confirmBy * 1000).toLocaleTimeString() : '';
  // Announced once (a live region that changed every second would be read out every second).
  return (
    <div class="pending" role="region" aria-label={`pending apply ${p.id}`} data-testid="pending" data-checkpoint={p.id}>
      <p class="sr-only" role="alert">{`Apply ${p.id} is pending: confirm it, or it rolls back at ${at}.`}</p>
      <p>
        <strong data-testid="countdown">{left > 0 ? `Confirm or this rolls back in ${mmss(left)}` : 'Rolling back…'}</strong> — {p.label ?? p.changed.join(', ')} ({p.id})
      </p>
      {editor ? (
        <p class="actions">
          <button type="button" class="primary" onClick={() => void act('confirm', { checkpoint: p.id }, `${p.id} confirmed: it stays`)}>
            Confirm
          </button>{' '}
          <button type="button" class="danger" onClick={() => void act('rollback', { checkpoint: p.id }, `${p.id} rolled back`)}>
            Roll back now
          </button>
        </p>
      ) : null}
    </div>
  );
}

function Staging({ done }: { done: (o: Outcome) => void }) {
  const { steps, remove, clear } = useStaged();
  const [confirmWithin, setConfirmWithin] = useState('120');
  const [busy, setBusy] = useState(false);
  const apply = async () => {
    setBusy(true);
    // Not a number: passed on as typed, and the op's refusal says what is wrong.
    const within: unknown = confirmWithin.trim() !== '' && Number.isFinite(Number(confirmWithin)) ? Number(confirmWithin) : confirmWithin;
    const label = steps.map((s) => s.label).join('; ').slice(0, 200);
    try {
      const r = await call<{ checkpoint: string | null; confirmBy: number | null }>('apply', { ops: steps.map(({ name, input }) => ({ name, input })), confirmWithin: within, label });
      clear();
      const v = r.value;
      done({ ok: v.checkpoint ? `applied as ${v.checkpoint}${v.confirmBy ? ': confirm it before the time runs out' : ''}` : 'nothing to change', problems: [], warnings: r.warnings });
    } catch (e) {
      done({ problems: e instanceof ApiError ? e.diagnostics : [{ code: 'UI', message: String(e) }], warnings: [] });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="staging">
      <h2>Staged edits</h2>
      <StageForm />
      {steps.length ? (
        <>
          <ol class="staged" aria-label="staged edits">
            {steps.map((s, k) => (
              <li key={k} data-testid="staged">
                <span>{s.label}</span> <code class="muted">{`${s.name} ${JSON.stringify(s.input)}`.slice(0, 160)}</code>{' '}
                <button type="button" onClick={() => remove(k)} aria-label={`remove staged edit ${k + 1}: ${s.label}`}>
                  Remove
                </button>
              </li>
            ))}
          </ol>
          <Preview steps={steps} />
          <form
            class="inline apply"
            onSubmit={(e) => {
              e.preventDefault();
              void apply();
            }}
          >
            <label>
              Roll back unless confirmed within (seconds, 0: no timer)
              <input name="confirmWithin" inputMode="numeric" size={6} value={confirmWithin} onInput={(e) => setConfirmWithin((e.target as HTMLInputElement).value)} />
            </label>
            <button type="submit" class="primary" disabled={busy}>
              Apply {steps.length} edit{steps.length === 1 ? '' : 's'}
            </button>
            <button type="button" onClick={clear}>
              Discard all
            </button>
          </form>
        </>
      ) : (
        <p class="empty">Nothing staged. Stage a rule below, or from the other pages.</p>
      )}
    </div>
  );
}

/** Stage a firewall rule by hand (other pages stage through staging.ts). */
function StageForm() {
  const qubes = useOp<QubeView[]>('qubes.list', {});
  const [qube, setQube] = useState('');
  const [rule, setRule] = useState('');
  const [error, setError] = useState<string | undefined>();
  const names = (qubes.value ?? []).map((q) => q.name);
  return (
    <form
      class="inline stage-form"
      aria-label="stage a rule"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const q = qube || names[0] || '';
        if (!q || !rule.trim()) return setError('choose a qube and write a rule, e.g. action=accept dsthost=192.0.2.0/24 proto=tcp dstports=443-443');
        setError(undefined);
        stage({ name: 'firewall.add', input: { qube: q, rule: rule.trim(), before: 0 } }, `${q}: add ${rule.trim()} first`);
        setRule('');
      }}
    >
      <label>
        Qube
        <select name="qube" value={qube || names[0]} onChange={(e) => setQube((e.target as HTMLSelectElement).value)}>
          {names.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <label class="grow">
        Rule (added first)
        <input name="rule" value={rule} placeholder="action=drop proto=tcp dstports=22-22" onInput={(e) => setRule((e.target as HTMLInputElement).value)} aria-invalid={error ? 'true' : undefined} aria-describedby={error ? 'stage-error' : undefined} />
        {error ? (
          <span class="field-error" id="stage-error">
            {error}
          </span>
        ) : null}
      </label>
      <button type="submit">Stage</button>
    </form>
  );
}

function Preview({ steps }: { steps: Staged[] }) {
  const p = useOp<ChangeReport & { values: unknown[] }>('preview', { ops: steps.map(({ name, input }) => ({ name, input })) });
  if (p.error) return <ErrorOf error={p.error} />;
  const v = p.value;
  if (!v) return <p class="empty">Previewing…</p>;
  return (
    <div class="preview" data-testid="preview" aria-busy={p.loading ? 'true' : undefined}>
      <h3>Rule changes</h3>
      {v.rules.length ? (
        v.rules.map((d) => (
          <div key={d.qube} class="rules-diff" data-qube={d.qube}>
            <h4>{d.qube}</h4>
            <pre>
              {d.lines.map((l, k) => (
                <div key={k} class={`diff diff-${l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same'}`}>{`${l.op} ${l.text}`}</div>
              ))}
            </pre>
          </div>
        ))
      ) : (
        <p class="empty">No qube's rules change.</p>
      )}
      <div class="reach">
        <Reach title="Who gains" testid="gains" items={v.gains} sign="+" />
        <Reach title="Who loses" testid="losses" items={v.losses} sign="−" />
      </div>
      {v.nodes.length ? (
        <details>
          <summary>nftables changes ({v.nodes.length} node{v.nodes.length === 1 ? '' : 's'})</summary>
          {v.nodes.map((n) => (
            <div key={n.node}>
              <h4>{n.node}</h4>
              <pre class="nft">{n.nft}</pre>
            </div>
          ))}
        </details>
      ) : null}
    </div>
  );
}

function Reach({ title, testid, items, sign }: { title: string; testid: string; items: ReachChange[]; sign: string }) {
  const by = new Map<string, ReachChange[]>();
  for (const c of items) by.set(c.from, [...(by.get(c.from) ?? []), c]);
  return (
    <div class={`reach-${testid}`} data-testid={testid}>
      <h3>{title}</h3>
      {items.length ? (
        <ul>
          {[...by].map(([from, cs]) => (
            <li key={from}>
              <strong>{from}</strong>
              <ul>
                {cs.map((c, k) => (
                  <li key={k}>
                    {sign} {c.toName ? `${c.toName} (${c.to})` : c.to} {c.proto}
                    {c.port !== undefined ? `/${c.port}` : ''}
                    {c.by ? <span class="muted"> — {c.by}</span> : null}
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
      ) : (
        <p class="empty">No one.</p>
      )}
    </div>
  );
}

function HistoryTable({ items, editor, act }: { items: HistoryEntry[]; editor: boolean; act: (op: string, input: object, ok: string) => Promise<void> }) {
  if (!items.length) return <p class="empty">No applies yet.</p>;
  return (
    <div class="table-scroll">
      <table class="grid history" aria-label="recent applies">
        <thead>
          <tr>
            <th scope="col">Checkpoint</th>
            <th scope="col">When</th>
            <th scope="col">What</th>
            <th scope="col">Changed</th>
            <th scope="col">State</th>
            {editor ? <th scope="col">Undo</th> : null}
          </tr>
        </thead>
        <tbody>
          {items.map((h) => (
            <tr key={h.id} data-checkpoint={h.id}>
              <th scope="row">{h.id}</th>
              <td>{new Date(h.at * 1000).toLocaleString()}</td>
              <td>{h.label ?? h.steps.join('; ')}</td>
              <td>{h.changed.join(', ')}</td>
              <td data-testid="state">{h.state}</td>
              {editor ? (
                <td>
                  {h.undoable ? (
                    <button type="button" onClick={() => void act('undo', { checkpoint: h.id }, `${h.id} undone`)}>
                      Undo
                    </button>
                  ) : (
                    <span class="muted">{h.why ?? '—'}</span>
                  )}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
