// 1,000 port forwards and 1,000 connections on one host (issue 10, Performance): what adding or
// removing one costs, and what a first packet pays per connection/forward.
//   * ops: nft operations one add/remove produces (diffTransaction between the compiled rulesets
//     before and after, summed over the nodes it touches): only the touched chains/sets should change.
//   * ms to the kernel: compile the host + diff + `nft -f` of the delta into scratch namespaces that
//     hold the full rulesets of the touched nodes (root only; skipped loudly otherwise).
//   * per packet: rules the simulator evaluates for the first packet of the first vs the last
//     connection/forward (and, as the floor, an ordinary outbound flow); flat means first ≈ last.
// Both layouts in the same run: 'qubes-linear' keeps connections and forwards as rule lists (links-up,
// links-down, dnat-forwards: the rule-per-forward baseline), 'qnet' dispatches them by verdict maps
// keyed by address . protocol . port to one small chain per key (compile/passes/flat-links.ts).
// Topology: sys-net ← sys-firewall ← a0..a99, sys-net ← fw2 ← b0..b99; connection i: a(i%100) →
// b(i*7%100) tcp/(2000+i), across branches (up sys-firewall, X sys-net, down fw2, input b);
// forward i: sys-net tcp/(10000+i) → a(i%100).
// Run: npx tsx bench/connections.bench.ts   (root for the kernel part)
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { compile } from '../src/compile/compile.js';
import { diffTransaction, fullTransaction } from '../src/ir/diff.js';
import type { Ruleset } from '../src/ir/types.js';
import { defaultLayout, newQube } from '../src/model/layout.js';
import type { Connection, PortForward } from '../src/model/connection.js';
import type { Model } from '../src/model/qube.js';
import { planNetwork } from '../src/model/topology.js';
import { worldUplinkAddresses } from '../src/backend/netns/world.js';
import { simulate, OUTSIDE } from '../src/sim/walk.js';
import { deleteNamespaces, kernelUnavailable, uniquePrefix } from '../test/kernel/ns.js';
import { median } from './support.js';

const N = 1000;
const APPS = 100;
const REPS = 5;

