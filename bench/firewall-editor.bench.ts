// The node side of the firewall editor with 100k rules (realisticRules), baselines in the same run:
// * shadow analysis (model/shadow.ts, indexed by shape) against the pairwise definition (every rule
//   against every earlier one), the latter measured on 5k rules and scaled by n²;
// * firewall.view, whole (after an edit, and again with nothing changed: the rows are reused) and
//   first screen (limit 80), with its JSON size, against firewall.get (the rules as lines: the least
//   a client can read) on the same list;
// * firewall.move of one rule against firewall.set of the same 100k-rule list (what a reorder would
//   cost without a move op). The qube is not running: these are the ops' and the store's costs; the
//   kernel's part of an edit is bench/rule-edit.bench.ts's.
// No root needed. Run: npx tsx bench/firewall-editor.bench.ts   (or node dist/bench/firewall-editor.bench.js)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatApiRule } from '../src/model/rule-format.js';
import { covers, matchSpace, shadowedRules } from '../src/model/shadow.js';
import { OfflineHost } from '../src/ops/offline-host.js';
import { invoke } from '../src/ops/registry.js';
import type { FirewallView } from '../src/ops/views.js';
import { load, median, realisticRules, round, table } from './support.js';

const N = 100_000;
const NAIVE_N = 5_000;
const REPS = 5;

function time<T>(fn: () => T): [number, T] {
  const t = performance.now();
  const v = fn();
  return [performance.now() - t, v];
}
async function timeAsync<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}
const med = async (fn: () => Promise<number> | number) => {
  const xs: number[] = [];
  for (let i = 0; i < REPS; i++) xs.push(await fn());
  return round(median(xs), 1);
};

const rules = realisticRules(N, 11);

// ---- shadow analysis
const indexed = await med(() => time(() => shadowedRules(rules))[0]);
const shadowCount = shadowedRules(rules).length;
const small = rules.slice(0, NAIVE_N);
const indexedSmall = await med(() => time(() => shadowedRules(small))[0]);
const naiveSmall = await med(
  () =>
    time(() => {
      const s = small.map(matchSpace);
      let n = 0;
      for (let i = 0; i < s.length; i++) for (let j = 0; j < i; j++) if (covers(s[j]!, s[i]!)) (n++, (j = i));
      return n;
    })[0],
);
const naiveScaled = round(naiveSmall * (N / NAIVE_N) ** 2, 0);

// ---- the ops on a state directory with work holding 100k rules
const dir = mkdtempSync(join(tmpdir(), 'qnet-fw-bench-'));
try {
  const host = new OfflineHost({ stateDir: dir, env: process.env, now: () => Math.floor(Date.now() / 1000) });
  await invoke(host, 'qubes.init', {});
  const text = rules.map(formatApiRule).join('\n') + '\n';
  const setMs = await med(async () => (await timeAsync(() => invoke(host, 'firewall.set', { qube: 'work', text })))[0]);
  await invoke(host, 'firewall.view', { qube: 'work' }); // the store's parse, once
  // After an edit (a move: the rows are built again) and without one (the last view's rows reused).
  let k = 0;
  const moves: number[] = [];
  let json = 0;
  const viewMs = await med(async () => {
    const from = 1000 + k++;
    moves.push((await timeAsync(() => invoke(host, 'firewall.move', { qube: 'work', from, to: from + 1 })))[0]);
    const [ms, r] = await timeAsync(() => invoke(host, 'firewall.view', { qube: 'work' }));
    json = JSON.stringify(r).length;
    return ms;
  });
  const moveMs = round(median(moves), 1);
  const warmMs = await med(async () => (await timeAsync(() => invoke(host, 'firewall.view', { qube: 'work' })))[0]);
  const [, whole] = await timeAsync(() => invoke(host, 'firewall.view', { qube: 'work' }));
  const jsonMs = await med(() => time(() => JSON.stringify(whole))[0]);
  const firstMs = await med(async () => {
    await invoke(host, 'firewall.move', { qube: 'work', from: 5000, to: 5001 }); // no whole view to reuse
    return (await timeAsync(() => invoke(host, 'firewall.view', { qube: 'work', limit: 80 })))[0];
  });
  const getMs = await med(async () => (await timeAsync(() => invoke(host, 'firewall.get', { qube: 'work' })))[0]);
  const view = whole.value as FirewallView;

  console.log(
    table([
      ['what (100k rules)', 'median ms', 'baseline', 'baseline ms'],
      ['shadow analysis, indexed', indexed, `pairwise, ${NAIVE_N} rules → ×(n/${NAIVE_N})²`, naiveScaled],
      [`shadow analysis, indexed, ${NAIVE_N} rules`, indexedSmall, `pairwise, ${NAIVE_N} rules`, naiveSmall],
      ['firewall.view (whole, after an edit)', viewMs, 'firewall.get (lines only)', getMs],
      ['firewall.view (whole, nothing changed)', warmMs, 'firewall.view (whole, after an edit)', viewMs],
      ['firewall.view limit 80 (first screen)', firstMs, 'firewall.view (whole, after an edit)', viewMs],
      ['JSON.stringify of the whole view', jsonMs, '', ''],
      ['firewall.move (one rule)', moveMs, 'firewall.set (the whole list)', setMs],
    ]),
  );
  console.log(
    JSON.stringify({
      bench: 'firewall-editor',
      rules: N,
      load: load(),
      shadowed: shadowCount,
      viewShadowed: view.shadowed,
      medianMs: { shadowIndexed: indexed, shadowPairwiseScaled: naiveScaled, shadowIndexed5k: indexedSmall, shadowPairwise5k: naiveSmall, view: viewMs, viewUnchanged: warmMs, viewFirst80: firstMs, viewJson: jsonMs, get: getMs, move: moveMs, set: setMs },
      viewJsonBytes: json,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
