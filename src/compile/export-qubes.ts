// Connections and port forwards as the scripts a real Qubes user installs (issue 10 item 5; the manual
// procedures of reference qubes-networking-and-users.md §1.5, §1.7 and where their rules go, §1.4;
// the base ruleset they sit in, qubes-firewall.md §4.6, §5.2). Pure: model → text.
//
// Each qube on a path gets its share, derived exactly as passes/links.ts derives qnet's own rules, so
// the scripts give the same reachability:
//   net/firewall qubes  /rw/config/qubes-firewall-user-script: forward accepts (and upward guards) in
//                       chain `qnet-forward`, jumped from `custom-forward`; DNAT in `qnet-dnat` (nat,
//                       prerouting dstnat); input accepts in `qnet-input`, jumped from `custom-input`.
//   other qubes         /rw/config/rc.local: input accepts in `qnet-input`.
// A script holds all of its qube's share (it flushes and refills qnet's own chains), never only the
// selected links', so running one never removes another link's rules. Idempotent: the chains are
// declared (created when missing), flushed and refilled in one nft transaction, and the jump from the
// user chain is added only when missing. A failing script exits non-zero before adding any jump it
// has not checked: it opens nothing it was not asked to.
//
// What differs from qnet's kernel rules, because a Qubes user's script cannot know it: the top netvm's
// uplink address (a script matches `fib daddr type local` instead: what is sent to the netvm itself),
// running states (Qubes addresses come from qids, so every path is written), and a connection whose
// path goes down through a netvm below the common one: that needs a route and an antispoof element
// naming the vif of a domain id Qubes changes on every start, so it is refused (QNET4007).
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import { checkConnectionShape, checkForwardShape, connectionPath, connectionsOf, describeConnection, forwardPath, forwardsOf, type Connection, type PortForward } from '../model/connection.js';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import type { Model, Qube } from '../model/qube.js';
import { canonicalAddr, formatAddr, toPrefix } from './addr.js';
import type { IpFamily } from './context.js';

export type ScriptName = 'qubes-firewall-user-script' | 'rc.local';

export interface ExportFile {
  qube: string;
  /** Where it goes under /rw/config/ in the qube. */
  path: ScriptName;
  text: string;
}

export interface ExportOptions {
  /** Only links whose path touches one of these qubes (all when empty or absent). */
  qubes?: readonly string[];
  /** R4.1: iptables/ip6tables instead of nft. */
  iptables?: boolean;
}

/** One rule, before it is written in either dialect. */
export interface XRule {
  chain: 'forward' | 'input' | 'dnat';
  /** Source ranges (one or more, as CIDR or address); absent = any. */
  src?: string[];
  dst?: string;
  /** icmp; or tcp/udp with an optional port range. */
  proto?: 'tcp' | 'udp' | 'icmp';
  ports?: { start: number; end: number };
  /** `iifgroup 1`, interface names, or `fib daddr type local` on the uplink group. */
  iifgroup?: number;
  iifnames?: string[];
  local?: boolean;
  oifgroup?: number;
  ctDnat?: boolean;
  verdict: { kind: 'accept' } | { kind: 'drop' } | { kind: 'dnat'; addr: string; port: number };
  /** `connection c1`, `forward f2`. */
  origin: string;
}

/** Every qube's share of every connection and forward, per family (key `<family> <qube>`). */
export interface Shares {
  rules: Map<string, XRule[]>;
  diagnostics: Diagnostic[];
  /** The qubes on each link's path, by link id. */
  members: Map<string, string[]>;
}

const FAMILIES: readonly IpFamily[] = ['ip', 'ip6'];

const addrOf = (m: Model, f: IpFamily, q: Qube): string | null => {
  const a = f === 'ip' ? qubeIp(m, q) : qubeIp6(m, q);
  if (a === null || toPrefix(a) === null || a.includes(':') !== (f === 'ip6')) return null;
  return canonicalAddr(a);
};

