// Port forwards from the outside (qnet forward): the list with whether each is active (and why not)
// and, on request, what each hop's kernel counted; an add form (every field forwards.add takes, the
// daemon's refusal shown next to it); delete per row; each row links to its trace from the outside.
import { useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { href } from '../route.js';
import { useOpAction } from '../components/op-action.js';
import { AddFormEnd, inputValue, LinkListPage, LinkState, LinkTail, listOf, numberOrText, QubeNames } from '../components/links.js';
import { OUTSIDE } from '../components/topology.js';
import type { ForwardView } from '../../../ops/connections.js';

function AddForward() {
  const act = useOpAction();
  const [qube, setQube] = useState('');
  const [proto, setProto] = useState('tcp');
  const [port, setPort] = useState('');
  const [toPort, setToPort] = useState('');
  const [from, setFrom] = useState('');
  const [on, setOn] = useState('');
  const [comment, setComment] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await act.run('forwards.add', {
      qube,
      proto,
      port: numberOrText(port),
      ...(toPort.trim() ? { toPort: numberOrText(toPort) } : {}),
      from: listOf(from),
      on: listOf(on),
      ...(comment ? { comment } : {}),
    });
    if (r) {
      setPort('');
      setToPort('');
      setComment('');
    }
  };
  return (
    <form class="inline add-form" aria-label="add a port forward" onSubmit={submit} aria-describedby="forward-add-result">
      <QubeNames id="forward-qubes" />
      <label>
        Qube
        <input name="qube" list="forward-qubes" value={qube} onInput={inputValue(setQube)} required />
      </label>
      <label>
        Protocol
        <select name="proto" value={proto} onChange={inputValue(setProto)}>
          <option value="tcp">tcp</option>
          <option value="udp">udp</option>
        </select>
      </label>
      <label>
        Outside port
        <input name="port" inputMode="numeric" value={port} onInput={inputValue(setPort)} size={6} required />
      </label>
      <label>
        Qube's port (default: the same)
        <input name="toPort" inputMode="numeric" value={toPort} onInput={inputValue(setToPort)} size={6} />
      </label>
      <label>
        From (addresses or CIDRs; empty: any)
        <input name="from" value={from} onInput={inputValue(setFrom)} placeholder="192.0.2.0/24" />
      </label>
      <label>
        On interfaces (empty: the uplink)
        <input name="on" value={on} onInput={inputValue(setOn)} size={10} />
      </label>
      <AddFormEnd comment={comment} setComment={setComment} act={act} submit="Forward" id="forward-add-result" />
    </form>
  );
}

function ForwardRow({ f, editor, verbose }: { f: ForwardView; editor: boolean; verbose: boolean }) {
  return (
    <tr data-forward={f.id} class={f.active ? 'active' : 'inactive'}>
      <th scope="row">{f.id}</th>
      <td>
        {f.top ?? '-'}
        {f.on.length ? ` (${f.on.join(', ')})` : ''}
      </td>
      <td class="mono">
        {f.proto}/{f.port} → {f.qube}:{f.toPort ?? f.port}
      </td>
      <td class="mono">{f.from.length ? f.from.join(', ') : 'any'}</td>
      <td>{f.comment ?? ''}</td>
      <td>
        <LinkState active={f.active} why={f.why} />
      </td>
      <LinkTail hops={f.hops} verbose={verbose} editor={editor} trace={href('explain', { src: OUTSIDE, dst: f.qube, proto: f.proto, port: f.port })} del={{ op: 'forwards.del', id: f.id, what: 'forward' }} />
    </tr>
  );
}

export function ForwardsPage(_: { route: Route }) {
  return (
    <LinkListPage<ForwardView>
      title="Port forwards"
      legend="A forward offers a qube's port to the outside on the uplink of the netvm at the top of its chain, through every hop down to it."
      op="forwards.list"
      add={AddForward}
      empty="No port forwards: nothing from the outside reaches a qube."
      label="port forwards"
      columns={['ID', 'Offered by', 'Port', 'From', 'Comment', 'State']}
      row={(f, verbose, editor) => <ForwardRow key={f.id} f={f} editor={editor} verbose={verbose} />}
    />
  );
}
