// NetPlan → namespaces and veth pairs, with as few processes as possible. A spawn costs ~2 ms and
// dominates per-command designs (reference/linux-kernel-notes.md), so a bring-up is:
//   1 × `ip -batch -` with every `netns add`,
//   1 × `ip -n NS -batch -` per namespace, in dependency order: a netvm's batch creates the veth pairs
//       to all its clients (`link add vifN.0 type veth peer name eth0 netns <client>`) and configures
//       its own side; each client's batch then configures eth0 and its routes.
// Nothing is created in the host namespace except for the `veth-host` uplink: veths are born in the
// netvm's namespace with their peer placed directly in the client's. The plan's `host` node is the
// host's own (root) namespace: its batch runs as `ip -batch -` without `-n`; it is always there and
// never created or deleted. `ip -batch` cannot switch namespace per line (kernel notes).
import { readdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { CommandError, runChecked, type Runner } from './runner.js';
import { diag, type Diagnostic } from '../../model/diagnostics.js';
import type { Iface, NetNode, NetPlan, Route } from '../../model/netplan.js';

// ---- Errors ------------------------------------------------------------------------------------

/** Backend failures as readable values (DESIGN: errors users can read). The netns backend's codes are QNET52xx. */
export class NetnsError extends Error {
  constructor(readonly diagnostic: Diagnostic, options?: { cause?: unknown }) {
    super(`${diagnostic.message}${diagnostic.hint ? ` — ${diagnostic.hint}` : ''} (${diagnostic.code})`, options);
    this.name = 'NetnsError';
  }
  get code(): string {
    return this.diagnostic.code;
  }
}

export const CODES = {
  invalidName: 'QNET5201',
  alreadyRunning: 'QNET5202',
  badPlan: 'QNET5203',
  notRunning: 'QNET5204',
  commandFailed: 'QNET5205',
  toolMissing: 'QNET5206',
  nftRejected: 'QNET5210',
  nftNotFound: 'QNET5211',
  uplinkDevice: 'QNET5220',
  hostUplink: 'QNET5221',
} as const;

/** Turn a CommandError into a NetnsError with a stable code; other errors pass through. */
export function classifyCommandError(e: unknown, qube?: string): unknown {
  if (!(e instanceof CommandError)) return e;
  const extra = qube ? { qube } : {};
  if (e.result.code === 127)
    return new NetnsError(diag(CODES.toolMissing, e.message, { ...extra, hint: 'install iproute2, nftables and conntrack' }), { cause: e });
  // `ip netns exec` and `nsenter --net` (the runner's choice for netlink tools) say it differently.
  const missing =
    /Cannot open network namespace "([^"]+)"/.exec(e.result.stderr) ?? /nsenter: cannot open \/run\/netns\/(\S+): No such file/.exec(e.result.stderr);
  if (missing)
    return new NetnsError(diag(CODES.notRunning, `namespace ${missing[1]} does not exist`, { ...extra, hint: 'is the qube running?' }), { cause: e });
  return new NetnsError(diag(CODES.commandFailed, e.message, extra), { cause: e });
}

// ---- Names -------------------------------------------------------------------------------------

export const DEFAULT_PREFIX = 'qnet-';
/** Qubes name rules (DESIGN conventions): letter first, then letters, digits, `_.-`, ≤ 31 chars. */
const NODE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;
/** A prefix becomes part of a file name under /run/netns: no `/`, no spaces, never empty. */
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** IFNAMSIZ is 16 with the NUL; no `/`, `:` (alias syntax) or whitespace. */
const IFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

function invalid(what: string, value: string, hint?: string): never {
  throw new NetnsError(diag(CODES.invalidName, `invalid ${what} ${JSON.stringify(value)}`, hint ? { hint } : {}));
}

/** Whether `name` follows the qube name rule (world.ts checks its namespace name with it). */
export const isNodeName = (name: string): boolean => NODE_NAME.test(name);

function validatePrefix(prefix: string): string {
  return PREFIX.test(prefix) ? prefix : invalid('namespace prefix', prefix, 'letters, digits and _.- only, at most 32');
}
export function validateNodeName(name: string): string {
  return NODE_NAME.test(name) ? name : invalid('qube name', name, 'letter first, then letters, digits, _.-; at most 31');
}
function validateIfaceName(name: string): string {
  return IFACE_NAME.test(name) ? name : invalid('interface name', name, 'at most 15 characters: letters, digits, _.-');
}
function validateAddr(addr: string): string {
  return isIP(addr) ? addr : invalid('address', addr);
}
function validateLen(family: 4 | 6, len: number): number {
  return Number.isInteger(len) && len >= 0 && len <= (family === 4 ? 32 : 128) ? len : invalid('prefix length', String(len));
}