/** Derive each qube's share (passes/links.ts, minus what only the running system knows). */
export function exportShares(model: Model): Shares {
  const rules = new Map<string, XRule[]>();
  const diagnostics: Diagnostic[] = [];
  const members = new Map<string, string[]>();
  const at = (f: IpFamily, q: string) => {
    let r = rules.get(`${f} ${q}`);
    if (!r) rules.set(`${f} ${q}`, (r = []));
    return r;
  };
  for (const c of connectionsOf(model)) {
    const bad = checkConnectionShape(c);
    if (bad) {
      diagnostics.push(bad);
      continue;
    }
    const dirs: [string, string][] = c.bothWays ? [[c.from, c.to], [c.to, c.from]] : [[c.from, c.to]];
    const paths = dirs.map(([a, b]) => connectionPath(model, a, b));
    const why = paths.some((p) => p === null)
      ? `${c.from} and ${c.to} share no netvm`
      : paths.some((p) => p!.down.length > 0)
        ? `its path goes down through ${paths.find((p) => p!.down.length)!.down[0]!.name}, which needs a route and an antispoof element naming a vif Qubes renumbers on every start`
        : null;
    if (why) {
      diagnostics.push(diag('QNET4007', `connection ${c.id} (${describeConnection(c)}) is not exported: ${why}`, { hint: 'give both qubes the same netvm, or use qvm-connect-tcp (qubes.ConnectTCP)' }));
      continue;
    }
    const names = new Set<string>();
    for (const p of paths) for (const q of [p!.a, ...p!.up, p!.x, p!.b]) names.add(q.name);
    members.set(c.id, [...names]);
    for (const f of FAMILIES) connectionShare(model, f, c, paths.map((p) => p!), at);
  }
  // Guards after every accept of their hop, once each (links.ts does the same).
  for (const list of rules.values()) reorderGuards(list);
  for (const fw of forwardsOf(model)) {
    const bad = checkForwardShape(fw);
    if (bad) {
      diagnostics.push(bad);
      continue;
    }
    const q = model.qubes.get(fw.qube);
    if (!q) continue;
    const hops = forwardPath(model, q);
    if (!hops.length) {
      diagnostics.push(diag('QNET4007', `forward ${fw.id} (${fw.proto}/${fw.port} to ${fw.qube}) is not exported: ${fw.qube} has no netvm`));
      continue;
    }
    members.set(fw.id, [...hops.map((h) => h.name), q.name]);
    for (const f of FAMILIES) forwardShare(model, f, fw, q, hops, at);
  }
  return { rules, diagnostics, members };
}

const GUARD = 'guard';
type Tagged = XRule & { [GUARD]?: true };

function reorderGuards(list: XRule[]): void {
  const seen = new Set<string>();
  const accepts = list.filter((r) => !(r as Tagged)[GUARD]);
  const guards = list.filter((r) => (r as Tagged)[GUARD]).filter((r) => {
    const k = JSON.stringify({ ...r, origin: '' });
    return seen.has(k) ? false : (seen.add(k), true);
  });
  list.splice(0, list.length, ...accepts, ...guards.map(({ [GUARD]: _, ...r }: Tagged) => r));
}

function l4(c: Connection): Pick<XRule, 'proto' | 'ports'> {
  return { ...(c.proto ? { proto: c.proto } : {}), ...(c.ports ? { ports: { start: c.ports.start, end: c.ports.end } } : {}) };
}

function connectionShare(
  m: Model,
  f: IpFamily,
  c: Connection,
  paths: NonNullable<ReturnType<typeof connectionPath>>[],
  at: (f: IpFamily, q: string) => XRule[],
): void {
  const origin = `connection ${c.id}`;
  for (const p of paths) {
    const ipA = addrOf(m, f, p.a);
    const ipB = addrOf(m, f, p.b);
    if (ipA === null || ipB === null || !p.up.every((h) => addrOf(m, f, h) !== null)) continue;
    let src = ipA;
    for (const hop of p.up) {
      const r = at(f, hop.name);
      r.push({ chain: 'forward', src: [src], dst: ipB, ...l4(c), oifgroup: 1, verdict: { kind: 'accept' }, origin });
      r.push({ chain: 'forward', dst: ipB, ...l4(c), oifgroup: 1, verdict: { kind: 'drop' }, origin, [GUARD]: true } as Tagged);
      src = addrOf(m, f, hop)!;
    }
    // X forwards it down to B (its client) unless X is A (local output) or B itself (input).
    if (p.x !== p.a && p.x !== p.b) at(f, p.x.name).push({ chain: 'forward', src: [src], dst: ipB, ...l4(c), verdict: { kind: 'accept' }, origin });
    at(f, p.b.name).push({ chain: 'input', src: [src], ...l4(c), verdict: { kind: 'accept' }, origin });
  }
}

