// The manager's Qubes page (issue #11): elkjs lays the topology out in a Web Worker (its own worker
// build, same origin, no eval: what the CSP allows). What a user waits for, in Debian's
// chromium against a real daemon: from opening the page to app.js received and to the qubes table (the baselines, same run)
// and to the laid-out graph, and the longest task that kept input waiting, for the default layout and for N more app qubes with N/4 connections.
// Also the sizes of the bundle every page loads and of elkjs's worker, which only the topology starts.
// Run: npm run build && node dist/bench/topology.bench.js   (root: the harness makes namespaces)
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { WEB_ROOT } from '../src/daemon/http.js';
import { browserUnavailable, withManager } from '../test/web/harness.js';
import { load, median } from './support.js';

const SIZES = [0, 50, 200];
const REPS = 3;

const why = browserUnavailable();
if (why) {
  console.log(`topology bench skipped: ${why}`);
  console.log(JSON.stringify({ bench: 'topology', skipped: why }));
  process.exit(0);
}

interface Timing {
  script: number;
  table: number;
  graph: number;
  /** Durations of the page's long tasks (over 50 ms: input waits that long). */
  long: number[];
}

/** Runs in the page before its scripts: when the table and the laid-out graph are complete. */
function observe(total: number): void {
  const t: Timing = { script: NaN, table: NaN, graph: NaN, long: [] };
  (window as unknown as { __t: Timing }).__t = t;
  new MutationObserver(() => {
    const now = performance.now();
    if (Number.isNaN(t.table) && document.querySelectorAll('tr[data-qube]').length >= total) t.table = now;
    if (Number.isNaN(t.graph) && document.querySelectorAll('svg.topology[data-ready="yes"] [data-node]').length >= total) t.graph = now;
    if (Number.isNaN(t.script)) t.script = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).find((e) => e.name.endsWith('/app.js'))?.responseEnd ?? NaN;
  }).observe(document, { subtree: true, childList: true, attributes: true });
  new PerformanceObserver((l) => l.getEntries().forEach((e) => t.long.push(e.duration))).observe({ type: 'longtask', buffered: true });
}

const rows: Record<string, number>[] = [];
for (const n of SIZES) {
  const setup = ['init'];
  for (let i = 0; i < n; i++) setup.push(`create a${i} --label blue`);
  const conns = Math.floor(n / 4);
  for (let i = 0; i < conns; i++) setup.push(`connect a${i} a${(i * 7 + 3) % n} --proto tcp --port ${2000 + i}`);
  await withManager('qb', setup, async (m) => {
    const total = 6 + n;
    const runs: Timing[] = [];
    for (let r = 0; r < REPS; r++) {
      // Timestamps taken in the page as the DOM changes (an observer outside would also count its
      // own trips to the page).
      const ctx = await m.browser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addInitScript(observe, total);
      const page = await ctx.newPage();
      page.on('console', (msg) => msg.type() === 'error' && m.errors.push(`console: ${msg.text()}`));
      await page.goto(`${m.base}/#token=${m.tokens.viewer}`);
      await page.locator('svg.topology[data-ready="yes"] [data-node]').nth(total - 1).waitFor({ timeout: 60_000 });
      runs.push(await page.evaluate(() => (window as unknown as { __t: Timing }).__t));
      await ctx.close();
    }
    const med = (f: (t: Timing) => number) => Math.round(median(runs.map(f)));
    const row = {
      extraQubes: n,
      connections: conns,
      scriptMs: med((t) => t.script),
      tableMs: med((t) => t.table),
      graphMs: med((t) => t.graph),
      graphAfterTableMs: med((t) => t.graph - t.table),
      longestTaskMs: med((t) => Math.max(0, ...t.long)),
    };
    rows.push(row);
    console.log(`${total} qubes, ${conns} connections: app.js in ${row.scriptMs} ms, table ${row.tableMs} ms, graph ${row.graphMs} ms (+${row.graphAfterTableMs} ms), longest task ${row.longestTaskMs} ms`);
  });
}
const size = (f: string) => statSync(join(WEB_ROOT, f)).size;
console.log(JSON.stringify({ bench: 'topology', reps: REPS, load: load(), appBytes: size('app.js'), elkBytes: size('elk-worker.js'), rows }));
