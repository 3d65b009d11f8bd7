// Counters of one running qube's rules at every hop of its netvm chain (op `counters`), read again
// every few seconds; "last hit" is when the daemon last saw a rule's count grow between its reads.
import { useEffect } from 'preact/hooks';
import type { Route } from '../route.js';
import { href, navigate } from '../route.js';
import { useOp } from '../state.js';
import { ErrorOf } from '../components/problems.js';
import { QubeSelect } from '../components/qube-select.js';
import type { CounterRow } from '../../../ops/lifecycle.js';
import type { QubeView } from '../../../ops/views.js';

const POLL_MS = 3000;

export function CountersPage({ route }: { route: Route }) {
  const qube = route.args[0];
  const qubes = useOp<QubeView[]>('qubes.list', {});
  const running = (qubes.value ?? []).filter((q) => q.state === 'Running');
  return (
    <section class="counters">
      <h1>Counters{qube ? `: ${qube}` : ''}</h1>
      <QubeSelect qubes={running} value={qube} none={{ label: 'choose a running qube', disabled: true }} onChoose={(name) => navigate(href('counters', name))} />
      <ErrorOf error={qubes.error} />
      {!qube ? (
        <p class="empty">Choose a running qube to see its rules' packets and bytes at each hop.</p>
      ) : !qubes.value ? null : running.some((q) => q.name === qube) ? (
        <Counters qube={qube} />
      ) : (
        // Not asked of the daemon: it would refuse (QNET2103), and only a running qube has counters.
        <p class="empty" data-testid="not-running">
          {qube} is not running: only a running qube's rules count packets.
        </p>
      )}
    </section>
  );
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : new Date(iso).toLocaleString();
}

function Counters({ qube }: { qube: string }) {
  const rows = useOp<CounterRow[]>('counters', { qube });
  const { reload } = rows;
  useEffect(() => {
    const t = setInterval(reload, POLL_MS);
    return () => clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [qube]);
  const now = Date.now();
  return (
    <>
      <ErrorOf error={rows.error} />
      {rows.value && !rows.value.length ? <p class="empty">No rules of {qube} count anything here.</p> : null}
      {rows.value?.length ? (
        <table class="grid stacked" aria-label={`counters of ${qube}`}>
          <thead>
            <tr>
              <th scope="col">Hop</th>
              <th scope="col">Chain</th>
              <th scope="col">Rule</th>
              <th scope="col" class="num">Packets</th>
              <th scope="col" class="num">Bytes</th>
              <th scope="col">Last hit</th>
            </tr>
          </thead>
          <tbody>
            {rows.value.map((r, i) => (
              <tr key={`${r.hop} ${r.chain} ${r.rule} ${i}`} data-hop={r.hop} data-rule={r.rule}>
                <td data-label="Hop">{r.hop}</td>
                <td class="mono" data-label="Chain">{r.chain}</td>
                <th scope="row">{r.rule}</th>
                <td class="num" data-label="Packets" data-testid="packets">{r.packets}</td>
                <td class="num" data-label="Bytes">{r.bytes}</td>
                <td data-label="Last hit" data-testid="last-hit">
                  {r.lastHit ? (
                    <time dateTime={r.lastHit} title={r.lastHit}>
                      {ago(r.lastHit, now)}
                    </time>
                  ) : r.packets > 0 ? (
                    <span class="empty" title="counted before the daemon first read it">earlier</span>
                  ) : (
                    <span class="empty">never</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}
