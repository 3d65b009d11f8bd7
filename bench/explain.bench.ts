// The manager's Explain page (issue 11): op `explain` answers for the stored policy and for what the
// kernel holds now, side by side. Target: under 200 ms. Measured over a sim-backend daemon's socket
// (no root: the sim engine keeps the same mirror a netns engine does), with 100 running app qubes of
// 100 realistic rules each (10,000 rules): `check` on each side alone and `explain` (the daemon keeps
// its last analysis: DaemonHost.analysis), and as the baseline `explain` right after a rule edit,
// when nothing is reused but the unchanged nodes: the edited client is compiled and patched in
// (analyseWith), and the simulator prepares its netvm's new ruleset again, on both sides.
// Run: npm run bench explain
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bufferIo } from '../src/cli/io.js';
import { daemonTransport, localTransport } from '../src/cli/transport.js';
import { Daemon } from '../src/daemon/server.js';
import { load, median, percentile, round, seedQubes, table } from './support.js';

const QUBES = 100;
const RULES = 100;
const RUNS = 30;
const TARGET_MS = 200;

const dir = mkdtempSync(join(tmpdir(), 'qnet-bench-explain-'));
const daemon = new Daemon({ stateDir: dir, runtime: { backend: 'sim', prefix: 'qbx-' } });
try {
  await (await localTransport(dir, bufferIo().io)).call('qubes.init', {});
  const names = await seedQubes(dir, { count: QUBES, rules: RULES });
  await daemon.start();
  const d = (await daemonTransport(dir))!;
  await d.call('start', { qubes: names });
  const question = { src: names[QUBES - 1]!, dst: '203.0.113.10', proto: 'tcp', port: 443 };
  const cases: [string, string, object][] = [
    ['check (stored policy)', 'check', question],
    ['check --kernel', 'check', { ...question, against: 'kernel' }],
    ['explain (both, compared)', 'explain', question],
  ];
  const rows: (string | number)[][] = [['op', 'median ms', 'p95 ms']];
  const out: Record<string, { medianMs: number; p95Ms: number }> = {};
  for (const [label, op, input] of cases) {
    await d.call(op, input); // warm
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await d.call(op, input);
      ms.push(performance.now() - t);
    }
    out[label] = { medianMs: round(median(ms)), p95Ms: round(percentile(ms, 95)) };
    rows.push([label, out[label].medianMs, out[label].p95Ms]);
  }
  // Cold: right after a rule edit (what the Explain page pays on the event that follows one).
  const cold: number[] = [];
  for (let i = 0; i < 10; i++) {
    await d.call('firewall.add', { qube: names[0]!, rule: `action=accept proto=tcp dstports=${1000 + i}-${1000 + i}` });
    const t = performance.now();
    await d.call('explain', question);
    cold.push(performance.now() - t);
  }
  out['explain right after a rule edit (baseline)'] = { medianMs: round(median(cold)), p95Ms: round(percentile(cold, 95)) };
  rows.push(['explain right after a rule edit (baseline)', out['explain right after a rule edit (baseline)'].medianMs, out['explain right after a rule edit (baseline)'].p95Ms]);
  console.log(`explain: ${QUBES} running qubes × ${RULES} rules, ${RUNS} runs each, over the daemon's socket\n${table(rows)}`);
  const explainMs = out['explain (both, compared)']!.p95Ms;
  console.log(JSON.stringify({ bench: 'explain', qubes: QUBES, rules: QUBES * RULES, load: load(), ops: out, target: { maxMs: TARGET_MS, p95Ms: explainMs, ok: explainMs < TARGET_MS } }));
} finally {
  await daemon.stop();
  rmSync(dir, { recursive: true, force: true });
}
