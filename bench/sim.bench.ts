// Simulator throughput on compiled policies, against a baseline measured in the same run: the same
// model compiled by src/compile in qnet's layout (`ip saddr vmap @dispatch`, rule lists packed into
// sets) and in Qubes' own layout (`layout: 'qubes-linear'`: a linear list of `ip saddr X jump qbs-X`,
// one nft rule per Qubes rule).
//
// What a "verdict" is here — one probe ("can qube qN reach A on tcp/P?") answered:
//   verdicts/s  (a) simulate(world, probe, undefined, { trace: false, reply: false }): the full walk
//               from the app qube (output, postrouting) through sys-firewall and sys-net
//               (prerouting, routing, forward, postrouting, conntrack, NAT) to the outside
//               (prerouting, input), ending in accept/drop/reject and the node that decided. This is
//               what `qnet matrix`, `qnet diff` and the differential tests ask for.
//   hook/s      (b) the netvm's forward decision alone: evalHookPkt() on sys-firewall's forward hook
//               (both of its forward base chains, the dispatch, the client chain) for a pre-parsed
//               packet as the walk hands it over. Checked to agree with (a) on every probe.
//   traced/s    simulate() with the defaults (trace and the reply leg), what `qnet check` shows.
//   rules/pkt   rules evaluated along the whole walk, mean over the probes.
// Probes: a random qube to the target of one of its rules; 1 in 10 to an address nothing allows.
// Each rate is the median of ROUNDS runs, the cases interleaved within a round so that a busy
// machine slows them alike. Rates are per second of this process's CPU time (process.cpuUsage: the
// walk is single-threaded, so that is verdicts/s on a core of its own); wall-clock rates, which a
// loaded machine drags down, are in the JSON line as well, with the load average.
// Run: npx tsx bench/sim.bench.ts
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { compile } from '../src/compile/compile.js';
import type { Layout } from '../src/compile/context.js';
import type { Ruleset } from '../src/ir/types.js';
import { qubeIp } from '../src/model/addressing.js';
import { newQube } from '../src/model/layout.js';
import type { Model, Qube } from '../src/model/qube.js';
import type { Rule } from '../src/model/rule.js';
import { planNetwork } from '../src/model/topology.js';
import { evalHookPkt, type HookContext } from '../src/sim/evaluate.js';
import { CT_BIT, PROTO, toPkt, type Pkt, type Probe } from '../src/sim/packet.js';
import { simulate, type SimOptions, type World } from '../src/sim/walk.js';
import { median, round } from './support.js';

const RULES = 100;
const TARGET = 200_000;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MS = Number(process.env.MS ?? 300);
const VERDICT_ONLY: SimOptions = { trace: false, reply: false };

function target(j: number): string {
  return `203.0.${113 + ((j >> 8) & 1)}.${j & 255}`;
}

function rulesFor(n: number): Rule[] {
  const out: Rule[] = [];
  for (let j = 0; j < n; j++) {
    const a = target(j % 512);
    const port = 1000 + Math.floor(j / 512);
    out.push({ action: 'accept', proto: 'tcp', dsthost: { type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 }, dstports: { start: port, end: port } });
  }
  return out;
}

function model(qubes: number, rulesPerQube: number, bigRules?: number): Model {
  const list: Qube[] = [newQube(1, 'sys-net', 'red', { netvm: null, provides_network: true }), newQube(2, 'sys-firewall', 'green', { netvm: 'sys-net', provides_network: true })];
  for (let i = 0; i < qubes; i++) list.push(newQube(3 + i, `q${i}`, 'blue', { rules: rulesFor(i === 0 && bigRules ? bigRules : rulesPerQube), state: 'Running' }));
  return { default_netvm: 'sys-firewall', qubes: new Map(list.map((q) => [q.name, q])) };
}

function worlds(m: Model): Record<Layout, World> {
  const plan = planNetwork(m, { uplink: 'world' });
  const build = (layout: Layout): World => ({ plan, rulesets: compile({ model: m, plan, resolutions: new Map(), now: 0, layout }).rulesets });
  return { 'qubes-linear': build('qubes-linear'), qnet: build('qnet') };
}

