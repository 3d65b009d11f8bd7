// Connections between qubes and port forwards from the outside (issue 10): add, list, del. Keyed by
// qube names and stored with the qubes; the compiler renders them into every hop on each converge.
// These ops declare `links`: the daemon's engine patches just the changed link into each hop
// (engine/link-edit.ts), and converges where it cannot.
import * as v from 'valibot';
import { qubeIp } from '../model/addressing.js';
import {
  checkConnectionShape,
  checkForwardShape,
  checkLinks,
  connectionPath,
  connectionsOf,
  describeConnection,
  forwardPath,
  forwardsOf,
  nextId,
  parsePortRange,
  type Connection,
  type PortForward,
} from '../model/connection.js';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { uplinkKind } from '../model/netplan.js';
import { getQube } from '../model/ops.js';
import { pathModel } from '../model/topology.js';
import { describeOrigin, type Origin } from '../model/origin.js';
import type { RuleCounter } from '../backend/backend.js';
import type { Model } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { port, qubeName } from './schema.js';
import type { Host } from './types.js';
import { defineOp, result } from './types.js';

const comment = v.optional(v.pipe(v.string(), v.maxLength(128)));
/** `N` or `N-M`, as typed. */
const portRange = v.pipe(v.string(), v.minLength(1), v.maxLength(11));
const cidr = v.pipe(v.string(), v.minLength(1), v.maxLength(64));
const ifname = v.pipe(v.string(), v.minLength(1), v.maxLength(15));

/** What one hop's kernel counted for a connection or forward: null where the hop is not running. */
export interface HopCount {
  node: string;
  packets: number | null;
  bytes: number | null;
}

export interface ConnectionView extends Connection {
  text: string;
  /** Every qube on its path runs (and a path exists): its rules are in the kernel. */
  active: boolean;
  why?: string;
  /** With `verbose`: per hop of its path, the packets and bytes its rules counted there. */
  hops?: HopCount[];
}

export interface ForwardView extends PortForward {
  active: boolean;
  why?: string;
  /** The netvm whose uplink offers it. */
  top: string | null;
  hops?: HopCount[];
}

/** The nodes a connection puts rules in, in path order (A too when both ways: it receives then). */
function connectionHops(m: Model, c: Connection): string[] {
  const p = connectionPath(m, c.from, c.to);
  if (!p) return [];
  const nodes = [...(c.bothWays ? [p.a] : []), ...p.up, p.x, ...p.down, p.b].map((q) => q.name);
  return [...new Set(nodes)].filter((n) => c.bothWays || n !== c.from);
}

/** The nodes a forward puts rules in: its netvms top first, then the qube. */
function forwardHops(m: Model, f: PortForward): string[] {
  const q = m.qubes.get(f.qube);
  return q ? [...forwardPath(m, q).map((h) => h.name), q.name] : [];
}

/**
 * Per hop, the sum of the counters of the rules whose origin is `origin` (both families, every
 * chain): the guide's `iptables -L -v -n`, read from each hop's kernel. Counters are read once per
 * node for all entries (`seen`); a hop that is not running counts nothing and shows null.
 */
async function hopCounts(host: Host, m: Model, nodes: readonly string[], origin: Origin, seen: Map<string, Promise<RuleCounter[]>>): Promise<HopCount[]> {
  const out: HopCount[] = [];
  for (const node of nodes) {
    if (m.qubes.get(node)?.state !== 'Running') {
      out.push({ node, packets: null, bytes: null });
      continue;
    }
    let rows = seen.get(node);
    if (!rows) seen.set(node, (rows = host.counters(node)));
    let packets = 0;
    let bytes = 0;
    for (const r of await rows)
      if (r.origin?.kind === origin.kind && (r.origin as { id: string }).id === (origin as { id: string }).id) {
        packets += r.packets;
        bytes += r.bytes;
      }
    out.push({ node, packets, bytes });
  }
  return out;
}

function connectionView(m: Model, c: Connection): ConnectionView {
  const p = connectionPath(m, c.from, c.to);
  let why: string | undefined;
  if (!p) why = `${c.from} and ${c.to} share no netvm`;
  else {
    const down = [p.a, ...p.up, p.x, ...p.down, p.b].filter((q) => q.state !== 'Running').map((q) => q.name);
    if (down.length) why = `not running: ${[...new Set(down)].join(', ')}`;
  }
  return { ...c, text: describeConnection(c), active: why === undefined, ...(why ? { why } : {}) };
}