function forwardShare(m: Model, f: IpFamily, fw: PortForward, q: Qube, hops: Qube[], at: (f: IpFamily, q: string) => XRule[]): void {
  const origin = `forward ${fw.id}`;
  const ipQ = addrOf(m, f, q);
  if (ipQ === null) return;
  if (!hops.every((h) => addrOf(m, f, h) !== null)) return;
  const fromF = fw.from.filter((x) => x.includes(':') === (f === 'ip6'));
  if (fw.from.length && !fromF.length) return; // only ranges of the other family: nobody here
  const src = fromF.length ? { src: fromF.map(cidrText) } : {};
  const toPort = fw.toPort ?? fw.port;
  hops.forEach((hop, i) => {
    const next = i + 1 < hops.length ? hops[i + 1]! : q;
    const nextIp = addrOf(m, f, next)!;
    const outPort = next === q ? toPort : fw.port;
    // The top: what is sent to itself on its uplink (or --on interfaces); below: what its netvm
    // DNATed to this hop's own address.
    const iif: Partial<XRule> =
      i === 0 ? (fw.on.length ? { iifnames: [...fw.on] } : { iifgroup: 1, local: true }) : { iifgroup: 1, dst: addrOf(m, f, hop)! };
    const r = at(f, hop.name);
    r.push({ chain: 'dnat', ...iif, ...src, proto: fw.proto, ports: { start: fw.port, end: fw.port }, verdict: { kind: 'dnat', addr: nextIp, port: outPort }, origin });
    const fwdIif = iif.iifnames ? { iifnames: iif.iifnames } : { iifgroup: 1 };
    r.push({ chain: 'forward', ...fwdIif, ...src, dst: nextIp, proto: fw.proto, ports: { start: outPort, end: outPort }, ctDnat: true, verdict: { kind: 'accept' }, origin });
  });
  at(f, q.name).push({ chain: 'input', ...src, proto: fw.proto, ports: { start: toPort, end: toPort }, verdict: { kind: 'accept' }, origin });
}

/** `192.0.2.0/24` with host bits cleared, a host without `/32`. */
function cidrText(c: string): string {
  const [a, len] = c.split('/');
  const p = toPrefix(a!, len === undefined ? undefined : Number(len))!;
  return p.len === (p.v6 ? 128 : 32) ? formatAddr(p) : `${formatAddr(p)}/${p.len}`;
}

// ---- Selection and files ------------------------------------------------------------------------

/** Which qubes get a script: every qube on a selected link's path. */
export function exportQubes(model: Model, opts: ExportOptions = {}): { files: ExportFile[]; diagnostics: Diagnostic[] } {
  const shares = exportShares(model);
  const diagnostics = [...shares.diagnostics];
  const wanted = opts.qubes?.length ? new Set(opts.qubes) : null;
  const chosen = new Set<string>();
  for (const names of shares.members.values()) if (!wanted || names.some((n) => wanted.has(n))) names.forEach((n) => chosen.add(n));
  for (const n of wanted ?? [])
    if (![...chosen].includes(n)) diagnostics.push(diag('QNET2203', `${n} is on the path of no exportable connection or port forward`, { qube: n }));
  const files: ExportFile[] = [];
  for (const q of [...model.qubes.values()].filter((x) => chosen.has(x.name)).sort((a, b) => a.qid - b.qid)) {
    const net = q.provides_network;
    const fams = FAMILIES.filter((f) => addrOf(model, f, q) !== null);
    const per = fams.map((f) => ({ family: f, rules: shares.rules.get(`${f} ${q.name}`) ?? [] }));
    files.push({
      qube: q.name,
      path: net ? 'qubes-firewall-user-script' : 'rc.local',
      text: opts.iptables ? iptablesScript(q.name, net, per) : nftScript(q.name, net, per),
    });
  }
  return { files, diagnostics };
}

