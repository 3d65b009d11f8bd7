// Writers in real processes, for the lock tests and bench/store-kill: a small ESM script that
// imports the compiled store (dist/) and runs FileStore.update in a loop, and rounds of kill -9
// at random moments with checks in between. Run from dist/ only (the children import .js files).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileStore } from './file-store.js';
import { TEMP_PREFIX } from './atomic.js';

const storeModule = new URL('./file-store.js', import.meta.url).href;
const layoutModule = new URL('../model/layout.js', import.meta.url).href;

/**
 * The writer script. Modes: `add` adds one rule to work and exits; `loop` writes forever (rules
 * of work grow and are reset, personal's label flips, a qube `tmpq` comes and goes), printing
 * `ready` after its first update.
 */
export async function writerScript(dir: string): Promise<string> {
  const path = join(dir, '..', `writer-${process.pid}-${Date.now()}.mjs`);
  await writeFile(
    path,
    `import { FileStore } from ${JSON.stringify(storeModule)};
import { newQube } from ${JSON.stringify(layoutModule)};
const [dir, mode] = process.argv.slice(2);
const store = new FileStore(dir);
const rule = (i) => ({ action: 'accept', proto: 'tcp', dstports: { start: 1 + (i % 65000), end: 1 + (i % 65000) }, comment: 'writer ' + process.pid });
if (mode === 'add') {
  await store.update((m) => { m.qubes.get('work').rules.push(rule(process.pid)); });
} else {
  for (let i = 0; ; i++) {
    await store.update((m) => {
      const work = m.qubes.get('work');
      work.rules = work.rules.length > 200 ? [] : [...work.rules, ...Array.from({ length: 1 + (i % 50) }, (_, j) => rule(i * 50 + j))];
      const p = m.qubes.get('personal');
      p.label = p.label === 'red' ? 'blue' : 'red';
      if (m.qubes.has('tmpq')) m.qubes.delete('tmpq');
      else m.qubes.set('tmpq', newQube(200, 'tmpq', 'gray', { rules: [rule(i)] }));
    });
    if (i === 0) process.stdout.write('ready\\n');
  }
}
`,
  );
  return path;
}

export function runWriter(script: string, dir: string, mode: 'add' | 'loop'): ChildProcess {
  return spawn(process.execPath, [script, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every file reads (no qube marked broken, qubes.json parses) and the next writer gets in fast. */
export async function checkAfterKill(dir: string): Promise<{ waitMs: number }> {
  const store = new FileStore(dir, { lockWaitMs: 5000 });
  const m = await store.load();
  for (const q of m.qubes.values()) assert.equal(q.rulesProblem, undefined, `${q.name}: ${q.rulesProblem?.message}`);
  assert.ok(m.qubes.has('work') && m.qubes.has('personal'));
  const t0 = Date.now();
  await store.update((mm) => void (mm.qubes.get('personal')!.label = 'green'));
  return { waitMs: Date.now() - t0 };
}

export interface KillStats {
  rounds: number;
  kills: number;
  maxWaitMs: number;
  elapsedMs: number;
}

/**
 * Rounds of: start `writers` looping writers, wait until they write, wait 0–`jitterMs` more, kill
 * -9 them all, then checkAfterKill. Stops after `rounds` rounds or `budgetMs`, whichever first.
 */
export async function killRounds(dir: string, o: { rounds: number; budgetMs: number; writers?: number; jitterMs?: number }): Promise<KillStats> {
  const script = await writerScript(dir);
  const stats: KillStats = { rounds: 0, kills: 0, maxWaitMs: 0, elapsedMs: 0 };
  const start = Date.now();
  while (stats.rounds < o.rounds && Date.now() - start < o.budgetMs) {
    const kids = Array.from({ length: o.writers ?? 3 }, () => runWriter(script, dir, 'loop'));
    try {
      await Promise.all(
        kids.map(async (k) => {
          let out = '';
          let err = '';
          k.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
          k.stdout!.setEncoding('utf8');
          for await (const d of k.stdout!) if ((out += d).includes('ready')) return;
          if (k.exitCode === null && k.signalCode === null) await once(k, 'exit');
          throw new Error(`writer exited before writing (${k.exitCode ?? k.signalCode}): ${out}${err}`);
        }),
      );
      await sleep(Math.random() * (o.jitterMs ?? 40));
    } finally {
      for (const k of kids) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
      await Promise.all(kids.map((k) => (k.exitCode === null && k.signalCode === null ? once(k, 'exit') : undefined)));
    }
    stats.kills += kids.length;
    const { waitMs } = await checkAfterKill(dir);
    stats.maxWaitMs = Math.max(stats.maxWaitMs, waitMs);
    stats.rounds++;
  }
  stats.elapsedMs = Date.now() - start;
  return stats;
}

/** Temp files anywhere in the state directory. */
export async function tempFiles(dir: string): Promise<string[]> {
  const all = await readdir(dir, { recursive: true });
  return all.filter((p) => p.split('/').pop()!.startsWith(TEMP_PREFIX));
}
