// Conntrack flows in a qube's namespace: list them, and delete one precisely (DESIGN: tightening a
// rule cuts established flows it no longer allows, as Qubes R4.2 does). Ports are numbers and are
// compared as numbers — Qubes' is_blocked compares them as strings (EXAMPLES §7), a bug not copied.
import { isIP } from 'node:net';
import { CommandError, runChecked, type Runner } from './runner.js';
import { classifyCommandError, CODES, NetnsError } from './links.js';
import { diag } from '../../model/diagnostics.js';

export interface Tuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP type/code/id. */
  type?: number;
  code?: number;
  id?: number;
}

export interface Flow extends Tuple {
  family: 4 | 6;
  /** `tcp`, `udp`, `icmp`, `icmpv6`, … as conntrack names it. */
  proto: string;
  protoNum: number;
  /** Seconds until the entry expires. */
  timeout: number;
  /** TCP state (`ESTABLISHED`, `TIME_WAIT`, …), absent for other protocols. */
  state?: string;
  /** The expected reply tuple (differs from the swapped original under NAT). */
  reply: Tuple;
  /** `ASSURED`, `UNREPLIED`, … */
  flags: string[];
  mark?: number;
  zone?: number;
}

const TUPLE_KEYS = new Set(['src', 'dst', 'sport', 'dport', 'type', 'code', 'id']);

function setTuple(t: Partial<Tuple>, key: string, value: string): void {
  if (key === 'src' || key === 'dst') t[key] = value;
  else (t as Record<string, number>)[key] = Number(value);
}

/**
 * One line of `conntrack -L` (default output):
 * `tcp 6 431999 ESTABLISHED src=… dst=… sport=… dport=… src=… dst=… sport=… dport=… [ASSURED] mark=0 use=1`
 */
export function parseFlowLine(line: string, family: 4 | 6): Flow | undefined {
  const tok = line.trim().split(/\s+/);
  if (tok.length < 4 || !/^\d+$/.test(tok[1] ?? '') || !/^\d+$/.test(tok[2] ?? '')) return undefined;
  const flow: Partial<Flow> & { flags: string[] } = { family, proto: tok[0]!, protoNum: Number(tok[1]), timeout: Number(tok[2]), flags: [] };
  const orig: Partial<Tuple> = {};
  const reply: Partial<Tuple> = {};
  let cur: Partial<Tuple> | undefined;
  let srcSeen = 0;
  for (const t of tok.slice(3)) {
    const flag = /^\[(\w+)\]$/.exec(t);
    if (flag) {
      flow.flags.push(flag[1]!);
      continue;
    }
    const eq = t.indexOf('=');
    if (eq < 0) {
      if (srcSeen === 0) flow.state = t;
      continue;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    if (key === 'src') cur = ++srcSeen === 1 ? orig : srcSeen === 2 ? reply : undefined;
    if (TUPLE_KEYS.has(key) && cur) setTuple(cur, key, value);
    else if (key === 'mark' || key === 'zone') flow[key] = Number(value);
    if (!TUPLE_KEYS.has(key)) cur = undefined;
  }
  if (orig.src === undefined || orig.dst === undefined || reply.src === undefined || reply.dst === undefined) return undefined;
  return { ...(flow as Flow), ...(orig as Tuple), reply: reply as Tuple };
}

function parseFlows(stdout: string, family: 4 | 6): Flow[] {
  return stdout
    .split('\n')
    .map((l) => parseFlowLine(l, family))
    .filter((f): f is Flow => f !== undefined);
}

export async function listFlows(runner: Runner, ns: string, family: 4 | 6, qube?: string): Promise<Flow[]> {
  const out = await runChecked(runner, ['conntrack', '-L', '-f', family === 4 ? 'ipv4' : 'ipv6'], { netns: ns }).catch((e) => {
    throw classifyCommandError(e, qube);
  });
  return parseFlows(out, family);
}

/** What identifies flows to delete: the original direction's addresses, protocol and ports. */
export interface FlowSelector {
  proto: string;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

const PROTO = /^[a-z0-9-]+$/;

export function deleteArgv(sel: FlowSelector): string[] {
  const fam = isIP(sel.src);
  if (!fam || isIP(sel.dst) !== fam || !PROTO.test(sel.proto))
    throw new NetnsError(diag(CODES.invalidName, `invalid flow selector ${JSON.stringify(sel)}`));
  const argv = ['conntrack', '-D', '-f', fam === 4 ? 'ipv4' : 'ipv6', '-p', sel.proto, '--orig-src', sel.src, '--orig-dst', sel.dst];
  for (const [opt, port] of [['--orig-port-src', sel.sport], ['--orig-port-dst', sel.dport]] as const) {
    if (port === undefined) continue;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NetnsError(diag(CODES.invalidName, `invalid port ${port}`));
    argv.push(opt, String(port));
  }
  return argv;
}

/** Delete matching flows; returns how many were deleted (0 is not an error). */
export async function deleteFlows(runner: Runner, ns: string, sel: FlowSelector, qube?: string): Promise<number> {
  const argv = deleteArgv(sel);
  const r = await runner.run(argv, { netns: ns });
  // conntrack exits 1 when nothing matched; its summary line goes to stderr either way.
  const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
  if (m) return Number(m[1]);
  if (r.code === 0) return parseFlows(r.stdout, isIP(sel.src) as 4 | 6).length;
  // The flow ended between listing and deleting it (the differential test hit this race): gone is gone.
  if (/such conntrack doesn't exist/.test(r.stderr)) return 0;
  throw classifyCommandError(new CommandError(argv, r, ns), qube);
}
