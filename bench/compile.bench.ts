// Compile 1,000 qubes × 100 rules, with baselines measured in the same run (DESIGN.md: ratios,
// not absolute times): the qubes-linear layout (Qubes' own shape: no sets, one nft rule per
// rule) and the floor of building the same number of plain objects. Also emits nft text.
// Run: npx tsx bench/compile.bench.ts
import { compile } from '../src/compile/compile.js';
import type { Layout } from '../src/compile/context.js';
import { emitFull } from '../src/ir/emit-text.js';
import { defaultLayout, newQube } from '../src/model/layout.js';
import type { Model } from '../src/model/qube.js';
import type { Rule } from '../src/model/rule.js';
import { planNetwork } from '../src/model/topology.js';
import { median } from './support.js';

const QUBES = 1000;
const RULES = 100;
const REPS = 5;

function rules(n: number, seed: number): Rule[] {
  let x = seed;
  const rnd = (k: number) => ((x = (x * 1103515245 + 12345) % 2147483648), x % k);
  const out: Rule[] = [];
  for (let i = 0; i < n; i++) {
    const a = `${1 + rnd(200)}.${rnd(256)}.${rnd(256)}.${rnd(256)}`;
    const action = i % 25 === 24 ? 'drop' : 'accept';
    out.push(
      i % 3 === 0
        ? { action, dsthost: { type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 }, proto: 'tcp', dstports: { start: 1 + rnd(1024), end: 0 } }
        : { action, dsthost: { type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 } },
    );
    const last = out[out.length - 1]!;
    if (last.dstports) last.dstports.end = last.dstports.start;
  }
  return out;
}

function model(): Model {
  const m = defaultLayout();
  for (const n of ['work', 'personal', 'untrusted', 'vault']) m.qubes.delete(n);
  for (let i = 0; i < QUBES; i++) {
    const q = newQube(10 + i, `app${i}`, 'blue');
    q.rules = rules(RULES, i + 1);
    m.qubes.set(q.name, q);
  }
  return m;
}

const m = model();
const plan = planNetwork(m, { uplink: 'world' });

function time(fn: () => unknown): number {
  const ts: number[] = [];
  fn(); // warm-up
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

const run = (layout: Layout) => compile({ model: m, plan, resolutions: new Map(), now: 0, layout });
const stats = (layout: Layout) => {
  const fw = run(layout).rulesets.get('sys-firewall')!;
  const t = fw.tables.find((x) => x.family === 'ip' && x.name === 'qubes-firewall')!;
  const chain = t.chains.find((c) => c.name.startsWith('qbs-'))!;
  return { nftRules: t.chains.reduce((n, c) => n + c.rules.length, 0), sets: t.sets.length, perClientRules: chain.rules.length, textBytes: emitFull(fw).length };
};

// Floor: the same number of plain objects (one per rule), nothing else.
const floor = () => {
  const out: object[] = [];
  for (const q of m.qubes.values()) for (const r of q.rules ?? []) out.push({ matches: [r.dsthost], stmts: [r.action], origin: { text: q.name } });
  return out;
};

const tQnet = time(() => run('qnet'));
const tLinear = time(() => run('qubes-linear'));
const tFloor = time(floor);
const tEmit = time(() => emitFull(run('qnet').rulesets.get('sys-firewall')!));
const sq = stats('qnet');
const sl = stats('qubes-linear');

const rows = [
  ['compile qnet (sets + dispatch map)', tQnet, tQnet / tLinear, sq],
  ['compile qubes-linear (baseline)', tLinear, 1, sl],
  ['plain objects, one per rule (floor)', tFloor, tFloor / tLinear, undefined],
  ['compile qnet + emit sys-firewall text', tEmit, tEmit / tLinear, undefined],
] as const;
console.log(`compile ${QUBES} qubes × ${RULES} rules, median of ${REPS}`);
console.log('| case | ms | × linear | nft rules (fw table) | sets | rules per client chain |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [name, ms, ratio, s] of rows)
  console.log(`| ${name} | ${ms.toFixed(1)} | ${ratio.toFixed(2)} | ${s?.nftRules ?? ''} | ${s?.sets ?? ''} | ${s?.perClientRules ?? ''} |`);
console.log(
  JSON.stringify({
    bench: 'compile',
    qubes: QUBES,
    rulesPerQube: RULES,
    ms: { qnet: +tQnet.toFixed(1), linear: +tLinear.toFixed(1), floor: +tFloor.toFixed(1), qnetWithEmit: +tEmit.toFixed(1) },
    ratio: { qnetVsLinear: +(tQnet / tLinear).toFixed(2) },
    perPacketRulesPerClient: { qnet: sq.perClientRules, linear: sl.perClientRules },
    targetMet: tQnet < 1000,
  }),
);
