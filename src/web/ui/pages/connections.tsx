// Connections between qubes (qnet connect): the list with whether each is active and, on request,
// what each hop's kernel counted for it; an add form (every field connections.add takes, the daemon's
// refusal shown next to it); delete per row. Each row links to its trace on the Explain page.
import { useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { href } from '../route.js';
import { useOpAction } from '../components/op-action.js';
import { AddFormEnd, inputValue, LinkListPage, LinkState, LinkTail, QubeNames } from '../components/links.js';
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
        <input name="from" list="connection-qubes" value={from} onInput={inputValue(setFrom)} required />
      </label>
      <label>
        To
        <input name="to" list="connection-qubes" value={to} onInput={inputValue(setTo)} required />
      </label>
      <label>
        Protocol
        <select name="proto" value={proto} onChange={inputValue(setProto)}>
          <option value="">any</option>
          <option value="tcp">tcp</option>
          <option value="udp">udp</option>
          <option value="icmp">icmp</option>
        </select>
      </label>
      <label>
        Ports (N or N-M)
        <input name="ports" value={ports} onInput={inputValue(setPorts)} size={11} />
      </label>
      <label class="check">
        <input type="checkbox" name="bothWays" checked={bothWays} onChange={(e) => setBothWays(e.currentTarget.checked)} /> Both ways
      </label>
      <AddFormEnd comment={comment} setComment={setComment} act={act} submit="Connect" id="connection-add-result" />
    </form>
  );
}

function ConnectionRow({ c, editor, verbose }: { c: ConnectionView; editor: boolean; verbose: boolean }) {
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
      <LinkTail hops={c.hops} verbose={verbose} editor={editor} trace={href('explain', { src: c.from, dst: c.to, proto: c.proto, port: c.ports?.start })} del={{ op: 'connections.del', id: c.id, what: 'connection' }} />
    </tr>
  );
}

export function ConnectionsPage(_: { route: Route }) {
  return (
    <LinkListPage<ConnectionView>
      title="Connections"
      legend="A connection lets one qube open connections to another (and back, both ways), through every hop between them."
      op="connections.list"
      add={AddConnection}
      empty="No connections: qubes cannot reach each other."
      label="connections"
      columns={['ID', 'From', 'To', 'Proto/ports', 'Both ways', 'Comment', 'State']}
      row={(c, verbose, editor) => <ConnectionRow key={c.id} c={c} editor={editor} verbose={verbose} />}
    />
  );
}
