// Connections (A may open new connections to B) and port forwards (the outside may reach a port of
// a qube), as data keyed by qube names, with pure validation. What Qubes users do by hand
// (reference qubes-networking-and-users.md §1.5, §1.7) — FORWARD/INPUT rules in every hop, DNAT in
// each netvm — is derived from these by the compiler, so addresses, netvms and running states are
// read at compile time and never baked in.
import { netvmName } from './addressing.js';
import { diag, type Diagnostic } from './diagnostics.js';
import { parseV4, parseV6 } from './ip.js';
import type { Model, Qube } from './qube.js';
import { err, ok, type Result } from './result.js';
import { validateQubeName } from './topology.js';

export type ConnProto = 'tcp' | 'udp' | 'icmp';
export const CONN_PROTOS: readonly ConnProto[] = ['tcp', 'udp', 'icmp'];

export interface PortRange {
  start: number;
  end: number;
}

export interface Connection {
  /** `c1`, `c2` …: the lowest unused; in kernel comments as `connection=c1`. */
  id: string;
  /** A may open new connections to B (replies flow back through conntrack). */
  from: string;
  to: string;
  /** Absent: any protocol. */
  proto?: ConnProto;
  /** Only with tcp or udp. */
  ports?: PortRange;
  /** B may also open new connections to A. */
  bothWays: boolean;
  comment?: string;
}

export interface PortForward {
  /** `f1`, `f2` …; in kernel comments as `forward=f1`. */
  id: string;
  qube: string;
  proto: 'tcp' | 'udp';
  /** The port the outside connects to, on the top netvm's uplink. */
  port: number;
  /** The port the qube listens on; absent = `port`. */
  toPort?: number;
  /** Source ranges allowed (CIDR or address); empty = any. */
  from: string[];
  /** Interfaces of the top netvm it is offered on; empty = its uplink (interface group 1). */
  on: string[];
  comment?: string;
}

export const CONNECTION_ID_RE = /^c[1-9][0-9]{0,5}$/;
export const FORWARD_ID_RE = /^f[1-9][0-9]{0,5}$/;
/** Linux interface names: at most 15 characters, no `/`, whitespace or quotes. */
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
/** Comments reach users' terminals and JSON: printable ASCII, bounded. */
const COMMENT_RE = /^[\x20-\x7e]{0,128}$/;
const MAX_FROM = 64;
const MAX_ON = 16;

export const connectionsOf = (m: Model): Connection[] => m.connections ?? [];

/** Connections in one of the two and not the other. Links are replaced, never edited in place, so an unchanged one is the same object in both. */
export function changedConnections(a: Model, b: Model): Connection[] {
  const inA = new Set(connectionsOf(a));
  const inB = new Set(connectionsOf(b));
  return [...connectionsOf(a).filter((c) => !inB.has(c)), ...connectionsOf(b).filter((c) => !inA.has(c))];
}
export const forwardsOf = (m: Model): PortForward[] => m.forwards ?? [];

/** The lowest unused id with this prefix (`c` or `f`), as Qubes allocates qids. */
export function nextId(prefix: 'c' | 'f', used: readonly { id: string }[]): string {
  const taken = new Set(used.map((x) => x.id));
  let i = 1;
  while (taken.has(`${prefix}${i}`)) i++;
  return `${prefix}${i}`;
}

const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

/** `N` or `N-M` (1–65535, N ≤ M). */
export function parsePortRange(text: string): Result<PortRange> {
  const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(text);
  const start = m ? Number(m[1]) : NaN;
  const end = m ? Number(m[2] ?? m[1]) : NaN;
  if (!isPort(start) || !isPort(end) || start > end)
    return err(diag('QNET2201', `'${text}' is not a port or port range`, { hint: 'N or N-M, 1–65535, N ≤ M' }));
  return ok({ start, end });
}

/** A source range for --from: an address or CIDR of either family, canonical prefix not required. */
export function validCidr(text: string): boolean {
  if (typeof text !== 'string' || text.length > 64) return false;
  const [a, len, extra] = text.split('/');
  if (extra !== undefined || a === undefined) return false;
  const v6 = a.includes(':');
  if ((v6 ? parseV6(a) : parseV4(a)) === undefined) return false;
  if (len === undefined) return true;
  return /^[0-9]{1,3}$/.test(len) && Number(len) <= (v6 ? 128 : 32);
}

const bad = (message: string, hint?: string): Diagnostic => diag('QNET2201', message, hint ? { hint } : {});

