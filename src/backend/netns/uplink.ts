// The host's side of the real uplinks: the only code in qnet that changes the host's own (root)
// network namespace, and only in these ways:
//
//   veth-host  the host end of each top netvm's veth (`qnh<tag>-<qid>`, made by the plan's `host`
//              batch in links.ts, gone with the netvm's namespace), plus, while at least one such
//              link exists: net.ipv4.ip_forward=1 and one nft table of qnet's own,
//              `ip qnet-uplink-<tag>`, that masquerades the link range out of the host's other
//              interfaces and keeps new connections from being forwarded into the links. No other
//              table is read, flushed or changed; the host's ruleset is never flushed.
//   move:DEV   `ip link set dev DEV netns <top netvm>`. When that namespace is deleted the kernel
//              moves DEV back to the initial namespace by itself, under the same name.
//
// <tag> is hostLinkTag(namespace prefix): two qnet instances never share an interface or a table.
import { HOST_LINK } from '../../model/topology.js';
import { diag } from '../../model/diagnostics.js';
import { parseV4 } from '../../model/ip.js';
import { CommandError, isNotFound, runChecked, type Runner } from './runner.js';
import { classifyCommandError, CODES, NetnsError, type Naming } from './links.js';
import { sysctlArgv } from './sysctl.js';

/** qnet's own host table for the `veth-host` uplink of one namespace prefix. */
export const hostTableName = (tag: string) => `qnet-uplink-${tag}`;

/** The host's interfaces of this prefix's `veth-host` links, as an nft wildcard and as a test. */
const hostIfacePattern = (tag: string) => `qnh${tag}-*`;
const isHostIface = (tag: string, name: string) => name.startsWith(`qnh${tag}-`);

/** What the host needs for forwarding the links (one process). */
const HOST_FORWARDING = { 'net.ipv4.ip_forward': 1 } as const;

/**
 * The host table as one atomic `nft -f`: create-if-missing, delete, define — so loading it again
 * replaces it exactly, and nothing outside it is touched.
 */