function probes(qubes: number, rulesPerQube: number, n: number, only0 = false): Probe[] {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const out: Probe[] = [];
  for (let i = 0; i < n; i++) {
    const q = only0 ? 0 : Math.floor(rnd() * qubes);
    const j = Math.floor(rnd() * rulesPerQube);
    const miss = rnd() < 0.1;
    out.push({ from: `q${q}`, to: miss ? '192.0.2.77' : target(j % 512), proto: 'tcp', dport: 1000 + Math.floor(j / 512), sport: 40000 + (i % 20000) });
  }
  return out;
}

/** The packets sys-firewall's forward hook sees for these probes (interfaces from the plan). */
function forwardPkts(world: World, m: Model, ps: Probe[]): Pkt[] {
  const fw = world.plan.nodes.find((n) => n.name === 'sys-firewall')!;
  const up = fw.ifaces.find((i) => i.group === 1)!;
  const vif = new Map(fw.ifaces.filter((i) => i.peer).map((i) => [i.peer!.node, i]));
  return ps.map((p) => {
    const i = vif.get(p.from)!;
    const saddr = qubeIp(m, m.qubes.get(p.from)!)!;
    return toPkt({ family: 4, saddr, daddr: p.to, l4proto: PROTO.tcp, sport: p.sport!, dport: p.dport!, iifname: i.name, oifname: up.name, iifgroup: i.group, oifgroup: up.group });
  });
}

const FWD_CTX: HookContext = { ctState: CT_BIT.new, ctStatus: 0, natAllowed: false };

