// The drop log: first packets the netvms refused, grouped by qube, destination and port (op `log`),
// read again on each `dropped` event so a drop shows without a reload. "Allow this" stages the
// accept the daemon suggests (placed before the deciding rule) for preview on the Changes page.
import type { Route } from '../route.js';
import { href, navigate } from '../route.js';
import { canEdit, useOp, useSession } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import { QubeSelect } from '../components/qube-select.js';
import { stage } from '../staging.js';
import type { QnetEvent } from '../api.js';
import type { DropLogView } from '../../../ops/lifecycle.js';
import type { DropGroup } from '../../../model/drop-log.js';
import type { QubeView } from '../../../ops/views.js';

const dropped = (e: QnetEvent) => e.type === 'dropped' || e.type === 'hello';

const when = (iso: string) => new Date(iso).toLocaleTimeString();
const portOf = (g: { dport?: number }) => (g.dport === undefined ? '-' : String(g.dport));

export function LogPage({ route }: { route: Route }) {
  const session = useSession();
  const qube = route.query.get('qube') ?? undefined;
  const log = useOp<DropLogView>('log', qube ? { qube } : {}, [], dropped);
  const qubes = useOp<QubeView[]>('qubes.list', {});
  const allow = (g: DropGroup) => {
    stage({ name: 'firewall.add', input: g.allow }, `allow ${g.qube} → ${g.dst}${g.dport === undefined ? '' : `:${g.dport}`}/${g.proto} (drop log)`);
    navigate(href('changes'));
  };
  const groups = log.value?.groups ?? [];
  return (
    <section class="droplog">
      <h1>Drop log</h1>
      <p class="empty">
        First packets the netvms refused, as their kernels logged them (at most a few a second per rule), kept by the daemon since it started.
      </p>
      <QubeSelect qubes={qubes.value ?? []} value={qube} none={{ label: 'all' }} onChoose={(name) => navigate(href('log', { qube: name || undefined }))} />
      <ErrorOf error={log.error} />
      <Problems items={log.warnings} kind="warning" />
      {log.value && !groups.length ? <p class="empty" data-testid="no-drops">Nothing refused yet.</p> : null}
      {groups.length ? (
        <table class="grid stacked" aria-label="refused traffic, grouped">
          <thead>
            <tr>
              <th scope="col">Qube</th>
              <th scope="col">Destination</th>
              <th scope="col">Port</th>
              <th scope="col">Proto</th>
              <th scope="col">Count</th>
              <th scope="col">Last seen</th>
              <th scope="col">Deciding rule</th>
              {canEdit(session) ? <th scope="col"><span class="sr-only">Actions</span></th> : null}
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <tr key={`${g.qube} ${g.dst} ${g.proto} ${portOf(g)}`} data-drop={`${g.qube} ${g.dst} ${g.proto} ${portOf(g)}`}>
                <th scope="row">
                  <a href={href('firewall', g.qube)}>{g.qube}</a>
                </th>
                <td class="mono" data-label="Destination">{g.dst}</td>
                <td class="mono" data-label="Port">{portOf(g)}</td>
                <td data-label="Proto">{g.proto}</td>
                <td class="num" data-label="Count" data-testid="count">{g.count}</td>
                <td data-label="Last seen">
                  <time dateTime={g.last} title={g.last}>
                    {when(g.last)}
                  </time>
                </td>
                <td data-label="Deciding rule">
                  {g.decidedBy}
                  {g.ruleText ? <div class="mono rule-text">{g.ruleText}</div> : null}
                  <div class="hop">in {g.hop}</div>
                </td>
                {canEdit(session) ? (
                  <td>
                    <button type="button" onClick={() => allow(g)} title={`stage: firewall ${g.allow.qube} add ${g.allow.rule}${g.allow.before === undefined ? '' : ` before rule ${g.allow.before}`}`}>
                      Allow this
                    </button>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {log.value?.entries.length ? (
        <details>
          <summary>Recent packets ({log.value.entries.length})</summary>
          <table class="grid stacked" aria-label="recent refused packets">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Qube</th>
                <th scope="col">Source</th>
                <th scope="col">Destination</th>
                <th scope="col">Proto</th>
                <th scope="col">Port</th>
                <th scope="col">Deciding rule</th>
              </tr>
            </thead>
            <tbody>
              {[...log.value.entries].reverse().map((e, i) => (
                <tr key={i}>
                  <td data-label="Time">
                    <time dateTime={e.time}>{when(e.time)}</time>
                  </td>
                  <td data-label="Qube">{e.qube}</td>
                  <td class="mono" data-label="Source">{e.src}</td>
                  <td class="mono" data-label="Destination">{e.dst}</td>
                  <td data-label="Proto">{e.proto}</td>
                  <td class="mono" data-label="Port">{portOf(e)}</td>
                  <td data-label="Deciding rule">{e.decidedBy}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      ) : null}
    </section>
  );
}