function header(qube: string, net: boolean, dialect: string): string {
  const where = net ? '/rw/config/qubes-firewall-user-script' : '/rw/config/rc.local';
  return [
    '#!/bin/sh',
    `# ${where} of ${qube}: qnet connections and port forwards (${dialect}).`,
    '# Generated by `qnet export qubes` from the addresses and netvms the qubes have NOW: re-export and',
    '# reinstall it in every qube on the path whenever a qube address, a netvm, a qid or a link changes.',
    "# Safe to run twice: it refills qnet's own chains and adds each jump to them only when missing.",
    ...(net ? [] : ['# rc.local runs after the network is up (Qubes docs): these rules only open, they never protect.']),
    'set -e',
  ].join('\n');
}

// ---- nft (R4.2+) --------------------------------------------------------------------------------

const CHAINS_NET = ['qnet-forward', 'qnet-input', 'qnet-dnat'] as const;
const JUMPS: Record<string, string> = { 'qnet-forward': 'custom-forward', 'qnet-input': 'custom-input' };

export function nftRule(f: IpFamily, r: XRule): string {
  const a = f === 'ip' ? 'ip' : 'ip6';
  const out: string[] = [];
  if (r.iifnames) out.push(r.iifnames.length === 1 ? `iifname "${r.iifnames[0]}"` : `iifname { ${r.iifnames.map((n) => `"${n}"`).join(', ')} }`);
  if (r.iifgroup !== undefined) out.push(`iifgroup ${r.iifgroup}`);
  if (r.local) out.push('fib daddr type local');
  if (r.src) out.push(r.src.length === 1 ? `${a} saddr ${r.src[0]}` : `${a} saddr { ${r.src.join(', ')} }`);
  if (r.dst) out.push(`${a} daddr ${r.dst}`);
  if (r.proto === 'icmp') out.push(f === 'ip' ? 'ip protocol icmp' : 'meta l4proto icmpv6');
  else if (r.proto && !r.ports) out.push(`${f === 'ip' ? 'ip protocol' : 'meta l4proto'} ${r.proto}`);
  else if (r.proto && r.ports) out.push(`${r.proto} dport ${portText(r.ports, '-')}`);
  if (r.oifgroup !== undefined) out.push(`oifgroup ${r.oifgroup}`);
  if (r.ctDnat) out.push('ct status dnat');
  out.push('counter');
  const v = r.verdict;
  out.push(v.kind === 'dnat' ? `dnat to ${f === 'ip6' ? `[${v.addr}]` : v.addr}:${v.port}` : v.kind);
  out.push(`comment "qnet ${r.origin}"`);
  return out.join(' ');
}

const portText = (p: { start: number; end: number }, sep: string) => (p.start === p.end ? `${p.start}` : `${p.start}${sep}${p.end}`);

function nftScript(qube: string, net: boolean, per: { family: IpFamily; rules: XRule[] }[]): string {
  const chains = net ? CHAINS_NET : (['qnet-input'] as const);
  const parts = [header(qube, net, 'nftables, Qubes R4.2+')];
  for (const { family, rules } of per) {
    const t = `${family} qubes`;
    const body: string[] = [];
    // Declaring creates what is missing and leaves what exists; then flush and refill, atomically.
    body.push(`table ${t} {`);
    for (const ch of chains)
      body.push(ch === 'qnet-dnat' ? `\tchain ${ch} {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}` : `\tchain ${ch} {\n\t}`);
    body.push('}');
    for (const ch of chains) body.push(`flush chain ${t} ${ch}`);
    const filled = chains.filter((ch) => rules.some((r) => `qnet-${r.chain}` === ch));
    if (filled.length) {
      body.push(`table ${t} {`);
      for (const ch of filled) {
        body.push(`\tchain ${ch} {`);
        for (const r of rules.filter((x) => `qnet-${x.chain}` === ch)) body.push(`\t\t${nftRule(family, r)}`);
        body.push('\t}');
      }
      body.push('}');
    }
    parts.push(`nft -f - <<'QNET'\n${body.join('\n')}\nQNET`);
    for (const ch of chains.filter((c) => JUMPS[c]))
      parts.push(`nft list chain ${t} ${JUMPS[ch]} | grep -Eq '^[[:space:]]*jump ${ch}( |$)' ||\n\tnft add rule ${t} ${JUMPS[ch]} jump ${ch}`);
  }
  return parts.join('\n\n') + '\n';
}

