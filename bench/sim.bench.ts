// Simulator throughput and "rules a packet traverses", against a baseline measured in the same run:
// Qubes' linear dispatch (`ip saddr X jump qbs-X` per client, §4.4) next to qnet's verdict map
// (`ip saddr vmap @dispatch`), and a 10,000-rule client chain as Qubes writes it (one rule per
// host/port) next to the same policy packed into one `ip daddr . tcp dport @allow` set.
//   verdicts/s   simulate() end to end (work → sys-firewall → sys-net → world), no reply, no tracing;
//                "traced" adds chain paths and the reply leg (what `qnet check` shows)
//   hook/s       the policy verdict alone: sys-firewall's forward hook (both tables, dispatch, the
//                client chain) on pre-parsed packets, as the walk calls it
//   rules/pkt    rules evaluated along the whole walk, mean over the probes
// Rulesets are hand-built Qubes R4.2 layouts (src/sim/testing/qubes.ts) until the compiler lands.
// Run: npx tsx bench/sim.bench.ts
import { performance } from 'node:perf_hooks';
import type { Ruleset } from '../src/ir/types.js';
import { vmidToIpv4 } from '../src/model/addressing.js';
import { newQube } from '../src/model/layout.js';
import type { Model, Qube } from '../src/model/qube.js';
import type { Rule } from '../src/model/rule.js';
import { evalHookPkt } from '../src/sim/evaluate.js';
import { CT_BIT, toPkt, type Probe } from '../src/sim/packet.js';
import { ACCEPT, addr, ADMIN_PROHIBITED, inSet, int, reject, rule, set } from '../src/sim/testing/ir-build.js';
import { qbsChain, qubesWorld } from '../src/sim/testing/qubes.js';
import { simulate, type World } from '../src/sim/walk.js';

const RULES = 100;
const TARGET = 200_000;

function target(j: number): string {
  return `203.0.${113 + ((j >> 8) & 1)}.${j & 255}`;
}

function rulesFor(n: number): Rule[] {
  const out: Rule[] = [];
  for (let j = 0; j < n; j++) {
    const a = target(j % 512);
    out.push({ action: 'accept', proto: 'tcp', dsthost: { type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 }, dstports: { start: 1000 + Math.floor(j / 512), end: 1000 + Math.floor(j / 512) } });
  }
  return out;
}

function model(qubes: number, rulesPerQube: number, bigRules?: number): Model {
  const list: Qube[] = [newQube(1, 'sys-net', 'red', { netvm: null, provides_network: true }), newQube(2, 'sys-firewall', 'green', { netvm: 'sys-net', provides_network: true })];
  for (let i = 0; i < qubes; i++) list.push(newQube(3 + i, `q${i}`, 'blue', { rules: rulesFor(i === 0 && bigRules ? bigRules : rulesPerQube), state: 'Running' }));
  return { default_netvm: 'sys-firewall', qubes: new Map(list.map((q) => [q.name, q])) };
}

/** Probes: a random qube to the target of one of its rules (hit), 1 in 10 to nothing it allows. */
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

/** The big qube's chain packed the way a set-aware compiler would: one lookup, then the policy. */
function packBig(world: World, ip: string, n: number): World {
  const fw = world.rulesets.get('sys-firewall')!;
  const tables = fw.tables.map((t) => {
    if (t.name !== 'qubes-firewall') return t;
    const name = qbsChain(ip);
    const elems = rulesFor(n).map((r) => [addr((r.dsthost as { addr: string }).addr), int(r.dstports!.start)]);
    return {
      ...t,
      sets: [...t.sets, set('allow-q0', ['ipv4_addr', 'inet_service'], false, elems)],
      chains: t.chains.map((c) => (c.name !== name ? c : { ...c, rules: [rule('q0 rules 0-' + (n - 1), [inSet(['ip daddr', 'tcp dport'], 'allow-q0')], ACCEPT), rule('q0 policy (drop)', [], reject(ADMIN_PROHIBITED))] })),
    };
  });
  const rulesets = new Map(world.rulesets);
  rulesets.set('sys-firewall', { tables } as Ruleset);
  return { plan: world.plan, rulesets };
}

function rate(fn: (i: number) => void, ms = 700): number {
  for (let i = 0; i < 2000; i++) fn(i); // warm up (prepare caches, JIT)
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let k = 0; k < 1000; k++) fn(n++);
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

function rulesPerPacket(world: World, ps: Probe[]): number {
  let sum = 0;
  for (const p of ps) sum += simulate(world, p, undefined, { reply: false, trace: false }).rulesEvaluated;
  return sum / ps.length;
}