function forwardView(m: Model, f: PortForward): ForwardView {
  const q = m.qubes.get(f.qube);
  const hops = q ? forwardPath(m, q) : [];
  const top = hops[0]?.name ?? null;
  let why: string | undefined;
  if (!q) why = `no such qube '${f.qube}'`;
  else if (!hops.length) why = `${f.qube} has no netvm, so no uplink leads to it`;
  else if (uplinkKind(m) === 'none') why = `${top} has no uplink (qnet global uplink is none)`;
  else {
    const down = [...hops, q].filter((x) => x.state !== 'Running').map((x) => x.name);
    if (down.length) why = `not running: ${down.join(', ')}`;
  }
  return { ...f, active: why === undefined, top, ...(why ? { why } : {}) };
}

/** Refuse a model whose connections or forwards are wrong (the store would refuse it too, less clearly). */
function assertLinks(m: Model): void {
  const bad = checkLinks(m);
  if (bad.length) throw new QnetError(bad[0]!);
}

/**
 * What A's own rules say about a connection's first packet (the simulator, as `check` asks):
 * a warning naming the rule when they block it.
 */
async function blockedByOwnRules(host: Host, m: Model, c: Connection, from: string, to: string): Promise<Diagnostic[]> {
  const b = m.qubes.get(to);
  const ipB = b ? qubeIp(m, b) : null;
  if (!ipB) return [];
  const { ownRefusal } = await import('../sim/questions.js');
  // As if every qube on the way ran: the question is the policy, not what runs now.
  const proto = c.proto ?? 'tcp';
  const o = ownRefusal(await host.analysis(pathModel(m, from, to)), from, { from, to: ipB, proto, ...(proto !== 'icmp' ? { dport: c.ports?.start ?? 80 } : {}) });
  if (!o) return [];
  return [
    warning('QNET2204', `connection ${c.id}: ${from}'s own firewall rules block it (${describeOrigin(o)}); it opens only where they accept`, {
      qube: from,
      hint: `qnet check ${from} ${to}${proto === 'icmp' ? ' --proto icmp' : `:${c.ports?.start ?? 80}${proto === 'udp' ? ' --proto udp' : ''}`}`,
    }),
  ];
}

export const connectionsList = defineOp({
  name: 'connections.list',
  kind: 'read',
  summary: 'connections between qubes, each with whether it is active; verbose: packets and bytes per hop (qnet connect --list -v)',
  input: v.strictObject({ verbose: v.optional(v.boolean(), false) }),
  run: async (i, host) => {
    const m = await host.read();
    const views = connectionsOf(m).map((c) => connectionView(m, c));
    if (i.verbose) {
      const seen = new Map<string, Promise<RuleCounter[]>>();
      for (const c of views) c.hops = await hopCounts(host, m, connectionHops(m, c), { kind: 'connection', id: c.id }, seen);
    }
    return result(views);
  },
});

export const connectionsAdd = defineOp({
  name: 'connections.add',
  kind: 'change',
  summary: 'let qube `from` open connections to qube `to` (and back with bothWays), through every hop between them',
  input: v.strictObject({
    from: qubeName,
    to: qubeName,
    proto: v.optional(v.picklist(['tcp', 'udp', 'icmp'])),
    ports: v.optional(portRange),
    bothWays: v.optional(v.boolean(), false),
    comment,
  }),
  run: async (i, host) => {
    let ports: Connection['ports'];
    if (i.ports !== undefined) {
      const r = parsePortRange(i.ports);
      if (!r.ok) throw new QnetError(r.error);
      ports = r.value;
    }
    const c = await host.change({ kind: 'links' }, (m) => {
      getQube(m, i.from);
      getQube(m, i.to);
      const conns = connectionsOf(m);
      const c: Connection = {
        id: nextId('c', conns),
        from: i.from,
        to: i.to,
        ...(i.proto !== undefined ? { proto: i.proto } : {}),
        ...(ports ? { ports } : {}),
        bothWays: i.bothWays,
        ...(i.comment !== undefined ? { comment: i.comment } : {}),
      };
      const shape = checkConnectionShape(c);
      if (shape) throw new QnetError(shape);
      m.connections = [...conns, c];
      assertLinks(m);
      return c;
    });
    const m = await host.read();
    const warnings = [...(await blockedByOwnRules(host, m, c, c.from, c.to)), ...(c.bothWays ? await blockedByOwnRules(host, m, c, c.to, c.from) : [])];
    if (!connectionPath(m, c.from, c.to))
      warnings.push(warning('QNET4006', `connection ${c.id}: ${c.from} and ${c.to} share no netvm, so no path joins them`, { hint: 'give them a common netvm' }));
    return result(connectionView(m, c), warnings);
  },
});

