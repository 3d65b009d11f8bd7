// The questions users ask of a policy — can A reach B, who can reach whom, what would this change
// open or close — answered by compiling the model and running probes through the simulator. Every
// "would this packet pass" in qnet goes through here and simulate(), never a second evaluator.
import type { Resolutions } from '../compile/dns.js';
import type { Ruleset } from '../ir/types.js';
import { isNetworked, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { formatV4, parseV4 } from '../model/ip.js';
import type { NetPlan } from '../model/netplan.js';
import { VIRTUAL_DNS, WORLD_NODE as OUTSIDE_NODE } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { effectiveRules } from '../model/rule.js';
import { planNetwork } from '../model/topology.js';
import type { Probe } from './packet.js';
import { OUTSIDE, OUTSIDE_HOST, simulate, type SimOptions, type SimResult } from './walk.js';
import { describeOrigin, type Origin } from '../model/origin.js';

/** A compiled policy to ask questions of (ops/analysis.ts makes one: the simulator does not compile). */
export interface Analysis {
  model: Model;
  plan: NetPlan;
  rulesets: Map<string, Ruleset>;
  diagnostics: Diagnostic[];
  resolutions: Resolutions;
}


/** One probe through the analysed policy: traced, with the reply leg, unless `opts` say otherwise. */
export function ask(a: Analysis, probe: Probe, opts?: SimOptions): SimResult {
  return simulate({ plan: a.plan, rulesets: a.rulesets }, probe, undefined, opts);
}

/** For questions that only need the verdict (and the deciding rule): no hops, no reply leg. */
const VERDICT_ONLY: SimOptions = { trace: false, reply: false };

/** The rule or policy of `qube`'s own that refuses `probe`, when its own rules are what refuses it. */
export function ownRefusal(a: Analysis, qube: string, probe: Probe): Origin | undefined {
  const r = ask(a, probe, VERDICT_ONLY);
  const o = r.verdict === 'accept' ? undefined : r.by?.origin;
  return o && (o.kind === 'rule' || o.kind === 'rules' || o.kind === 'policy') && o.qube === qube ? o : undefined;
}

// ---- Turning what users type into probes ---------------------------------------------------

export type Target =
  | { kind: 'qube'; name: string; addrs: string[] }
  | { kind: 'address'; addrs: string[] }
  | { kind: 'name'; name: string; addrs: string[]; error?: string };

const V4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The first usable address of a CIDR (network + 1 where there is room), or the address itself. */
export function representative(cidr: string): string {
  const [addr, lenText] = cidr.split('/');
  const n = lenText === undefined ? undefined : parseV4(addr!);
  if (n === undefined) return addr!;
  const len = Number(lenText);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const net = (n & mask) >>> 0;
  return formatV4(len <= 30 ? net + 1 : net);
}

/** DST as typed: a qube, `outside`, an address, a CIDR, or a DNS name (looked up in `resolutions`). */
export function resolveTarget(model: Model, dst: string, resolutions: Resolutions): Target {
  const q = model.qubes.get(dst);
  if (q) return { kind: 'qube', name: dst, addrs: [qubeIp(model, q), qubeIp6(model, q)].filter((x): x is string => !!x) };
  if (dst === OUTSIDE) return { kind: 'address', addrs: [OUTSIDE_HOST[4]] };
  if (V4.test(dst.split('/')[0]!) || dst.includes(':')) return { kind: 'address', addrs: [representative(dst)] };
  const r = resolutions.get(dst);
  return { kind: 'name', name: dst, addrs: r ? [...r.a, ...r.aaaa] : [], ...(r?.error ? { error: r.error } : !r ? { error: 'not resolved' } : {}) };
}

/**
 * Where the outside sends to reach a qube: the uplink addresses of the netvm at the top of its
 * chain (its port forwards DNAT from there), in the plan; none when no uplink leads to it. The
 * outside cannot address a qube's internal 10.137.x.y (nothing routes it there).
 */
export function outsideAddrs(a: Analysis, qube: string): string[] {
  let q = a.model.qubes.get(qube);
  const seen = new Set<string>();
  while (q && !seen.has(q.name)) {
    seen.add(q.name);
    const node = a.plan.nodes.find((n) => n.name === q!.name);
    const up = node?.ifaces.find((i) => i.group === 1 && i.peer?.node === OUTSIDE_NODE);
    if (up) return up.addrs.map((x) => x.addr).filter((x) => !x.includes(':'));
    const nv = netvmName(a.model, q);
    q = nv === null ? undefined : a.model.qubes.get(nv);
  }
  return [];
}

// ---- Who can reach whom ----------------------------------------------------------------------

export interface MatrixOptions {
  proto: 'tcp' | 'udp' | 'icmp';
  port?: number;
}

export interface Matrix {
  sources: string[];
  destinations: string[];
  /** verdict[source][destination]; `-` on the diagonal. */
  cells: Record<string, Record<string, 'accept' | 'drop' | 'reject' | '-'>>;
}

export function reachabilityMatrix(a: Analysis, o: MatrixOptions): Matrix {
  const qubes = [...a.model.qubes.values()]
    .filter((q) => isNetworked(a.model, q) || q.netvm === null)
    .sort((x, y) => (x.name < y.name ? -1 : 1))
    .map((q) => q.name);
  const sources = [...qubes, OUTSIDE];
  const destinations = [...qubes, OUTSIDE];
  const cells: Matrix['cells'] = {};
  for (const s of sources) {
    cells[s] = {};
    for (const d of destinations) {
      if (s === d) {
        cells[s]![d] = '-';
        continue;
      }
      const to = d === OUTSIDE ? OUTSIDE_HOST[4] : s === OUTSIDE ? (outsideAddrs(a, d)[0] ?? null) : qubeIp(a.model, a.model.qubes.get(d)!);
      const from = s === OUTSIDE || isNetworked(a.model, a.model.qubes.get(s)!);
      if (!to || !from) {
        cells[s]![d] = 'drop';
        continue;
      }
      const r = ask(a, { from: s, to, proto: o.proto, ...(o.port !== undefined && o.proto !== 'icmp' ? { dport: o.port } : {}) }, VERDICT_ONLY);
      // From the outside a qube is asked for at its uplink's address, which a port forward may hand
      // to another qube: that reaches the other qube, not this one.
      cells[s]![d] = r.verdict === 'accept' && d !== OUTSIDE && r.node !== d ? 'drop' : r.verdict;
    }
  }
  return { sources, destinations, cells };
}

// ---- What a change opens and closes ----------------------------------------------------------

export interface VerdictChange {
  probe: Probe;
  before: SimResult['verdict'];
  after: SimResult['verdict'];
  /** The rule that decides after the change, when one does. */
  by?: string;
}

/**
 * Probes that tell two policies apart: from every networked qube and the outside, to every qube,
 * every address and name the rules mention, the virtual DNS resolvers and one outside host, on
 * every port the rules mention (and 80, 443), for tcp, udp and icmp.
 */
export function probeSet(models: Model[], resolutions: Resolutions, now: number): Probe[] {
  const sources = new Set<string>([OUTSIDE]);
  const dsts = new Set<string>([OUTSIDE_HOST[4], ...VIRTUAL_DNS]);
  const ports = new Set<number>([53, 80, 443]);
  for (const m of models)
    for (const q of m.qubes.values()) {
      if (!isNetworked(m, q)) continue;
      sources.add(q.name);
      const ip = qubeIp(m, q);
      if (ip) dsts.add(ip);
      for (const r of effectiveRules(q.rules, now)) {
        if (r.dstports) ports.add(r.dstports.start).add(r.dstports.end);
        if (r.dsthost?.type === 'dst4') dsts.add(representative(r.dsthost.text));
        if (r.dsthost?.type === 'dsthost') for (const a of resolutions.get(r.dsthost.text)?.a ?? []) dsts.add(a);
      }
    }
  // Connections and port forwards: their ports, and the top netvms' uplink addresses the outside
  // sends to (a forward is reached there, never at the qube's internal address).
  for (const m of models) {
    for (const c of m.connections ?? []) if (c.ports) ports.add(c.ports.start).add(c.ports.end);
    for (const f of m.forwards ?? []) ports.add(f.port);
    if (m.forwards?.length)
      for (const n of planNetwork(m, { uplink: 'world' }).nodes)
        for (const i of n.ifaces) if (i.group === 1 && i.peer?.node === OUTSIDE_NODE) for (const x of i.addrs) if (!x.addr.includes(':')) dsts.add(x.addr);
  }
  const out: Probe[] = [];
  for (const from of sources)
    for (const to of dsts) {
      out.push({ from, to, proto: 'icmp' });
      for (const proto of ['tcp', 'udp'] as const) for (const dport of ports) out.push({ from, to, proto, dport });
    }
  return out;
}

export function verdictChanges(before: Analysis, after: Analysis, probes: readonly Probe[]): VerdictChange[] {
  const out: VerdictChange[] = [];
  const known = (a: Analysis, p: Probe) => p.from === OUTSIDE || a.model.qubes.has(p.from);
  for (const p of probes) {
    const b = known(before, p) ? ask(before, p, VERDICT_ONLY).verdict : 'drop';
    if (!known(after, p)) {
      if (b === 'accept') out.push({ probe: p, before: b, after: 'drop' });
      continue;
    }
    const r = ask(after, p, VERDICT_ONLY);
    if ((b === 'accept') !== (r.verdict === 'accept'))
      out.push({ probe: p, before: b, after: r.verdict, ...(r.by ? { by: describeOrigin(r.by.origin) } : {}) });
  }
  return out;
}

export function describeProbe(p: Probe): string {
  const what = p.proto === 'icmp' ? 'icmp' : `${p.proto}/${p.dport}`;
  return `${p.from} → ${p.to} ${what}`;
}