/** The shape and values of one connection, without looking at the qubes (hostile input). */
export function checkConnectionShape(c: Connection): Diagnostic | null {
  if (typeof c.id !== 'string' || !CONNECTION_ID_RE.test(c.id)) return bad(`connection id ${JSON.stringify(c.id)} is not c1, c2, …`);
  for (const n of [c.from, c.to]) if (typeof n !== 'string' || !validateQubeName(n).ok) return bad(`connection ${c.id}: ${JSON.stringify(n)} is not a qube name`);
  if (c.from === c.to) return bad(`connection ${c.id}: a qube cannot be connected to itself`);
  if (c.proto !== undefined && !CONN_PROTOS.includes(c.proto)) return bad(`connection ${c.id}: proto ${JSON.stringify(c.proto)} is not tcp, udp or icmp`);
  if (c.ports !== undefined) {
    if (c.proto !== 'tcp' && c.proto !== 'udp') return bad(`connection ${c.id}: ports need proto tcp or udp`);
    if (typeof c.ports !== 'object' || c.ports === null || !isPort(c.ports.start) || !isPort(c.ports.end) || c.ports.start > c.ports.end)
      return bad(`connection ${c.id}: ports ${JSON.stringify(c.ports)} are not a range 1–65535`);
  }
  if (typeof c.bothWays !== 'boolean') return bad(`connection ${c.id}: bothWays must be true or false`);
  if (c.comment !== undefined && !(typeof c.comment === 'string' && COMMENT_RE.test(c.comment)))
    return bad(`connection ${c.id}: the comment must be printable ASCII, at most 128 characters`);
  return null;
}

export function checkForwardShape(f: PortForward): Diagnostic | null {
  if (typeof f.id !== 'string' || !FORWARD_ID_RE.test(f.id)) return bad(`forward id ${JSON.stringify(f.id)} is not f1, f2, …`);
  if (typeof f.qube !== 'string' || !validateQubeName(f.qube).ok) return bad(`forward ${f.id}: ${JSON.stringify(f.qube)} is not a qube name`);
  if (f.proto !== 'tcp' && f.proto !== 'udp') return bad(`forward ${f.id}: proto ${JSON.stringify(f.proto)} is not tcp or udp`);
  if (!isPort(f.port)) return bad(`forward ${f.id}: port ${JSON.stringify(f.port)} is not 1–65535`);
  if (f.toPort !== undefined && !isPort(f.toPort)) return bad(`forward ${f.id}: to-port ${JSON.stringify(f.toPort)} is not 1–65535`);
  if (!Array.isArray(f.from) || f.from.length > MAX_FROM || !f.from.every(validCidr))
    return bad(`forward ${f.id}: from must be at most ${MAX_FROM} addresses or CIDRs`, 'e.g. --from 192.0.2.0/24');
  if (new Set(f.from).size !== f.from.length) return bad(`forward ${f.id}: a source range is given twice`);
  if (!Array.isArray(f.on) || f.on.length > MAX_ON || !f.on.every((i) => typeof i === 'string' && IFNAME_RE.test(i)))
    return bad(`forward ${f.id}: on must be at most ${MAX_ON} interface names`);
  if (new Set(f.on).size !== f.on.length) return bad(`forward ${f.id}: an interface is given twice`);
  if (f.comment !== undefined && !(typeof f.comment === 'string' && COMMENT_RE.test(f.comment)))
    return bad(`forward ${f.id}: the comment must be printable ASCII, at most 128 characters`);
  return null;
}

const sameConn = (a: Connection, b: Connection) =>
  a.from === b.from && a.to === b.to && a.proto === b.proto && a.ports?.start === b.ports?.start && a.ports?.end === b.ports?.end;

/**
 * Everything wrong with the model's connections and forwards: shapes, unknown qubes, duplicate ids
 * or duplicate meanings, two forwards claiming one port of one top netvm. Empty = fine.
 */
export function checkLinks(model: Model): Diagnostic[] {
  const out: Diagnostic[] = [];
  const ids = new Set<string>();
  // Earlier links by what a twin must share (a superset of twins, in order): every model write
  // checks thousands of links, so each looks at its few candidates, not at all before it.
  const earlier = <T,>(groups: Map<string, T[]>, key: string, x: T): T[] => {
    const g = groups.get(key) ?? groups.set(key, []).get(key)!;
    const before = [...g];
    g.push(x);
    return before;
  };
  const connGroups = new Map<string, Connection[]>();
  for (const c of connectionsOf(model)) {
    const candidates = earlier(connGroups, `${c.from} ${c.to}`, c);
    const s = checkConnectionShape(c);
    if (s) {
      out.push(s);
      continue;
    }
    if (ids.has(c.id)) out.push(bad(`connection id ${c.id} is used twice`));
    ids.add(c.id);
    for (const n of [c.from, c.to]) if (!model.qubes.has(n)) out.push(diag('QNET2003', `connection ${c.id}: no such qube '${n}'`));
    const twin = candidates.find((d) => sameConn(c, d));
    if (twin) out.push(diag('QNET2202', `connection ${c.id} is the same as ${twin.id}`));
  }
  const fwdGroups = new Map<string, PortForward[]>();
  for (const f of forwardsOf(model)) {
    const candidates = earlier(fwdGroups, `${f.proto} ${f.port}`, f);
    const s = checkForwardShape(f);
    if (s) {
      out.push(s);
      continue;
    }
    if (ids.has(f.id)) out.push(bad(`forward id ${f.id} is used twice`));
    ids.add(f.id);
    const q = model.qubes.get(f.qube);
    if (!q) {
      out.push(diag('QNET2003', `forward ${f.id}: no such qube '${f.qube}'`));
      continue;
    }
    const twin = candidates.find((g) => forwardsClash(model, f, g));
    if (twin) out.push(diag('QNET2202', `forward ${f.id} claims ${f.proto} port ${f.port} of ${topNetvm(model, q) ?? 'its netvm'}, as ${twin.id} does`));
  }
  return out;
}

