// The qubes (qvm-ls -n's columns, with how their rules stand in the kernel), start and stop, the netvm
// of each, and the topology: netvm chains, connections and forwards. Read through qubes.list,
// connections.list and forwards.list; changed through start, shutdown and prefs.set.
import type { Route } from '../route.js';
import { href } from '../route.js';
import { canEdit, useOp, useSession } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import { useOpAction } from '../components/op-action.js';
import { Topology } from '../components/topology.js';
import type { QubeView } from '../../../ops/views.js';
import type { ConnectionView, ForwardView } from '../../../ops/connections.js';
import type { GlobalPrefsView } from '../../../ops/qubes.js';

/** The select's value for "follow the global default" (no qube may be called this: names start with a letter). */
const DEFAULT = '(default)';
/** Qubes' spelling of "no netvm" for qvm-prefs. */
const NONE = '';

/** The shutdown refusal of a netvm that still has running clients: the op has a forced variant. */
const RUNNING_CLIENTS = 'QNET2101';

function NetvmSelect({ q, netvms, defaultNetvm, onChange, disabled }: { q: QubeView; netvms: readonly string[]; defaultNetvm: string | null | undefined; onChange: (v: string | null) => Promise<boolean>; disabled: boolean }) {
  const current = q.netvm_is_default ? DEFAULT : (q.netvm ?? NONE);
  // A netvm the list does not offer (it stopped providing network) is still shown as what it is.
  const options = q.netvm && !netvms.includes(q.netvm) ? [...netvms, q.netvm] : netvms;
  return (
    <select
      aria-label={`netvm of ${q.name}`}
      value={current}
      disabled={disabled}
      onChange={async (e) => {
        const el = e.currentTarget;
        const v = el.value;
        // Refused: the select goes back to what the daemon holds.
        if (!(await onChange(v === DEFAULT ? null : v))) el.value = current;
      }}
    >
      <option value={DEFAULT}>default ({defaultNetvm ?? 'none'})</option>
      <option value={NONE}>none</option>
      {options
        .filter((n) => n !== q.name)
        .map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
    </select>
  );
}

function QubeRow({ q, netvms, defaultNetvm, editor, cols }: { q: QubeView; netvms: readonly string[]; defaultNetvm: string | null | undefined; editor: boolean; cols: number }) {
  const act = useOpAction();
  const running = q.state === 'Running';
  const forceable = act.errors.some((d) => d.code === RUNNING_CLIENTS);
  return (
    <>
      <tr data-qube={q.name} class={running ? 'running' : 'halted'}>
        <th scope="row">
          <span class={`label label-${q.label}`} title={`label ${q.label}`} aria-hidden="true" /> <a href={href('firewall', q.name)}>{q.name}</a>
          <span class="sr-only"> (label {q.label})</span>
        </th>
        <td>{q.class}</td>
        <td data-col="state">
          {q.state}
          {q.detached ? (
            <span class="badge detached" title="running, but its netvm is not: reattached when the netvm starts">
              detached
            </span>
          ) : null}
        </td>
        <td data-col="netvm">{editor ? <NetvmSelect q={q} netvms={netvms} defaultNetvm={defaultNetvm} disabled={act.busy} onChange={async (value) => !!(await act.run('prefs.set', { qube: q.name, property: 'netvm', value }))} /> : (q.netvm ?? 'none') + (q.netvm_is_default && q.netvm ? ' (default)' : '')}</td>
        <td class="mono">{q.ip ?? '-'}</td>
        <td class="mono">{q.ip6 ?? '-'}</td>
        <td class="mono">{q.gateway ?? '-'}</td>
        <td data-col="rules">
          {q.rules ? <span class={`rules-${q.rules}`}>{q.rules}</span> : '-'}
          {q.rules_problem ? <div class="bad rules-problem">{q.rules_problem}</div> : null}
        </td>
        {editor ? (
          <td class="actions">
            {running ? (
              <button type="button" disabled={act.busy} onClick={() => void act.run('shutdown', { qubes: [q.name] })} aria-label={`stop ${q.name}`}>
                Stop
              </button>
            ) : (
              <button type="button" disabled={act.busy} onClick={() => void act.run('start', { qubes: [q.name] })} aria-label={`start ${q.name}`}>
                Start
              </button>
            )}
          </td>
        ) : null}
      </tr>
      {act.errors.length || act.warnings.length ? (
        <tr class="row-result" data-result-of={q.name}>
          <td colSpan={cols}>
            <Problems items={act.errors} />
            <Problems items={act.warnings} kind="warning" />
            {forceable && running ? (
              <button type="button" class="danger" disabled={act.busy} onClick={() => void act.run('shutdown', { qubes: [q.name], force: true })}>
                Stop {q.name} anyway (its clients stay running, detached)
              </button>
            ) : null}{' '}
            <button type="button" onClick={act.clear}>
              Dismiss
            </button>
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function QubesPage(_: { route: Route }) {
  const session = useSession();
  const editor = canEdit(session);
  const q = useOp<QubeView[]>('qubes.list', {});
  const conns = useOp<ConnectionView[]>('connections.list', {});
  const fwds = useOp<ForwardView[]>('forwards.list', {});
  const global = useOp<GlobalPrefsView>('global.get', {});
  const qubes = q.value ?? [];
  const netvms = qubes.filter((x) => x.provides_network).map((x) => x.name);
  const labels = new Map(qubes.map((x) => [x.name, x.label]));
  const cols = editor ? 9 : 8;
  return (
    <section class="qubes-page">
      <h1>Qubes</h1>
      <ErrorOf error={q.error} />
      <Problems items={q.warnings} kind="warning" />
      <div class="table-scroll">
        <table class="grid" aria-label="qubes">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Class</th>
              <th scope="col">State</th>
              <th scope="col">NetVM</th>
              <th scope="col">IP</th>
              <th scope="col">IPv6</th>
              <th scope="col">Gateway</th>
              <th scope="col">Rules</th>
              {editor ? <th scope="col">Actions</th> : null}
            </tr>
          </thead>
          <tbody>
            {qubes.map((v) => (
              <QubeRow key={v.name} q={v} netvms={netvms} defaultNetvm={global.value?.default_netvm} editor={editor} cols={cols} />
            ))}
          </tbody>
        </table>
      </div>
      <h2>Topology</h2>
      <p class="legend">
        Solid: netvm links. Dashed: connections (proto/port). Arrows from <em>outside</em>: port forwards. Select a line to trace it.
      </p>
      <ErrorOf error={conns.error} />
      <ErrorOf error={fwds.error} />
      {q.value && conns.value && fwds.value ? <Topology qubes={qubes} connections={conns.value} forwards={fwds.value} labels={labels} /> : null}
    </section>
  );
}
