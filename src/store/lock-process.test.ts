// The writer lock between real processes (issue 9, item 3): an empty or half-made lock, a pid that
// was reused, writers that wait instead of failing, a daemon that holds the lock for its life,
// and kill -9 at random moments during writes. QNET_KILL_ROUNDS scales the kill test (default 20
// rounds of 5 writers = 100 kills, at most 60 s); bench/store-kill.ts runs 1,000 kills.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { defaultLayout } from '../model/layout.js';
import { QnetError } from '../model/result.js';
import { TEMP_PREFIX } from './atomic.js';
import { FileStore } from './file-store.js';
import { checkAfterKill, killRounds, runWriter, tempFiles, writerScript } from './kill.test-helpers.js';
import { acquireLock, LOCK_ACCESS, LOCK_BUSY, LockBusyError, removeLeftovers, startTime } from './lock.js';

const isRoot = process.getuid?.() === 0;

async function seeded(t: TestContext): Promise<{ dir: string; store: FileStore }> {
  const parent = await mkdtemp(join(tmpdir(), 'qnet-lockp-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  const dir = join(parent, 'state');
  const store = new FileStore(dir);
  await store.update((m) => {
    Object.assign(m, defaultLayout());
    m.qubes.get('work')!.rules = [];
  });
  return { dir, store };
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now();
  const v = await f();
  return [v, Date.now() - t0];
}

test('an empty lock (a kill between create and write, by an older qnet) does not stop the next writer', async (t) => {
  const { dir, store } = await seeded(t);
  await writeFile(join(dir, '.lock'), '');
  const [, ms] = await timed(() => store.update((m) => void (m.qubes.get('work')!.label = 'red')));
  assert.ok(ms < 1000, `${ms} ms`);
  assert.ok(!(await readdir(dir)).includes('.lock'));
});

test('a lock naming a live but unrelated process (a reused pid) is stale', async (t) => {
  const { dir, store } = await seeded(t);
  const sleeper = spawn('sleep', ['30']);
  t.after(() => sleeper.kill());
  await once(sleeper, 'spawn');
  // with a start time that is not the process's
  await writeFile(join(dir, '.lock'), `${sleeper.pid}\nstart=1\nrole=cli\n`);
  let [, ms] = await timed(() => store.update((m) => void (m.qubes.get('work')!.label = 'red')));
  assert.ok(ms < 1000, `${ms} ms`);
  // in the old format (pid only), written before the process started
  await writeFile(join(dir, '.lock'), `${sleeper.pid}\n`);
  const old = new Date(Date.now() - 3600_000);
  await utimes(join(dir, '.lock'), old, old);
  [, ms] = await timed(() => store.update((m) => void (m.qubes.get('work')!.label = 'blue')));
  assert.ok(ms < 1000, `${ms} ms`);
  // but a lock with its true start time is live
  await writeFile(join(dir, '.lock'), `${sleeper.pid}\nstart=${startTime(sleeper.pid!)}\nrole=cli\n`);
  await assert.rejects(new FileStore(dir, { lockWaitMs: 100 }).update(() => undefined), (e: unknown) => e instanceof LockBusyError && e.holderPid === sleeper.pid);
});

test('a writer waits for a live holder, telling once who it waits for', async (t) => {
  const { dir } = await seeded(t);
  const lock = await acquireLock(dir);
  const waits: (number | null)[] = [];
  const store = new FileStore(dir, { onLockWait: (pid) => waits.push(pid) });
  setTimeout(() => void lock.release(), 300);
  const [, ms] = await timed(() => store.update((m) => void (m.qubes.get('work')!.label = 'red')));
  assert.ok(ms >= 250 && ms < 2000, `${ms} ms`);
  assert.deepEqual(waits, [process.pid]);
});

test('a daemon holds the lock for its life: its updates run under it, other writers give up at once', async (t) => {
  const { dir } = await seeded(t);
  const daemon = new FileStore(dir);
  const lock = await daemon.holdLock();
  await daemon.update((m) => void (m.qubes.get('work')!.label = 'red'));
  await daemon.update((m) => void (m.qubes.get('work')!.label = 'blue'));
  const [err, ms] = await timed(() => new FileStore(dir).update(() => undefined).then(() => undefined, (e: unknown) => e));
  assert.ok(ms < 1000, `${ms} ms`);
  assert.ok(err instanceof LockBusyError);
  assert.equal(err.diag.code, LOCK_BUSY);
  assert.equal(err.holderRole, 'daemon');
  assert.equal(err.holderPid, process.pid);
  assert.match(err.message, new RegExp(`the qnet daemon \\(pid ${process.pid}\\)`));
  await lock.release();
  await new FileStore(dir).update((m) => void (m.qubes.get('work')!.label = 'green'));
  assert.equal((await daemon.load()).qubes.get('work')!.label, 'green');
});

/** As root, the same check runs in a process of `nobody` (root may write anywhere); skipped only without runuser. */
const noRunuser = isRoot && spawnSync('sh', ['-c', 'command -v runuser']).status !== 0 ? 'as root this needs runuser (util-linux) to run as nobody' : false;

test('no permission to make the lock is a clear error, not a bug', { skip: noRunuser }, async (t) => {
  const { dir } = await seeded(t);
  await chmod(dir, 0o555);
  try {
    if (!isRoot) {
      await assert.rejects(new FileStore(dir).update(() => undefined), (e: unknown) => e instanceof QnetError && e.diag.code === LOCK_ACCESS && e.message.includes(join(dir, '.lock')));
      return;
    }
    // A process of nobody that may read the state directory but not write in it.
    await chmod(join(dir, '..'), 0o755).catch(() => {});
    const store = new URL('./file-store.js', import.meta.url).href;
    const script = `const { FileStore } = await import(${JSON.stringify(store)});
      try { await new FileStore(${JSON.stringify(dir)}).update(() => undefined); console.log('written'); }
      catch (e) { console.log(JSON.stringify({ code: e.diag?.code ?? null, message: e.message })); }`;
    const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const out = JSON.parse(r.stdout.trim() || 'null') as { code: string | null; message: string } | null;
    assert.equal(out?.code, LOCK_ACCESS, `${r.stdout}${r.stderr}`);
    assert.ok(out!.message.includes(join(dir, '.lock')), out!.message);
  } finally {
    await chmod(dir, 0o755);
  }
});

test('leftover temp files of dead writers go once they are a minute old; live writers\' stay', async (t) => {
  const { dir, store } = await seeded(t);
  const dead = spawn(process.execPath, ['-e', '']);
  await once(dead, 'exit');
  const old = new Date(Date.now() - 120_000);
  const files = {
    deadOld: join(dir, `${TEMP_PREFIX}qubes.json.${dead.pid}.abcd1234`),
    deadYoung: join(dir, `${TEMP_PREFIX}.lock.${dead.pid}.abcd1235`),
    liveOld: join(dir, `${TEMP_PREFIX}qubes.json.${process.pid}.abcd1236`),
    deadOldDeep: join(dir, 'appvms/work', `${TEMP_PREFIX}firewall.xml.${dead.pid}.abcd1237`),
  };
  for (const f of Object.values(files)) await writeFile(f, 'x');
  for (const f of [files.deadOld, files.liveOld, files.deadOldDeep]) await utimes(f, old, old);
  await store.update((m) => void (m.qubes.get('work')!.label = 'red'));
  let left = await tempFiles(dir);
  assert.ok(!left.some((p) => files.deadOld.endsWith(p)), 'the old temp file of a dead writer is gone');
  assert.ok(left.some((p) => files.deadYoung.endsWith(p)) && left.some((p) => files.liveOld.endsWith(p)));
  // qube directories are searched after a writer died holding the lock (or when asked)
  assert.equal(await removeLeftovers(dir, true), 1);
  left = await tempFiles(dir);
  assert.ok(!left.some((p) => files.deadOldDeep.endsWith(p)));
});

test('8 writers in parallel processes all succeed (they wait their turn)', { timeout: 60_000 }, async (t) => {
  const { dir, store } = await seeded(t);
  const script = await writerScript(dir);
  const kids = Array.from({ length: 8 }, () => runWriter(script, dir, 'add'));
  const codes = await Promise.all(
    kids.map(async (k) => {
      let err = '';
      k.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const [code] = (await once(k, 'exit')) as [number | null];
      return { code, err };
    }),
  );
  assert.deepEqual(codes.map((c) => c.code), Array(8).fill(0), codes.map((c) => c.err).join('\n'));
  assert.equal((await store.load()).qubes.get('work')!.rules!.length, 8);
});

test('kill -9 at random moments during writes: no corrupt file, no lock that blocks the next writer for 1 s', { timeout: 120_000 }, async (t) => {
  const { dir } = await seeded(t);
  const rounds = Number(process.env.QNET_KILL_ROUNDS ?? 20);
  const stats = await killRounds(dir, { rounds, writers: 5, budgetMs: Number(process.env.QNET_KILL_BUDGET_MS ?? 60_000) });
  t.diagnostic(`kill -9: ${stats.kills} kills in ${stats.rounds} rounds, ${stats.elapsedMs} ms; slowest next writer ${stats.maxWaitMs} ms`);
  assert.ok(stats.rounds >= Math.min(rounds, 10), `only ${stats.rounds} rounds in the time budget`);
  assert.ok(stats.maxWaitMs < 1000, `the next writer waited ${stats.maxWaitMs} ms`);
  // what the kills left: temp files of dead writers only, gone once old
  for (const p of await tempFiles(dir)) {
    const old = new Date(Date.now() - 120_000);
    await utimes(join(dir, p), old, old);
  }
  await removeLeftovers(dir, true);
  assert.deepEqual(await tempFiles(dir), []);
  await checkAfterKill(dir);
});
