// kill -9 at random moments during writes, 1,000 times (issue 9 acceptance): after every round of
// kills, no state file is corrupt (every qube's firewall.xml and qubes.json read) and the next
// writer gets the lock within 1 s; at the end no temp file is left once leftovers are swept.
// Not a *.bench.ts: it takes minutes, so `npm run bench` does not run it. Needs dist/ (the writers
// are separate node processes importing the compiled store).
// Run: npx tsc -p . && node dist/bench/store-kill.js [KILLS=1000] [WRITERS=5]
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultLayout } from '../src/model/layout.js';
import { FileStore } from '../src/store/file-store.js';
import { checkAfterKill, killRounds, tempFiles } from '../src/store/kill.test-helpers.js';
import { removeLeftovers } from '../src/store/lock.js';
import { load } from './support.js';

const kills = Number(process.argv[2] ?? 1000);
const writers = Number(process.argv[3] ?? 5);
const parent = await mkdtemp(join(tmpdir(), 'qnet-kill-'));
const dir = join(parent, 'state');
try {
  await new FileStore(dir).update((m) => {
    Object.assign(m, defaultLayout());
    m.qubes.get('work')!.rules = [];
  });
  const loadBefore = load();
  const stats = await killRounds(dir, { rounds: Math.ceil(kills / writers), writers, budgetMs: 3600_000 });
  const left = await tempFiles(dir);
  const old = new Date(Date.now() - 120_000);
  for (const p of left) await utimes(join(dir, p), old, old);
  await removeLeftovers(dir, true);
  const after = await tempFiles(dir);
  await checkAfterKill(dir);
  const ok = stats.maxWaitMs < 1000 && after.length === 0;
  console.log('kills  rounds  elapsed_s  slowest_next_writer_ms  temp_left_by_kills  temp_after_sweep  load');
  console.log(`${stats.kills}  ${stats.rounds}  ${(stats.elapsedMs / 1000).toFixed(1)}  ${stats.maxWaitMs}  ${left.length}  ${after.length}  ${loadBefore.join(',')}`);
  console.log(JSON.stringify({ bench: 'store-kill', ok, ...stats, tempLeftByKills: left.length, tempAfterSweep: after.length, load: loadBefore }));
  process.exitCode = ok ? 0 : 1;
} finally {
  await rm(parent, { recursive: true, force: true });
}
