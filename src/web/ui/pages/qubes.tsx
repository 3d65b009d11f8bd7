// The qubes table (qvm-ls -n's columns), read through qubes.list.
import type { Route } from '../route.js';
import { href } from '../route.js';
import { useOp } from '../state.js';
import { ErrorOf } from '../components/problems.js';
import type { QubeView } from '../../../ops/views.js';

export function QubesPage(_: { route: Route }) {
  const q = useOp<QubeView[]>('qubes.list', {});
  return (
    <section>
      <h1>Qubes</h1>
      <ErrorOf error={q.error} />
      <table class="grid" aria-label="qubes">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">State</th>
            <th scope="col">Class</th>
            <th scope="col">NetVM</th>
            <th scope="col">IP</th>
            <th scope="col">Gateway</th>
          </tr>
        </thead>
        <tbody>
          {(q.value ?? []).map((v) => (
            <tr key={v.name} data-qube={v.name}>
              <th scope="row">
                <span class={`label label-${v.label}`} aria-hidden="true" /> <a href={href('firewall', v.name)}>{v.name}</a>
              </th>
              <td>{v.state}</td>
              <td>{v.class}</td>
              <td>{v.netvm ?? '-'}</td>
              <td>{v.ip ?? '-'}</td>
              <td>{v.gateway ?? '-'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
