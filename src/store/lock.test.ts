import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { QnetError } from '../model/result.js';
import { acquireLock, isProcessAlive, LOCK_BUSY, startTime, withLock } from './lock.js';

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The pid of a process that has exited (and been reaped), so nobody holds it for now. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

function isBusy(dir: string, pid: number) {
  return (e: unknown) => {
    assert.ok(e instanceof QnetError);
    assert.equal(e.diag.code, LOCK_BUSY);
    assert.equal(
      e.message,
      `another qnet (pid ${pid}) is changing ${dir}; wait for it or, if no qnet is running, remove ${join(dir, '.lock')}`,
    );
    return true;
  };
}

test('the lock file holds our pid while held and is gone after release', async (t) => {
  const dir = await scratch(t);
  const lock = await acquireLock(dir);
  assert.equal(await readFile(join(dir, '.lock'), 'utf8'), `${process.pid}\nstart=${startTime(process.pid)}\nrole=cli\n`);
  await lock.release();
  await lock.release(); // idempotent
  assert.deepEqual(await readdir(dir), []);
});

test('a second writer is refused at once, naming the holder and the lock file', async (t) => {
  const dir = await scratch(t);
  const lock = await acquireLock(dir);
  await assert.rejects(acquireLock(dir), isBusy(dir, process.pid));
  await lock.release();
  await (await acquireLock(dir)).release();
});

test('a lock file naming a live pid (this process) refuses, and is left in place', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, '.lock'), `${process.pid}\n`);
  await assert.rejects(acquireLock(dir), isBusy(dir, process.pid));
  assert.equal(await readFile(join(dir, '.lock'), 'utf8'), `${process.pid}\n`);
});

test('a lock held by another process is refused', async (t) => {
  const dir = await scratch(t);
  // Run from source under tsx, or from dist/ after tsc (npm test): load the sibling the same way.
  const fromSource = import.meta.url.endsWith('.ts');
  const lockModule = new URL(fromSource ? './lock.ts' : './lock.js', import.meta.url).href;
  const script = `const { acquireLock } = await import(${JSON.stringify(lockModule)});
    const l = await acquireLock(${JSON.stringify(dir)}); console.log('held');
    process.stdin.once('end', async () => { await l.release(); console.log('released'); }); process.stdin.resume();`;
  const child = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  const out: string[] = [];
  child.stdout.setEncoding('utf8');
  const said = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (out.join('').includes(word) ? resolve() : undefined);
      child.stdout.on('data', (d: string) => (out.push(d), check()));
      child.once('exit', () => reject(new Error(`child exited before '${word}': ${out.join('')}`)));
      check();
    });
  await said('held');
  await assert.rejects(acquireLock(dir), isBusy(dir, child.pid!));
  child.stdin.end();
  await said('released');
  await (await acquireLock(dir)).release();
});

test('a stale lock (holder dead) is taken over', async (t) => {
  const dir = await scratch(t);
  const pid = await deadPid();
  assert.equal(isProcessAlive(pid), false);
  await writeFile(join(dir, '.lock'), `${pid}\n`);
  const lock = await acquireLock(dir);
  assert.match(await readFile(join(dir, '.lock'), 'utf8'), new RegExp(`^${process.pid}\n`));
  await lock.release();
  assert.deepEqual(await readdir(dir), []);
});

test('many writers racing for one stale lock: exactly one wins, no break file is left', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, '.lock'), `${await deadPid()}\n`);
  const results = await Promise.allSettled(Array.from({ length: 12 }, () => acquireLock(dir)));
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1);
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as QnetError).diag.code, LOCK_BUSY);
  assert.deepEqual(await readdir(dir), ['.lock']);
  await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
});

test('a lock file without a pid is stale at once (qnet links its lock in complete, never empty)', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, '.lock');
  for (const junk of ['', 'garbage\n', '\n\n']) {
    await writeFile(path, junk);
    const t0 = Date.now();
    await (await acquireLock(dir)).release();
    assert.ok(Date.now() - t0 < 1000);
  }
});

test('release leaves alone a lock that is no longer ours', async (t) => {
  const dir = await scratch(t);
  const lock = await acquireLock(dir);
  await rm(join(dir, '.lock'));
  await writeFile(join(dir, '.lock'), '1\n');
  await lock.release();
  assert.equal(await readFile(join(dir, '.lock'), 'utf8'), '1\n');
});

test('withLock releases on success and on error', async (t) => {
  const dir = await scratch(t);
  assert.equal(await withLock(dir, async () => 42), 42);
  await assert.rejects(withLock(dir, async () => Promise.reject(new Error('boom'))), /boom/);
  assert.deepEqual(await readdir(dir), []);
});