export function hostTableText(tag: string): string {
  const t = `ip ${hostTableName(tag)}`;
  const mine = hostIfacePattern(tag);
  return [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${HOST_LINK.range} oifname != "qnh*" masquerade`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    iifname "${mine}" accept`,
    `    oifname "${mine}" ct state established,related accept`,
    `    oifname "${mine}" drop`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

function hostError(what: string, e: unknown): unknown {
  const c = classifyCommandError(e);
  if (!(c instanceof NetnsError) || c.code === CODES.toolMissing) return c;
  return new NetnsError(
    diag(CODES.hostUplink, `uplink veth-host: cannot ${what} on the host: ${(e as Error).message}`, {
      hint: 'qnet needs root in the host namespace for the veth-host uplink',
    }),
    { cause: e },
  );
}

/** Forwarding on and qnet's table loaded (idempotent): before the first link to the host is made. */
export async function ensureHostUplink(runner: Runner, tag: string): Promise<void> {
  await runChecked(runner, sysctlArgv(HOST_FORWARDING)).catch((e) => {
    throw hostError('turn on net.ipv4.ip_forward', e);
  });
  await runChecked(runner, ['nft', '-f', '-'], { stdin: hostTableText(tag) }).catch((e) => {
    throw hostError(`load table ${hostTableName(tag)}`, e);
  });
}

/**
 * Whether deleting the namespaces `going` takes the last `veth-host` link of this prefix away.
 * Asked before they are deleted (link-netnsids still name them). A host interface counts as staying
 * while its peer is one of our namespaces that is not going; a peer with no name is a namespace on
 * its way out (a deleted namespace's veths vanish ~10 ms later).
 */
export async function lastHostLinkGoes(runner: Runner, naming: Naming, tag: string, going: ReadonlySet<string>): Promise<boolean> {
  const [links, ids] = await Promise.all([
    runChecked(runner, ['ip', '-j', 'link', 'show', 'type', 'veth']),
    runChecked(runner, ['ip', '-j', 'netns', 'list-id']),
  ]).catch((e) => {
    throw hostError('list its veth interfaces', e);
  });
  const names = new Map((JSON.parse(ids || '[]') as { nsid: number; name?: string }[]).map((x) => [x.nsid, x.name]));
  const mine = (JSON.parse(links || '[]') as { ifname: string; link_netnsid?: number }[]).filter((l) => isHostIface(tag, l.ifname));
  const peerNs = (l: { link_netnsid?: number }) => (l.link_netnsid === undefined ? undefined : names.get(l.link_netnsid));
  const stays = mine.some((l) => {
    const ns = peerNs(l);
    return ns !== undefined && naming.node(ns) !== undefined && !going.has(ns);
  });
  const goes = mine.some((l) => {
    const ns = peerNs(l);
    return ns !== undefined && going.has(ns);
  });
  return goes && !stays;
}

/** Remove qnet's host table (a table already gone is not an error). Forwarding is left on. */
export async function releaseHostUplink(runner: Runner, tag: string): Promise<void> {
  const argv = ['nft', 'delete', 'table', 'ip', hostTableName(tag)];
  const r = await runner.run(argv);
  if (r.code !== 0 && !isNotFound(r.stderr)) throw hostError(`delete table ${hostTableName(tag)}`, new CommandError(argv, r));
}

/**
 * move:DEV — move the physical interface into a fresh top netvm. If it is not in the host's
 * namespace, say where it is: another of our namespaces (only one top netvm can own it), or nowhere.
 */
export async function moveDevice(runner: Runner, naming: Naming, move: { node: string; ns: string; dev: string }, live: readonly string[]): Promise<void> {
  const argv = ['ip', 'link', 'set', 'dev', move.dev, 'netns', move.ns];
  const r = await runner.run(argv);
  if (r.code === 0) return;
  if (!/Cannot find device|does not exist/i.test(r.stderr))
    throw new NetnsError(diag(CODES.uplinkDevice, `uplink move:${move.dev}: cannot move ${move.dev} into ${move.node}: ${new CommandError(argv, r).message}`, { qube: move.node }), {
      cause: new CommandError(argv, r),
    });
  const node = await deviceOwner(runner, naming, move.dev, live.filter((n) => n !== move.node));
  if (node !== undefined)
    throw new NetnsError(
      diag(CODES.uplinkDevice, `uplink move:${move.dev}: ${move.dev} already belongs to ${node}; only one top netvm can own it`, {
        qube: move.node,
        hint: `stop ${node} first (its namespace going gives ${move.dev} back to the host), or give ${move.node} a netvm`,
      }),
    );
  throw new NetnsError(
    diag(CODES.uplinkDevice, `uplink move:${move.dev}: the host has no network interface ${move.dev}`, {
      qube: move.node,
      hint: `see \`ip link\` for the host's interfaces, then \`qnet qubes-prefs uplink move:<name>\``,
    }),
  );
}

/** Which of these nodes' namespaces holds `dev` now (read-only: one `ip -n NS link show` each). */
export async function deviceOwner(runner: Runner, naming: Naming, dev: string, nodes: readonly string[]): Promise<string | undefined> {
  for (const node of nodes) {
    const r = await runner.run(['ip', '-n', naming.ns(node), 'link', 'show', 'dev', dev]);
    if (r.code === 0) return node;
  }
  return undefined;
}

// ---- The host's resolvers (the top netvm's DNS upstream for a real uplink) ----------------------

/** systemd-resolved's stub, which only answers on the host's loopback. */
const RESOLVED_STUB = '127.0.0.53';
export const RESOLV_CONF = '/etc/resolv.conf';
/** systemd-resolved's list of the real upstream servers. */
export const RESOLVED_UPSTREAM_CONF = '/run/systemd/resolve/resolv.conf';

/** The `nameserver` addresses of a resolv.conf, in order. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Addresses a top netvm can DNAT to: IPv4 (as Qubes' qubes-setup-dnat-to-ns), not loopback, unique. */
export function usableUpstream(servers: readonly string[]): string[] {
  const ok = servers.filter((s) => {
    const n = parseV4(s);
    return n !== undefined && n >>> 24 !== 127 && n >>> 24 !== 0;
  });
  return [...new Set(ok)];
}

/**
 * The host's resolvers: /etc/resolv.conf, or systemd-resolved's upstream list when resolv.conf
 * names only the 127.0.0.53 stub (which a netvm's namespace cannot reach). Never loopback addresses;
 * unreadable files count as empty (the top netvm then refuses DNS, as Qubes does with no servers).
 */
export function hostUpstreamDns(read: (path: string) => string | undefined): string[] {
  const main = parseResolvConf(read(RESOLV_CONF) ?? '');
  const onlyStub = main.length > 0 && main.every((s) => s === RESOLVED_STUB);
  return usableUpstream(onlyStub ? parseResolvConf(read(RESOLVED_UPSTREAM_CONF) ?? '') : main);
}