function model(conns: number, fwds: number): Model {
  const m = defaultLayout();
  for (const n of ['work', 'personal', 'untrusted', 'vault']) m.qubes.delete(n);
  m.qubes.set('fw2', newQube(20, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  for (let i = 0; i < APPS; i++) {
    m.qubes.set(`a${i}`, newQube(100 + i, `a${i}`, 'blue', { netvm: 'sys-firewall' }));
    m.qubes.set(`b${i}`, newQube(300 + i, `b${i}`, 'orange', { netvm: 'fw2' }));
  }
  for (const q of m.qubes.values()) if (q.klass !== 'TemplateVM') q.state = 'Running';
  m.connections = Array.from({ length: conns }, (_, i): Connection => ({ id: `c${i + 1}`, from: `a${i % APPS}`, to: `b${(i * 7) % APPS}`, proto: 'tcp', ports: { start: 2000 + i, end: 2000 + i }, bothWays: false }));
  m.forwards = Array.from({ length: fwds }, (_, i): PortForward => ({ id: `f${i + 1}`, qube: `a${i % APPS}`, proto: 'tcp', port: 10000 + i, from: [], on: [] }));
  return m;
}

type Layout = 'qnet' | 'qubes-linear';
const summaries: unknown[] = [];
for (const layout of ['qubes-linear', 'qnet'] as Layout[]) {
const compileAll = (m: Model) => compile({ model: m, plan: planNetwork(m, { uplink: 'world' }), resolutions: new Map(), now: 0, layout });
type Rulesets = ReadonlyMap<string, Ruleset>;

/** Per node whose ruleset changed: the nft operations of the delta and its text. */
function delta(before: Rulesets, after: Rulesets): { nodes: string[]; ops: number; text: Map<string, string> } {
  const text = new Map<string, string>();
  let ops = 0;
  for (const [node, rs] of after) {
    const tx = diffTransaction(before.get(node) ?? null, rs);
    if (!tx.size) continue;
    ops += tx.size;
    text.set(node, tx.toString());
  }
  return { nodes: [...text.keys()], ops, text };
}

function timed<T>(f: () => T): { v: T; ms: number } {
  const t0 = performance.now();
  const v = f();
  return { v, ms: performance.now() - t0 };
}

const base = model(N, N);
const before = compileAll(base).rulesets;
const probeRules = (m: Rulesets, from: string, to: string, dport: number) => {
  const r = simulate({ plan: planNetwork(base, { uplink: 'world' }), rulesets: m }, { from, to, proto: 'tcp', dport }, undefined, { trace: false, reply: false });
  return { rules: r.rulesEvaluated, verdict: r.verdict };
};
const addrOf = (name: string) => {
  const n = planNetwork(base, { uplink: 'world' }).nodes.find((x) => x.name === name)!;
  return n.ifaces.flatMap((i) => i.addrs.map((a) => a.addr)).find((a) => a.startsWith('10.137.'))!;
};

// Per packet: first and last connection, first and last forward, an ordinary flow.
const c1 = base.connections![0]!;
const cN = base.connections![N - 1]!;
const perPacket = {
  connFirst: probeRules(before, c1.from, addrOf(c1.to), c1.ports!.start),
  connLast: probeRules(before, cN.from, addrOf(cN.to), cN.ports!.start),
  fwdFirst: probeRules(before, OUTSIDE, worldUplinkAddresses.v4.netvm, 10000),
  fwdLast: probeRules(before, OUTSIDE, worldUplinkAddresses.v4.netvm, 10000 + N - 1),
  ordinary: probeRules(before, 'a0', '198.51.100.1', 443),
};
const none = compileAll(model(0, 0)).rulesets;
const floor = {
  connNone: probeRules(none, c1.from, addrOf(c1.to), c1.ports!.start),
  ordinaryNone: probeRules(none, 'a0', '198.51.100.1', 443),
};

// One add / one remove of each kind: compile + diff times, operations, nodes touched.
const edits: [string, Model][] = [
  ['add a forward (1,001st)', model(N, N + 1)],
  ['remove a forward (the first)', (() => { const m = model(N, N); m.forwards = m.forwards!.slice(1); return m; })()],
  ['add a connection (1,001st)', model(N + 1, N)],
  ['remove a connection (the first)', (() => { const m = model(N, N); m.connections = m.connections!.slice(1); return m; })()],
];
const results: { name: string; compileMs: number; diffMs: number; nodes: string[]; ops: number; kernelMs?: number; text: Map<string, string>; after: Rulesets }[] = [];
for (const [name, m] of edits) {
  const cs: number[] = [];
  const ds: number[] = [];
  let after: Rulesets = new Map();
  let d = delta(before, before);
  for (let k = 0; k < REPS; k++) {
    const c = timed(() => compileAll(m).rulesets);
    after = c.v;
    const dd = timed(() => delta(before, after));
    d = dd.v;
    cs.push(c.ms);
    ds.push(dd.ms);
  }
  results.push({ name, compileMs: median(cs), diffMs: median(ds), nodes: d.nodes, ops: d.ops, text: d.text, after });
}

// The kernel: the full rulesets of the touched nodes in scratch namespaces, then each delta (and
// back, so every edit starts from `before`), timed from spawn to exit of `nft -f`.
const why = kernelUnavailable();
let fullLoadMs: Record<string, number> = {};
if (why) console.log(`kernel part skipped: ${why}`);
else {
  const prefix = uniquePrefix('qb');
  const nft = (ns: string, text: string) => {
    const t0 = performance.now();
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nft -f in ${ns}: ${r.stderr}`);
    return performance.now() - t0;
  };
  try {
    const nodes = [...new Set(results.flatMap((r) => r.nodes))];
    for (const n of nodes) {
      const ns = prefix + n;
      spawnSync('ip', ['netns', 'add', ns]);
      fullLoadMs[n] = +nft(ns, fullTransaction(before.get(n)!).toString()).toFixed(1);
    }
    for (const r of results) {
      const ts: number[] = [];
      for (let k = 0; k < REPS; k++) {
        let worst = 0;
        // Nodes load in parallel in the engine; the slowest one is when the edit has reached the kernel.
        for (const [n, text] of r.text) worst = Math.max(worst, nft(prefix + n, text));
        ts.push(worst);
        for (const n of r.text.keys()) nft(prefix + n, diffTransaction(r.after.get(n)!, before.get(n)!).toString());
      }
      r.kernelMs = median(ts);
    }
  } finally {
    deleteNamespaces(prefix);
  }
}

const rulesCount = (rs: Rulesets, node: string) => rs.get(node)!.tables.reduce((n, t) => n + t.chains.reduce((k, c) => k + c.rules.length, 0), 0);
console.log(`\nlayout ${layout}: ${N} connections (across branches) + ${N} forwards, ${APPS * 2} app qubes; median of ${REPS}`);
console.log(`nft rules: sys-net ${rulesCount(before, 'sys-net')}, sys-firewall ${rulesCount(before, 'sys-firewall')}, fw2 ${rulesCount(before, 'fw2')}, b0 ${rulesCount(before, 'b0')}`);
console.log('| edit | compile ms | diff ms | nft ops | nodes | nft -f ms (slowest node) | to kernel ms |');
console.log('|---|---:|---:|---:|---|---:|---:|');
for (const r of results)
  console.log(
    `| ${r.name} | ${r.compileMs.toFixed(1)} | ${r.diffMs.toFixed(1)} | ${r.ops} | ${r.nodes.join(', ')} | ${r.kernelMs?.toFixed(1) ?? '-'} | ${r.kernelMs === undefined ? '-' : (r.compileMs + r.diffMs + r.kernelMs).toFixed(1)} |`,
  );
console.log('| first packet | rules evaluated | verdict |');
console.log('|---|---:|---|');
for (const [k, v] of Object.entries({ ...perPacket, ...floor })) console.log(`| ${k} | ${v.rules} | ${v.verdict} |`);
summaries.push({
    layout,
    edits: results.map((r) => ({ name: r.name, compileMs: +r.compileMs.toFixed(1), diffMs: +r.diffMs.toFixed(1), ops: r.ops, nodes: r.nodes, kernelMs: r.kernelMs === undefined ? null : +r.kernelMs.toFixed(1) })),
    fullLoadMs,
    perPacketRules: Object.fromEntries(Object.entries({ ...perPacket, ...floor }).map(([k, v]) => [k, v.rules])),
    flat: perPacket.connLast.rules <= perPacket.connFirst.rules * 1.1 && perPacket.fwdLast.rules <= perPacket.fwdFirst.rules * 1.1,
    targetMet: results.every((r) => r.kernelMs !== undefined && r.compileMs + r.diffMs + r.kernelMs < 50),
  });
}
console.log(JSON.stringify({ bench: 'connections', connections: N, forwards: N, layouts: summaries }));