function hookVerdict(rs: Ruleset, p: Pkt): string {
  // evalHookPkt mutates ct fields only; a fresh copy keeps the probe set reusable.
  return evalHookPkt(rs, 'forward', { ...p }, FWD_CTX).verdict;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Calls per CPU second and per wall-clock second. */
function rate(fn: (i: number) => void, ms = MS): { cpu: number; wall: number } {
  for (let i = 0; i < 2000; i++) fn(i); // warm up (prepare caches, JIT)
  let n = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  let c = c0;
  while (c - c0 < ms) {
    for (let k = 0; k < 500; k++) fn(n++);
    c = cpuMs();
  }
  const t = performance.now();
  return { cpu: (n * 1000) / (c - c0), wall: (n * 1000) / (t - t0) };
}

interface Row {
  case: string;
  layout: Layout;
  qubes: number;
  rules: number;
  walk: number[];
  walkWall: number[];
  traced: number[];
  hook: number[];
  rulesPerPacket: number;
}

interface Case {
  row: Row;
  world: World;
  ps: Probe[];
  pkts?: Pkt[];
}

function makeCases(label: string, qubes: number, m: Model, ps: Probe[], withHook: boolean): Case[] {
  const ws = worlds(m);
  return (['qubes-linear', 'qnet'] as const).map((layout) => {
    const world = ws[layout];
    let sum = 0;
    for (const p of ps) sum += simulate(world, p, undefined, VERDICT_ONLY).rulesEvaluated;
    const row: Row = { case: label, layout, qubes, rules: m.qubes.get('q0')!.rules!.length, walk: [], walkWall: [], traced: [], hook: [], rulesPerPacket: sum / ps.length };
    const c: Case = { row, world, ps };
    if (withHook) {
      c.pkts = forwardPkts(world, m, ps);
      const fw = world.rulesets.get('sys-firewall')!;
      // (a) and (b) must agree: sys-firewall decides every probe here (sys-net and the outside accept).
      ps.forEach((p, i) => {
        const walk = simulate(world, p, undefined, VERDICT_ONLY);
        const hook = hookVerdict(fw, c.pkts![i]!);
        if (walk.verdict !== hook) throw new Error(`${layout}: walk says ${walk.verdict} at ${walk.node}, sys-firewall forward says ${hook} for ${JSON.stringify(p)}`);
      });
    }
    return c;
  });
}

const load0 = loadavg();
const cases: Case[] = [];
for (const qubes of [10, 1000]) {
  const ps = probes(qubes, RULES, 4096);
  cases.push(...makeCases(`${qubes} qubes × ${RULES} rules`, qubes, model(qubes, RULES), ps, qubes === 1000));
}
const BIG = 10_000;
const bigCases = makeCases(`1 qube × ${BIG.toLocaleString('en-US')} rules`, 10, model(10, RULES, BIG), probes(10, BIG, 2048, true), false);
cases.push(...bigCases);

for (let r = 0; r < ROUNDS; r++) {
  for (const { row, world, ps, pkts } of cases) {
    const n = ps.length - 1; // a power of two minus one
    if (row.qubes === 10 && row.rules === RULES) continue; // rules/pkt only
    const walk = rate((i) => simulate(world, ps[i & n]!, undefined, VERDICT_ONLY));
    row.walk.push(walk.cpu);
    row.walkWall.push(walk.wall);
    if (!pkts) continue;
    row.traced.push(rate((i) => simulate(world, ps[i & n]!)).cpu);
    const fw = world.rulesets.get('sys-firewall')!;
    row.hook.push(rate((i) => evalHookPkt(fw, 'forward', pkts[i & n]!, FWD_CTX)).cpu);
  }
}
const load1 = loadavg();

const med = (xs: number[]) => (xs.length ? median(xs) : undefined);
const fmt = (x: number | undefined) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
const header = ['case', 'layout', 'verdicts/s', 'hook/s', 'traced/s', 'rules/pkt'];
const table = [header, ...cases.map(({ row: r }) => [r.case, r.layout === 'qnet' ? 'qnet' : 'qubes-linear (baseline)', fmt(med(r.walk)), fmt(med(r.hook)), fmt(med(r.traced)), r.rulesPerPacket.toFixed(1)])];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
for (const row of table) console.log(row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
console.log(`per CPU second, median of ${ROUNDS} runs of ${MS} ms each; load average ${la(load0)} before, ${la(load1)} after (${cpus().length} CPUs)`);

const at = (q: number, l: Layout) => cases.find((c) => c.row.qubes === q && c.row.rules === RULES && c.row.layout === l)!.row;
const qnet = at(1000, 'qnet');
const linear = at(1000, 'qubes-linear');
const big = bigCases.map((c) => c.row);
const round2 = (x: number) => round(x, 2);
const summary = {
  bench: 'sim',
  verdict: 'simulate() walk, app qube to the outside, trace and reply off',
  walkVerdictsPerSec1000x100: Math.round(median(qnet.walk)),
  walkVerdictsPerWallSec1000x100: Math.round(median(qnet.walkWall)),
  hookVerdictsPerSec1000x100: Math.round(median(qnet.hook)),
  tracedPerSec1000x100: Math.round(median(qnet.traced)),
  linearWalkVerdictsPerSec1000x100: Math.round(median(linear.walk)),
  linearHookVerdictsPerSec1000x100: Math.round(median(linear.hook)),
  target: TARGET,
  walkMeetsTarget: median(qnet.walk) >= TARGET,
  hookMeetsTarget: median(qnet.hook) >= TARGET,
  walkSpeedupVsLinear1000: round2(median(qnet.walk) / median(linear.walk)),
  hookSpeedupVsLinear1000: round2(median(qnet.hook) / median(linear.hook)),
  rulesPerPacket: {
    linear10: round2(at(10, 'qubes-linear').rulesPerPacket),
    qnet10: round2(at(10, 'qnet').rulesPerPacket),
    linear1000: round2(linear.rulesPerPacket),
    qnet1000: round2(qnet.rulesPerPacket),
    big10000Linear: round2(big[0]!.rulesPerPacket),
    big10000Qnet: round2(big[1]!.rulesPerPacket),
  },
  big10000SpeedupQnet: round2(median(big[1]!.walk) / median(big[0]!.walk)),
  clock: 'process CPU time',
  rounds: ROUNDS,
  loadavg: { before: load0.map(round2), after: load1.map(round2) },
};
console.log(JSON.stringify(summary));