/** The netvm at the top of q's chain (the one with the uplink); null when q has no netvm. */
export function topNetvm(model: Model, q: Qube): string | null {
  let top: string | null = null;
  const seen = new Set<string>([q.name]);
  for (let n = netvmName(model, q); n !== null && !seen.has(n); ) {
    seen.add(n);
    top = n;
    const up = model.qubes.get(n);
    n = up ? netvmName(model, up) : null;
  }
  return top;
}

const overlap = (a: string[], b: string[]) => a.length === 0 || b.length === 0 || a.some((x) => b.includes(x));

/** Two forwards that would take the same packets at one top netvm (same proto, port, interfaces). */
export function forwardsClash(model: Model, a: PortForward, b: PortForward): boolean {
  if (a.proto !== b.proto || a.port !== b.port || !overlap(a.on, b.on)) return false;
  const qa = model.qubes.get(a.qube);
  const qb = model.qubes.get(b.qube);
  if (!qa || !qb) return false;
  const ta = topNetvm(model, qa);
  return ta !== null && ta === topNetvm(model, qb);
}

/** `work → personal tcp/22-23 (both ways)`: how listings and warnings name a connection. */
export function describeConnection(c: Connection): string {
  const what = c.proto === undefined ? 'any' : c.ports ? `${c.proto}/${c.ports.start === c.ports.end ? c.ports.start : `${c.ports.start}-${c.ports.end}`}` : c.proto;
  return `${c.from} ${c.bothWays ? '↔' : '→'} ${c.to} ${what}`;
}

/** Follow a rename: every connection and forward naming `from` names `to`. */
export function renameInLinks(model: Model, from: string, to: string): void {
  for (const c of model.connections ?? []) {
    if (c.from === from) c.from = to;
    if (c.to === from) c.to = to;
  }
  for (const f of model.forwards ?? []) if (f.qube === from) f.qube = to;
}

/** A removed qube takes its connections and forwards with it (they name nothing any more). */
export function dropLinksOf(model: Model, name: string): void {
  if (model.connections) model.connections = model.connections.filter((c) => c.from !== name && c.to !== name);
  if (model.forwards) model.forwards = model.forwards.filter((f) => f.qube !== name);
}

// ---- Paths through the netvm tree (the compiler and the network plan both walk them) -----------

/**
 * The way a new connection from A to B takes: up from A through its netvms to X, the first netvm
 * (or A or B itself) both lie under, then down to B. `up` are the netvms between A and X that send
 * it out of their uplink (each masquerades it to its own address); `down` are the netvms between X
 * and B, top first. null when A and B share no node (two trees: the path would leave through an
 * uplink) or a name is unknown.
 */
export interface ConnPath {
  a: Qube;
  b: Qube;
  up: Qube[];
  x: Qube;
  down: Qube[];
}

function selfAndChain(model: Model, q: Qube): Qube[] {
  const out = [q];
  const seen = new Set([q.name]);
  for (let n = netvmName(model, q); n !== null && !seen.has(n); ) {
    const up = model.qubes.get(n);
    if (!up) break;
    seen.add(n);
    out.push(up);
    n = netvmName(model, up);
  }
  return out;
}

export function connectionPath(model: Model, from: string, to: string): ConnPath | null {
  const a = model.qubes.get(from);
  const b = model.qubes.get(to);
  if (!a || !b) return null;
  const ua = selfAndChain(model, a);
  const ub = selfAndChain(model, b);
  const ia = ua.findIndex((q) => ub.includes(q));
  if (ia < 0) return null;
  const x = ua[ia]!;
  const ib = ub.indexOf(x);
  return { a, b, up: ua.slice(1, ia), x, down: ub.slice(1, ib).reverse() };
}

/** The netvms a forward to q crosses, top first ([] when q has no netvm). */
export function forwardPath(model: Model, q: Qube): Qube[] {
  return selfAndChain(model, q).slice(1).reverse();
}