// ---- iptables (R4.1) ----------------------------------------------------------------------------

const IPT_CHAIN = { forward: 'QNET-FWD', input: 'QNET-IN', dnat: 'QNET-DNAT' } as const;
const IPT_HOOK = { forward: 'FORWARD', input: 'INPUT', dnat: 'PREROUTING' } as const;

/** One XRule as iptables-restore lines (a list of sources or interfaces is one line each). */
export function iptablesLines(f: IpFamily, r: XRule): string[] {
  const lines: string[] = [];
  for (const iif of r.iifnames ?? [undefined])
    for (const src of r.src ?? [undefined]) {
      const w: string[] = [`-A ${IPT_CHAIN[r.chain]}`];
      if (iif) w.push(`-i ${iif}`);
      if (r.iifgroup !== undefined) w.push(`-m devgroup --src-group ${r.iifgroup}`);
      if (r.local) w.push('-m addrtype --dst-type LOCAL');
      if (src) w.push(`-s ${src}`);
      if (r.dst) w.push(`-d ${r.dst}`);
      if (r.proto === 'icmp') w.push(f === 'ip' ? '-p icmp' : '-p ipv6-icmp');
      else if (r.proto) w.push(`-p ${r.proto}`, ...(r.ports ? [`--dport ${portText(r.ports, ':')}`] : []));
      if (r.oifgroup !== undefined) w.push(`-m devgroup --dst-group ${r.oifgroup}`);
      if (r.ctDnat) w.push('-m conntrack --ctstate DNAT');
      w.push(`-m comment --comment "qnet ${r.origin}"`);
      const v = r.verdict;
      w.push(v.kind === 'accept' ? '-j ACCEPT' : v.kind === 'drop' ? '-j DROP' : `-j DNAT --to-destination ${f === 'ip6' ? `[${v.addr}]` : v.addr}:${v.port}`);
      lines.push(w.join(' '));
    }
  return lines;
}

function iptablesScript(qube: string, net: boolean, per: { family: IpFamily; rules: XRule[] }[]): string {
  const kinds = net ? (['forward', 'input', 'dnat'] as const) : (['input'] as const);
  const parts = [
    header(qube, net, 'iptables, Qubes R4.1') +
      '\n# As in Qubes R4.1\'s own procedure, the accepts are jumped to first from FORWARD/INPUT.',
  ];
  for (const { family, rules } of per) {
    const cmd = family === 'ip' ? 'iptables' : 'ip6tables';
    const body: string[] = [];
    // A chain declared to iptables-restore --noflush is created when missing and flushed when not.
    const filter = kinds.filter((k) => k !== 'dnat');
    body.push('*filter', ...filter.map((k) => `:${IPT_CHAIN[k]} - [0:0]`));
    for (const k of filter) for (const r of rules.filter((x) => x.chain === k)) body.push(...iptablesLines(family, r));
    body.push('COMMIT');
    if (kinds.includes('dnat' as never)) {
      body.push('*nat', ':QNET-DNAT - [0:0]');
      for (const r of rules.filter((x) => x.chain === 'dnat')) body.push(...iptablesLines(family, r));
      body.push('COMMIT');
    }
    parts.push(`${cmd}-restore --noflush <<'QNET'\n${body.join('\n')}\nQNET`);
    for (const k of kinds) {
      const table = k === 'dnat' ? '-t nat ' : '';
      parts.push(`${cmd} -w ${table}-C ${IPT_HOOK[k]} -j ${IPT_CHAIN[k]} 2>/dev/null ||\n\t${cmd} -w ${table}-I ${IPT_HOOK[k]} 1 -j ${IPT_CHAIN[k]}`);
    }
  }
  return parts.join('\n\n') + '\n';
}