/** Namespace names: `<prefix><qube>`. */
export class Naming {
  readonly prefix: string;
  constructor(prefix = DEFAULT_PREFIX) {
    this.prefix = validatePrefix(prefix);
  }
  ns(node: string): string {
    return this.prefix + validateNodeName(node);
  }
  /** The node a namespace belongs to, or undefined if it is not one of ours. */
  node(ns: string): string | undefined {
    if (!ns.startsWith(this.prefix)) return undefined;
    const name = ns.slice(this.prefix.length);
    return NODE_NAME.test(name) ? name : undefined;
  }
}

/** `ip netns list` prints `name` or `name (id: 3)` per line. */
export function parseNetnsList(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

export { NETNS_DIR } from './netns-dir.js';

/**
 * Our nodes with a live namespace, sorted. Asked before every change (and per relinked client), so
 * with `dir` the directory is read directly rather than spawning `ip netns list` each time; ip is
 * the fallback where it cannot be read (and, with no `dir`, for scripted runners).
 */
export async function listNodes(runner: Runner, naming: Naming, dir?: string): Promise<string[]> {
  const names =
    (dir === undefined ? undefined : await readdir(dir).catch(() => undefined)) ??
    parseNetnsList(
      await runChecked(runner, ['ip', 'netns', 'list']).catch((e) => {
        throw classifyCommandError(e);
      }),
    );
  return names
    .map((ns) => naming.node(ns))
    .filter((n): n is string => n !== undefined)
    .sort();
}

// ---- Links -------------------------------------------------------------------------------------

/** One veth pair. The creator runs `link add` in its namespace and puts the peer end into the other. */
export interface LinkSpec {
  creator: { node: string; iface: string };
  peer: { node: string; iface: string };
}

/**
 * Every veth pair of the plan, once. The upstream side creates it: the vif side (group 2) of a
 * netvm↔client link; for the world↔top-netvm and host↔top-netvm links, the side that is not the
 * uplink (group 1). A physical interface (move:DEV) is no link: it is moved, not made.
 */
export function planLinks(plan: NetPlan): LinkSpec[] {
  const nodes = new Map(plan.nodes.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const links: LinkSpec[] = [];
  for (const n of plan.nodes) {
    for (const i of n.ifaces) {
      if (i.physical) continue;
      if (!i.peer) throw badPlan(`${n.name}:${i.name} has no peer; only veth pairs between namespaces are supported`);
      const other = nodes.get(i.peer.node)?.ifaces.find((x) => x.name === i.peer!.iface);
      if (!other || other.peer?.node !== n.name || other.peer.iface !== i.name)
        throw badPlan(`${n.name}:${i.name} names peer ${i.peer.node}:${i.peer.iface}, which does not name it back`);
      const key = [`${n.name}:${i.name}`, `${i.peer.node}:${i.peer.iface}`].sort().join('|');
      if (seen.has(key)) continue;
      seen.add(key);
      const mine = { node: n.name, iface: i.name };
      const theirs = { node: i.peer.node, iface: i.peer.iface };
      const mineCreates = i.group === 2 || (other.group !== 2 && other.group === 1 && i.group !== 1);
      const theirsCreates = other.group === 2 || (i.group !== 2 && i.group === 1 && other.group !== 1);
      if (mineCreates === theirsCreates) throw badPlan(`cannot tell which side of ${key} is upstream (groups ${i.group}/${other.group})`);
      links.push(mineCreates ? { creator: mine, peer: theirs } : { creator: theirs, peer: mine });
    }
  }
  return links;
}

function badPlan(message: string): NetnsError {
  return new NetnsError(diag(CODES.badPlan, `network plan: ${message}`, { hint: 'this is a bug in the planner' }));
}

// ---- Batch text --------------------------------------------------------------------------------

/** `link add` line for the creator's batch. */
function linkAddLine(l: LinkSpec, naming: Naming): string {
  return `link add ${validateIfaceName(l.creator.iface)} type veth peer name ${validateIfaceName(l.peer.iface)} netns ${naming.ns(l.peer.node)}`;
}

/** Group, up, addresses (IPv6 with `nodad`: otherwise unusable for ~1.8 s, kernel notes). */
export function ifaceLines(i: Iface): string[] {
  const dev = validateIfaceName(i.name);
  const lines = [`link set dev ${dev} group ${i.group} up`];
  for (const a of i.addrs) {
    const fam = isIP(validateAddr(a.addr)) as 4 | 6;
    lines.push(`address add ${a.addr}/${validateLen(fam, a.len)} dev ${dev}${fam === 6 ? ' nodad' : ''}`);
  }
  return lines;
}

function routeLine(r: Route): string {
  const dev = validateIfaceName(r.dev);
  let dst: string;
  if (r.dst === 'default') dst = r.family === 6 ? '::/0' : '0.0.0.0/0';
  else {
    const [addr = '', len = ''] = r.dst.split('/');
    if (isIP(validateAddr(addr)) !== r.family || !/^\d+$/.test(len)) invalid(`IPv${r.family} route destination`, r.dst);
    dst = `${addr}/${validateLen(r.family, Number(len))}`;
  }
  const via = r.via === undefined ? '' : ` via ${validateAddr(r.via)}`;
  return `route add ${dst}${via} dev ${dev}${r.forLink ? ` proto ${LINK_ROUTE_PROTO}` : ''}`;
}

/** The routing protocol number that marks connection routes as qnet's (never a user's own). */
export const LINK_ROUTE_PROTO = 188;

/**
 * The `ip -batch` lines that make a node's connection routes (`proto 188`) exactly `wanted`, given
 * `ip -j -4|-6 route show proto 188` output per family: stale ones deleted, wanted ones replaced.
 */
export function linkRouteLines(existing: readonly { family: 4 | 6; json: string }[], wanted: readonly Route[]): string[] {
  const lines: string[] = [];
  for (const { family, json } of existing) {
    let have: { dst?: unknown }[] = [];
    try {
      const j = JSON.parse(json || '[]') as unknown;
      if (Array.isArray(j)) have = j as { dst?: unknown }[];
    } catch {
      have = [];
    }
    const len = family === 4 ? 32 : 128;
    const want = new Set(wanted.filter((r) => r.family === family).map((r) => r.dst));
    for (const h of have)
      if (typeof h.dst === 'string' && !want.has(`${h.dst}/${len}`)) lines.push(`route del ${validateAddr(h.dst)}/${len} proto ${LINK_ROUTE_PROTO}`);
  }
  for (const r of wanted) lines.push(routeLine(r).replace(/^route add /, 'route replace '));
  return lines;
}

/** On-link routes first: a `via` needs its /32 route to the gateway to exist already (§5.1). */
export function routeLines(routes: readonly Route[]): string[] {
  const sorted = [...routes.filter((r) => r.via === undefined), ...routes.filter((r) => r.via !== undefined)];
  return sorted.map(routeLine);
}

// ---- Bring-up plan -----------------------------------------------------------------------------

export interface NsBatch {
  node: string;
  /** The namespace (empty for the host's). */
  ns: string;
  /** The host's own (root) namespace, the plan's `host` node: `ip` runs without `-n`. */
  host?: true;
  lines: string[];
}

/** A physical interface to move from the host's namespace into a fresh top netvm's (move:DEV). */
export interface DeviceMove {
  node: string;
  ns: string;
  dev: string;
}

/** `ip` in a batch's namespace: `ip -n NS`, or plain `ip` in the host's own (also the benches' naive bring-up). */
export const ipIn = (b: Pick<NsBatch, 'ns' | 'host'>): string[] => (b.host ? ['ip'] : ['ip', '-n', b.ns]);

export interface BringUpSteps {
  /** Namespaces to create (one `ip -batch -` of `netns add`). */
  create: string[];
  /**
   * Existing namespaces that may still hold an interface from a peer's previous life: a deleted
   * namespace's veths vanish asynchronously (~10 ms measured), so a restarted client's
   * `link add vif7.0` could hit "File exists" (measured: 6 of 10 immediate restarts did). Removed
   * first with `ip -force -batch`.
   */
  sweep: NsBatch[];
  /**
   * Physical interfaces to move into fresh namespaces (after their rules are loaded, before the
   * levels: the node's batch puts the interface in its group and up).
   */
  moves: DeviceMove[];
  /** Per-namespace batches; the batches of one level are independent and may run in parallel. */
  levels: NsBatch[][];
  /** Fresh nodes that forward (network-providing qubes, the world). */
  forwarding: string[];
}

export interface BringUpRequest {
  /** Nodes whose namespaces are created now. */
  fresh: readonly string[];
  /** Existing nodes whose uplinks (links where they are the downstream end) are made now (relink). */
  touch?: readonly string[];
  /** Nodes with a live namespace before this call. */
  live: ReadonlySet<string>;
}

/**
 * The pure part of a bring-up: which namespaces, which links, which batch lines, in which order.
 * A link is made when both ends will exist and at least one end is fresh or touched, so bringing a
 * netvm back up reattaches its running clients, and a client behind a halted netvm gets only lo.
 */
export function planBringUp(plan: NetPlan, req: BringUpRequest, naming: Naming): BringUpSteps {
  const nodes = new Map(plan.nodes.map((n) => [n.name, n]));
  const fresh = new Set(req.fresh);
  const touch = new Set(req.touch ?? []);
  const isHost = (n: string) => nodes.get(n)?.kind === 'host';
  for (const name of [...fresh, ...touch]) {
    validateNodeName(name);
    if (!nodes.has(name)) throw badPlan(`${name} is not in the plan`);
    if (isHost(name)) throw badPlan(`${name} is the host's own namespace, which is never created or relinked`);
  }
  for (const name of fresh)
    if (req.live.has(name))
      throw new NetnsError(diag(CODES.alreadyRunning, `namespace ${naming.ns(name)} already exists`, { qube: name, hint: 'tear it down first, or adopt it' }));
  // The host's namespace is always there.
  const present = (n: string) => fresh.has(n) || req.live.has(n) || isHost(n);
  const links = planLinks(plan).filter(
    (l) =>
      present(l.creator.node) &&
      present(l.peer.node) &&
      (fresh.has(l.creator.node) || fresh.has(l.peer.node) || touch.has(l.peer.node)),
  );

  // Interfaces configured in each node now: all linked ifaces of fresh nodes, new ones elsewhere.
  const newIfaces = new Map<string, Set<string>>();
  const addIface = (node: string, iface: string) => {
    const s = newIfaces.get(node) ?? new Set<string>();
    s.add(iface);
    newIfaces.set(node, s);
  };
  const creates = new Map<string, LinkSpec[]>();
  const deps = new Map<string, Set<string>>();
  const sweep = new Map<string, string[]>();
  for (const l of links) {
    addIface(l.creator.node, l.creator.iface);
    addIface(l.peer.node, l.peer.iface);
    creates.set(l.creator.node, [...(creates.get(l.creator.node) ?? []), l]);
    deps.set(l.peer.node, (deps.get(l.peer.node) ?? new Set()).add(l.creator.node));
    // An existing end whose other end is being born can only hold a leftover of the peer's last life.
    for (const [end, other] of [[l.creator, l.peer], [l.peer, l.creator]] as const)
      if (!fresh.has(end.node) && fresh.has(other.node)) sweep.set(end.node, [...(sweep.get(end.node) ?? []), end.iface]);
  }

  // A fresh top netvm's physical uplink (move:DEV) is moved in and configured with its batch.
  const moves: DeviceMove[] = [];
  for (const name of fresh)
    for (const i of nodes.get(name)!.ifaces.filter((x) => x.physical)) {
      moves.push({ node: name, ns: naming.ns(name), dev: validateIfaceName(i.name) });
      addIface(name, i.name);
    }

  const nsOf = (node: NetNode): Pick<NsBatch, 'ns' | 'host'> => (node.kind === 'host' ? { ns: '', host: true } : { ns: naming.ns(node.name) });
  const batches = new Map<string, NsBatch>();
  const batchNodes = new Set<string>([...fresh, ...newIfaces.keys()]);
  for (const name of [...batchNodes].sort(byPlanOrder(plan))) {
    const node = nodes.get(name)!;
    const lines: string[] = [];
    if (fresh.has(name)) lines.push('link set dev lo up');
    for (const l of creates.get(name) ?? []) lines.push(linkAddLine(l, naming));
    const ifs = newIfaces.get(name) ?? new Set<string>();
    for (const i of node.ifaces) if (ifs.has(i.name)) lines.push(...ifaceLines(i));
    // Dynamic routes (DHCP on a physical uplink) are the user's to make.
    lines.push(...routeLines(node.routes.filter((r) => ifs.has(r.dev) && !r.dynamic)));
    batches.set(name, { node: name, ...nsOf(node), lines });
  }

  return {
    create: [...fresh].sort(byPlanOrder(plan)).map((n) => naming.ns(n)),
    sweep: [...sweep].map(([node, ifaces]) => ({
      node,
      ...nsOf(nodes.get(node)!),
      lines: ifaces.map((i) => `link del dev ${validateIfaceName(i)}`),
    })),
    moves,
    levels: levelize(batches, deps),
    forwarding: plan.nodes.filter((n) => fresh.has(n.name) && n.forwarding).map((n) => n.name),
  };
}

function byPlanOrder(plan: NetPlan): (a: string, b: string) => number {
  const idx = new Map(plan.nodes.map((n, i) => [n.name, i]));
  return (a, b) => (idx.get(a) ?? 0) - (idx.get(b) ?? 0);
}

/** Kahn's algorithm: a peer's batch runs after its creators' (they make its interfaces). */
function levelize(batches: Map<string, NsBatch>, deps: Map<string, Set<string>>): NsBatch[][] {
  const levels: NsBatch[][] = [];
  const done = new Set<string>();
  let pending = [...batches.keys()];
  while (pending.length) {
    const ready = pending.filter((n) => [...(deps.get(n) ?? [])].every((d) => done.has(d) || !batches.has(d)));
    if (!ready.length) throw badPlan(`links form a cycle among ${pending.join(', ')}`);
    levels.push(ready.map((n) => batches.get(n)!));
    ready.forEach((n) => done.add(n));
    pending = pending.filter((n) => !done.has(n));
  }
  return levels;
}

// ---- Execution ---------------------------------------------------------------------------------

// runLimited lives in its own module so the resolver's child process can use it without this one.
export { runLimited } from './limit.js';

export async function runBatch(runner: Runner, b: NsBatch): Promise<void> {
  if (!b.lines.length) return;
  await runChecked(runner, [...ipIn(b), '-batch', '-'], { stdin: b.lines.join('\n') + '\n' }).catch((e) => {
    throw classifyCommandError(e, b.node);
  });
}

/** `ip -force -batch`: keep going past missing devices; anything else is a real failure. */
export function runSweep(runner: Runner, b: NsBatch): Promise<void> {
  return forceBatch(runner, [...ipIn(b), '-force', '-batch', '-'], b.lines, /^Cannot find device/, b.node);
}

/** `ip -force -batch` runs every line; a failure counts unless each stderr line is `gone` (or ip's summary). */
async function forceBatch(runner: Runner, argv: string[], lines: readonly string[], gone: RegExp, qube?: string): Promise<void> {
  const r = await runner.run(argv, { stdin: lines.join('\n') + '\n' });
  if (r.code === 0) return;
  const real = r.stderr.split('\n').filter((l) => l.trim() && !gone.test(l) && !/^Command failed/.test(l));
  if (real.length) throw classifyCommandError(new CommandError(argv, r), qube);
}

/** Create namespaces in one `ip -batch -`. */
export async function createNamespaces(runner: Runner, nss: readonly string[]): Promise<void> {
  if (!nss.length) return;
  await runChecked(runner, ['ip', '-batch', '-'], { stdin: nss.map((ns) => `netns add ${ns}`).join('\n') + '\n' }).catch((e) => {
    throw classifyCommandError(e);
  });
}

/**
 * Delete namespaces in one `ip -force -batch -`; a namespace that is already gone is not an error.
 * Deleting a namespace destroys its veths, and with them the peer ends in other namespaces.
 */
export async function deleteNamespaces(runner: Runner, nss: readonly string[]): Promise<void> {
  if (!nss.length) return;
  await forceBatch(
    runner,
    ['ip', '-force', '-batch', '-'],
    nss.map((ns) => `netns del ${ns}`),
    /No such file or directory/,
  );
}

/** Names of a namespace's veths that are not downstream vifs (group 2): its uplinks. */
export function parseUplinks(json: string): string[] {
  const links = JSON.parse(json || '[]') as { ifname: string; group?: string }[];
  return links.filter((l) => l.group !== '2').map((l) => l.ifname);
}
