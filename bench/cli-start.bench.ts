// How fast a command starts and answers, as a fresh process, against bare `node -e 0` measured in the
// same run (issue targets: `qnet --version` ≤ 1.3×, `qnet ls -n` ≤ 2× node, offline and through the
// daemon alike). Runs are interleaved (node, version, ls offline, ls daemon, node, …) so drift in
// the machine's speed hits every column alike; the table shows medians and the ratios of medians.
// The daemon is a real `qnet daemon --backend sim` process on a temporary state directory.
// Run: npm run build && node dist/bench/cli-start.bench.js   (QNET_BENCH_RUNS, default 15)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../src/daemon/client.js';
import { load, median, round, table } from './support.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'qnet.js');
const RUNS = Number(process.env['QNET_BENCH_RUNS'] ?? 15);

function timed(argv: string[], env: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, argv, { env, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const offline = mkdtempSync(join(tmpdir(), 'qnet-bench-start-'));
const served = mkdtempSync(join(tmpdir(), 'qnet-bench-startd-'));
const env = { ...process.env, QNET_NO_DAEMON: '' };
let daemon: ReturnType<typeof spawn> | undefined;
try {
  for (const d of [offline, served]) timed([BIN, '--state', d, 'init'], env);
  daemon = spawn(process.execPath, [BIN, '--state', served, 'daemon', '--backend', 'sim'], { stdio: 'ignore', env });
  const until = Date.now() + 30_000;
  while (!(await DaemonClient.connect(served).catch(() => null))) {
    if (Date.now() > until) throw new Error('the daemon did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  const cols = {
    node: () => timed(['-e', '0'], env),
    version: () => timed([BIN, '--version'], env),
    'ls -n offline': () => timed([BIN, '--state', offline, 'ls', '-n'], env),
    'ls -n daemon': () => timed([BIN, '--state', served, 'ls', '-n'], env),
    'add offline': () => timed([BIN, '--state', offline, 'firewall', 'work', 'add', 'accept', 'proto=icmp'], env),
    'add daemon': () => timed([BIN, '--state', served, 'firewall', 'work', 'add', 'accept', 'proto=icmp'], env),
  };
  const ms: Record<string, number[]> = Object.fromEntries(Object.keys(cols).map((k) => [k, []]));
  for (const f of Object.values(cols)) f(); // warm the page cache
  for (let i = 0; i < RUNS; i++) for (const [k, f] of Object.entries(cols)) ms[k]!.push(f());
  const med = Object.fromEntries(Object.entries(ms).map(([k, xs]) => [k, median(xs)]));
  const base = med['node']!;
  console.log(table([['command', 'median ms', '× node'], ...Object.keys(cols).map((k) => [k, round(med[k]!), round(med[k]! / base, 2)])]));
  console.log(JSON.stringify({ bench: 'cli-start', runs: RUNS, load: load(), medianMs: med, ratio: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, round(v / base, 2)])) }));
} finally {
  if (daemon?.pid) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.once('exit', r));
  }
  rmSync(offline, { recursive: true, force: true });
  rmSync(served, { recursive: true, force: true });
}
