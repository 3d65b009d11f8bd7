#!/usr/bin/env node
// `npm run bench`: run every compiled benchmark (dist/bench/*.bench.js) in turn, each in a process
// of its own (a bench that leaves state behind cannot skew the next), with its output passed
// through. At the end, one summary line per bench: its exit code, wall time and its JSON line.
// Usage: node scripts/bench.mjs [NAME…]   (names select benches by substring, e.g. `rule-edit`)
// Each bench bounds its own loops; this runner adds a wall-clock limit per bench (QNET_BENCH_TIMEOUT_S,
// default 1800 s) and stops only the bench process it started, by PID.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'bench');
if (!existsSync(dir)) {
  console.error(`no ${dir}: build first (npx tsc -p .)`);
  process.exit(2);
}
const want = process.argv.slice(2);
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => !want.length || want.some((w) => f.includes(w)))
  .sort();
if (!benches.length) {
  console.error(`no benchmarks${want.length ? ` matching ${want.join(', ')}` : ''} in ${dir}`);
  process.exit(2);
}
const limitMs = Number(process.env.QNET_BENCH_TIMEOUT_S ?? 1800) * 1000;

function run(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(dir, file)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let json = null;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line.startsWith('{"bench"')) json = line;
      }
    });
    // SIGINT first, so the bench's finally blocks remove its namespaces; SIGKILL only if it hangs.
    let killer;
    const timer = setTimeout(() => {
      console.error(`\n${file}: over ${limitMs / 1000} s, stopping it (pid ${child.pid})`);
      child.kill('SIGINT');
      killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    }, limitMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      resolve({ file, code: code ?? signal, ms: Date.now() - t0, json });
    });
  });
}

const results = [];
for (const f of benches) {
  console.log(`\n=== ${f} ===`);
  results.push(await run(f));
}
console.log('\n=== summary ===');
for (const r of results) console.log(`${r.file}: exit ${r.code}, ${(r.ms / 1000).toFixed(1)} s${r.json ? `\n  ${r.json}` : ''}`);
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1;