export const connectionsDel = defineOp({
  name: 'connections.del',
  kind: 'change',
  summary: 'remove a connection, by id or by the same words it was made with',
  input: v.union([
    v.strictObject({ id: v.pipe(v.string(), v.maxLength(16)) }),
    v.strictObject({ from: qubeName, to: qubeName, proto: v.optional(v.picklist(['tcp', 'udp', 'icmp'])), ports: v.optional(portRange), bothWays: v.optional(v.boolean()) }),
  ]),
  run: async (i, host) => {
    const gone = await host.change({ kind: 'links' }, (m) => {
      const conns = connectionsOf(m);
      let match: (c: Connection) => boolean;
      if ('id' in i) match = (c) => c.id === i.id;
      else {
        const ports = i.ports === undefined ? undefined : parsePortRange(i.ports);
        if (ports && !ports.ok) throw new QnetError(ports.error);
        const pr = ports?.ok ? ports.value : undefined;
        match = (c) =>
          c.from === i.from && c.to === i.to && c.proto === i.proto && c.ports?.start === pr?.start && c.ports?.end === pr?.end && (i.bothWays === undefined || c.bothWays === i.bothWays);
      }
      const hit = conns.filter(match);
      if (!hit.length) throw new QnetError(diag('QNET2203', 'no connection matches', { hint: 'qnet connect --list' }));
      m.connections = conns.filter((c) => !match(c));
      return hit;
    });
    return result({ removed: gone.map((c) => c.id) });
  },
});

export const forwardsList = defineOp({
  name: 'forwards.list',
  kind: 'read',
  summary: 'port forwards from the outside, each with whether it is active; verbose: packets and bytes per hop (qnet forward list -v)',
  input: v.strictObject({ verbose: v.optional(v.boolean(), false) }),
  run: async (i, host) => {
    const m = await host.read();
    const views = forwardsOf(m).map((f) => forwardView(m, f));
    if (i.verbose) {
      const seen = new Map<string, Promise<RuleCounter[]>>();
      for (const f of views) f.hops = await hopCounts(host, m, forwardHops(m, f), { kind: 'forward', id: f.id }, seen);
    }
    return result(views);
  },
});

export const forwardsAdd = defineOp({
  name: 'forwards.add',
  kind: 'change',
  summary: "offer a qube's port to the outside: DNAT and accepts in every hop from the top netvm's uplink down",
  input: v.strictObject({
    qube: qubeName,
    proto: v.picklist(['tcp', 'udp']),
    port,
    toPort: v.optional(port),
    from: v.optional(v.pipe(v.array(cidr), v.maxLength(64)), []),
    on: v.optional(v.pipe(v.array(ifname), v.maxLength(16)), []),
    comment,
  }),
  run: async (i, host) => {
    const f = await host.change({ kind: 'links' }, (m) => {
      getQube(m, i.qube);
      const fwds = forwardsOf(m);
      const f: PortForward = {
        id: nextId('f', fwds),
        qube: i.qube,
        proto: i.proto,
        port: i.port,
        ...(i.toPort !== undefined ? { toPort: i.toPort } : {}),
        from: [...i.from],
        on: [...i.on],
        ...(i.comment !== undefined ? { comment: i.comment } : {}),
      };
      const shape = checkForwardShape(f);
      if (shape) throw new QnetError(shape);
      m.forwards = [...fwds, f];
      assertLinks(m);
      return f;
    });
    const view = forwardView(await host.read(), f);
    // Kept either way: it comes alive when the qubes on its path run; say why it is not yet.
    const warnings = view.active || !/uplink/.test(view.why ?? '') ? [] : [warning('QNET4006', `forward ${f.id}: ${view.why}`, { qube: f.qube })];
    return result(view, warnings);
  },
});

export const forwardsDel = defineOp({
  name: 'forwards.del',
  kind: 'change',
  summary: 'remove a port forward, by id or by qube, proto and port',
  input: v.union([v.strictObject({ id: v.pipe(v.string(), v.maxLength(16)) }), v.strictObject({ qube: qubeName, proto: v.picklist(['tcp', 'udp']), port })]),
  run: async (i, host) => {
    const gone = await host.change({ kind: 'links' }, (m) => {
      const fwds = forwardsOf(m);
      const match = (f: PortForward) => ('id' in i ? f.id === i.id : f.qube === i.qube && f.proto === i.proto && f.port === i.port);
      const hit = fwds.filter(match);
      if (!hit.length) throw new QnetError(diag('QNET2203', 'no port forward matches', { hint: 'qnet forward list' }));
      m.forwards = fwds.filter((f) => !match(f));
      return hit;
    });
    return result({ removed: gone.map((f) => f.id) });
  },
});
