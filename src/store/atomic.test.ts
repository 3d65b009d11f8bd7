import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { mkdirDurable, removeDirIfEmpty, removeFileDurable, writeFileAtomic } from './atomic.js';

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('writes a new file with mode 0664 whatever the umask, and leaves no temp file', async (t) => {
  const dir = await scratch(t);
  const f = join(dir, 'firewall.xml');
  await writeFileAtomic(f, 'hello\n');
  assert.equal(await readFile(f, 'utf8'), 'hello\n');
  assert.equal((await stat(f)).mode & 0o777, 0o664);
  assert.deepEqual(await readdir(dir), ['firewall.xml']);
});

test('replaces by rename: a reader holding the old inode still sees the old bytes', async (t) => {
  const dir = await scratch(t);
  const f = join(dir, 'qubes.json');
  await writeFile(f, 'old');
  const before = (await stat(f)).ino;
  await writeFileAtomic(f, Buffer.from('new'), 0o600);
  assert.equal(await readFile(f, 'utf8'), 'new');
  assert.notEqual((await stat(f)).ino, before);
  assert.equal((await stat(f)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['qubes.json']);
});

test('a failed write leaves the old file intact and removes the temp file', async (t) => {
  const dir = await scratch(t);
  // The target is a non-empty directory: the rename fails after the temp file was written.
  const target = join(dir, 'firewall.xml');
  await mkdir(target);
  await writeFile(join(target, 'keep'), 'x');
  await assert.rejects(writeFileAtomic(target, 'data'), (e: NodeJS.ErrnoException) => ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(e.code!));
  assert.deepEqual(await readdir(dir), ['firewall.xml']);
  assert.equal(await readFile(join(target, 'keep'), 'utf8'), 'x');
});

test('a missing directory fails before anything is created', async (t) => {
  const dir = await scratch(t);
  await assert.rejects(writeFileAtomic(join(dir, 'nope', 'f'), 'x'), { code: 'ENOENT' });
  assert.deepEqual(await readdir(dir), []);
});

test('mkdirDurable, removeFileDurable and removeDirIfEmpty', async (t) => {
  const dir = await scratch(t);
  const d = join(dir, 'appvms', 'work');
  await mkdirDurable(d);
  await mkdirDurable(d); // again: nothing to do
  await writeFileAtomic(join(d, 'firewall.xml'), 'x');
  assert.equal(await removeDirIfEmpty(d), false);
  assert.equal(await removeFileDurable(join(d, 'firewall.xml')), true);
  assert.equal(await removeFileDurable(join(d, 'firewall.xml')), false);
  assert.equal(await removeDirIfEmpty(d), true);
  assert.equal(await removeDirIfEmpty(d), false);
  assert.deepEqual(await readdir(join(dir, 'appvms')), []);
});
