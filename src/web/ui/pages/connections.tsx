// Connections between qubes (qnet connect): the list with whether each is active and, on request,
// what each hop's kernel counted for it; an add form (every field connections.add takes, the daemon's
// refusal shown next to it); delete per row. Each row links to its trace on the Explain page.
import { useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { href } from '../route.js';
import { canEdit, useOp, useSession } from '../state.js';
import { ErrorOf } from '../components/problems.js';
import { ActionResult, useOpAction } from '../components/op-action.js';
import { Hops, LinkState, QubeNames } from '../components/links.js';
import type { ConnectionView } from '../../../ops/connections.js';

const portsText = (p?: { start: number; end: number }) => (p ? (p.start === p.end ? String(p.start) : `${p.start}-${p.end}`) : '');

function AddConnection() {
  const act = useOpAction();
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [proto, setProto] = useState('');
  const [ports, setPorts] = useState('');
  const [bothWays, setBothWays] = useState(false);
  const [comment, setComment] = useState('');
  const val = (set: (s: string) => void) => (e: Event) => set((e.currentTarget as HTMLInputElement).value);
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await act.run('connections.add', {
      from,
      to,
      ...(proto ? { proto } : {}),
      ...(ports ? { ports } : {}),
      bothWays,
      ...(comment ? { comment } : {}),
    });
    if (r) {
      setPorts('');
      setComment('');
    }
  };
  return (
    <form class="inline add-form" aria-label="add a connection" onSubmit={submit} aria-describedby="connection-add-result">
      <QubeNames id="connection-qubes" />
      <label>
        From
        <input name="from" list="connection-qubes" value={from} onInput={val(setFrom)} required />
      </label>
      <label>
        To
        <input name="to" list="connection-qubes" value={to} onInput={val(setTo)} required />
      </label>
      <label>
        Protocol
        <select name="proto" value={proto} onChange={val(setProto)}>
          <option value="">any</option>
          <option value="tcp">tcp</option>
          <option value="udp">udp</option>
          <option value="icmp">icmp</option>
        </select>
      </label>
      <label>
        Ports (N or N-M)
        <input name="ports" value={ports} onInput={val(setPorts)} size={11} />
      </label>
      <label class="check">
        <input type="checkbox" name="bothWays" checked={bothWays} onChange={(e) => setBothWays(e.currentTarget.checked)} /> Both ways
      </label>
      <label>
        Comment
        <input name="comment" value={comment} onInput={val(setComment)} maxLength={200} />
      </label>
      <button type="submit" class="primary" disabled={act.busy}>
        Connect
      </button>
      <ActionResult action={act} id="connection-add-result" />
    </form>
  );
}

function ConnectionRow({ c, editor, verbose }: { c: ConnectionView; editor: boolean; verbose: boolean }) {
  const act = useOpAction();
  return (
    <tr data-connection={c.id} class={c.active ? 'active' : 'inactive'}>
      <th scope="row">{c.id}</th>
      <td>{c.from}</td>
      <td>{c.to}</td>
      <td>
        {c.proto ?? 'any'}
        {c.ports ? `/${portsText(c.ports)}` : ''}
      </td>
      <td>{c.bothWays ? 'yes' : 'no'}</td>
      <td>{c.comment ?? ''}</td>
      <td>
        <LinkState active={c.active} why={c.why} />
      </td>
      {verbose ? (
        <td>
          <Hops hops={c.hops} />
        </td>
      ) : null}
      <td>
        <a href={href('explain', { src: c.from, dst: c.to, proto: c.proto, port: c.ports?.start })}>trace</a>
      </td>
      {editor ? (
        <td>
          <button type="button" class="danger" disabled={act.busy} onClick={() => void act.run('connections.del', { id: c.id })} aria-label={`delete connection ${c.id}`}>
            Delete
          </button>
          <ActionResult action={act} />
        </td>
      ) : null}
    </tr>
  );
}

export function ConnectionsPage(_: { route: Route }) {
  const editor = canEdit(useSession());
  const [verbose, setVerbose] = useState(false);
  const list = useOp<ConnectionView[]>('connections.list', { verbose });
  const rows = list.value ?? [];
  return (
    <section class="links-page">
      <h1>Connections</h1>
      <p class="legend">A connection lets one qube open connections to another (and back, both ways), through every hop between them.</p>
      {editor ? <AddConnection /> : null}
      <label class="check">
        <input type="checkbox" checked={verbose} onChange={(e) => setVerbose(e.currentTarget.checked)} /> Packets and bytes per hop
      </label>
      <ErrorOf error={list.error} />
      {list.value && !rows.length ? <p class="empty">No connections: qubes cannot reach each other.</p> : null}
      {rows.length ? (
        <div class="table-scroll">
          <table class="grid" aria-label="connections">
            <thead>
              <tr>
                <th scope="col">ID</th>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">Proto/ports</th>
                <th scope="col">Both ways</th>
                <th scope="col">Comment</th>
                <th scope="col">State</th>
                {verbose ? <th scope="col">Per hop</th> : null}
                <th scope="col">Trace</th>
                {editor ? <th scope="col">Delete</th> : null}
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <ConnectionRow key={c.id} c={c} editor={editor} verbose={verbose} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