interface Row {
  case: string;
  layout: string;
  qubes: number;
  rules: number;
  verdictsPerSec?: number;
  tracedPerSec?: number;
  hookPerSec?: number;
  rulesPerPacket: number;
}

const rows: Row[] = [];
const fmt = (x: number | undefined) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));

for (const qubes of [10, 1000]) {
  for (const layout of ['linear', 'vmap'] as const) {
    const world = qubesWorld({ model: model(qubes, RULES), dispatch: layout });
    const ps = probes(qubes, RULES, 4096);
    const row: Row = { case: `${qubes} qubes × ${RULES} rules`, layout: layout === 'linear' ? 'qubes-linear (baseline)' : 'vmap dispatch', qubes, rules: RULES, rulesPerPacket: rulesPerPacket(world, ps) };
    if (qubes === 1000) {
      row.verdictsPerSec = rate((i) => simulate(world, ps[i & 4095]!, undefined, { reply: false, trace: false }));
      row.tracedPerSec = rate((i) => simulate(world, ps[i & 4095]!));
      const fw = world.rulesets.get('sys-firewall')!;
      const pkts = ps.map((p) => toPkt({ family: 4, saddr: vmidToIpv4('10.137', 3 + Number(p.from.slice(1))), daddr: p.to, l4proto: 6, dport: p.dport!, iifname: 'vif0', oifname: 'eth0', iifgroup: 2, oifgroup: 1 }));
      const ctx = { ctState: CT_BIT.new, ctStatus: 0, natAllowed: false };
      row.hookPerSec = rate((i) => evalHookPkt(fw, 'forward', pkts[i & 4095]!, ctx));
    }
    rows.push(row);
  }
}

{
  const BIG = 10_000;
  const world = qubesWorld({ model: model(10, RULES, BIG), dispatch: 'vmap' });
  const ps = probes(10, BIG, 2048, true);
  const linear: Row = { case: `1 qube × ${BIG.toLocaleString('en-US')} rules`, layout: 'one rule per host/port (baseline)', qubes: 10, rules: BIG, rulesPerPacket: rulesPerPacket(world, ps) };
  linear.verdictsPerSec = rate((i) => simulate(world, ps[i & 2047]!, undefined, { reply: false, trace: false }), 500);
  rows.push(linear);
  const packed = packBig(world, vmidToIpv4('10.137', 3), BIG);
  const row: Row = { case: linear.case, layout: 'packed: ip daddr . tcp dport @set', qubes: 10, rules: BIG, rulesPerPacket: rulesPerPacket(packed, ps) };
  row.verdictsPerSec = rate((i) => simulate(packed, ps[i & 2047]!, undefined, { reply: false, trace: false }), 500);
  rows.push(row);
}

const header = ['case', 'layout', 'verdicts/s', 'traced/s', 'hook/s', 'rules/pkt'];
const table = [header, ...rows.map((r) => [r.case, r.layout, fmt(r.verdictsPerSec), fmt(r.tracedPerSec), fmt(r.hookPerSec), r.rulesPerPacket.toFixed(1)])];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
for (const row of table) console.log(row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));

const at = (q: number, l: string) => rows.find((r) => r.qubes === q && r.rules === RULES && r.layout.startsWith(l))!;
const big = rows.filter((r) => r.rules === 10_000);
const summary = {
  bench: 'sim',
  walkVerdictsPerSec1000x100: Math.round(at(1000, 'vmap').verdictsPerSec!),
  hookVerdictsPerSec1000x100: Math.round(at(1000, 'vmap').hookPerSec!),
  target: TARGET,
  walkMeetsTarget: at(1000, 'vmap').verdictsPerSec! >= TARGET,
  hookMeetsTarget: at(1000, 'vmap').hookPerSec! >= TARGET,
  speedupVsLinear1000: +(at(1000, 'vmap').verdictsPerSec! / at(1000, 'qubes-linear').verdictsPerSec!).toFixed(2),
  rulesPerPacket: {
    linear10: +at(10, 'qubes-linear').rulesPerPacket.toFixed(1),
    linear1000: +at(1000, 'qubes-linear').rulesPerPacket.toFixed(1),
    vmap10: +at(10, 'vmap').rulesPerPacket.toFixed(1),
    vmap1000: +at(1000, 'vmap').rulesPerPacket.toFixed(1),
    big10000Linear: +big[0]!.rulesPerPacket.toFixed(1),
    big10000Packed: +big[1]!.rulesPerPacket.toFixed(1),
  },
  big10000SpeedupPacked: +(big[1]!.verdictsPerSec! / big[0]!.verdictsPerSec!).toFixed(2),
};
console.log(JSON.stringify(summary));
