// Who can reach whom (qnet matrix): every qube and the outside as sources (rows) and destinations
// (columns) for one protocol and port, as the simulator answers it. Each cell links to that probe's
// trace on the Explain page. Protocol and port live in the address (#/matrix?proto=tcp&port=443).
import { useEffect, useState } from 'preact/hooks';
import type { Matrix } from '../../../sim/questions.js';
import type { Route } from '../route.js';
import { href, navigate } from '../route.js';
import { useOp } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import { numberOrText } from '../components/links.js';

/** What the matrix op returns (ops/analyze.ts). */
type MatrixView = { proto: string; port: number | null; unknown: string[] } & Matrix;

export function MatrixPage({ route }: { route: Route }) {
  const proto = route.query.get('proto') ?? 'icmp';
  const portText = route.query.get('port') ?? '';
  const input = { proto, ...(portText ? { port: numberOrText(portText) } : {}) };
  const mx = useOp<MatrixView>('matrix', input);
  const [p, setP] = useState(proto);
  const [port, setPort] = useState(portText);
  // The form follows the address (back and forward, a bookmark).
  useEffect(() => {
    setP(proto);
    setPort(portText);
  }, [proto, portText]);
  const m = mx.value;
  const unknown = new Set(m?.unknown ?? []);
  return (
    <section class="matrix-page">
      <h1>Reachability matrix</h1>
      <form
        class="inline"
        aria-label="matrix probe"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(href('matrix', { proto: p, port: p === 'icmp' || !port.trim() ? undefined : port.trim() }));
        }}
      >
        <label>
          Protocol
          <select name="proto" value={p} onChange={(e) => setP(e.currentTarget.value)}>
            <option value="icmp">icmp</option>
            <option value="tcp">tcp</option>
            <option value="udp">udp</option>
          </select>
        </label>
        <label>
          Port (tcp/udp; default 80)
          <input name="port" inputMode="numeric" value={port} disabled={p === 'icmp'} onInput={(e) => setPort(e.currentTarget.value)} size={6} />
        </label>
        <button type="submit">Show</button>
      </form>
      <ErrorOf error={mx.error} />
      <Problems items={mx.warnings} kind="warning" />
      {m ? (
        <>
          <p class="legend">
            Rows send, columns receive: a new {m.proto}
            {m.port !== null ? ` connection to port ${m.port}` : ' echo request'}. Select a cell for its trace.
          </p>
          {unknown.size ? <Problems kind="warning" items={[{ code: 'UI', message: `rules unknown (broken rules file, blocked in the kernel): ${[...unknown].join(', ')}` }]} /> : null}
          <div class="table-scroll">
            <table class="grid matrix" aria-label={`reachability for ${m.proto}${m.port !== null ? `/${m.port}` : ''}`}>
              <thead>
                <tr>
                  <th scope="col">from \ to</th>
                  {m.destinations.map((d) => (
                    <th key={d} scope="col">
                      {d}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {m.sources.map((s) => (
                  <tr key={s} data-source={s}>
                    <th scope="row">
                      {s}
                      {unknown.has(s) ? <span class="bad"> (rules unknown)</span> : null}
                    </th>
                    {m.destinations.map((d) => {
                      const v = m.cells[s]?.[d] ?? '-';
                      return (
                        <td key={d} data-dst={d} class={`cell verdict-${v === '-' ? 'self' : v}`}>
                          {v === '-' ? (
                            <span title="itself">-</span>
                          ) : (
                            <a href={href('explain', { src: s, dst: d, proto: m.proto, port: m.port ?? undefined })} aria-label={`${s} to ${d}: ${v}`}>
                              {v}
                            </a>
                          )}
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </section>
  );
}
