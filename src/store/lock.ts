// One writer at a time on a state directory. The lock is `<dir>/.lock`, created with O_EXCL and
// holding the writer's pid, so `cat .lock` tells a user who holds it. A second writer is refused at
// once (no waiting: the CLI should say so rather than hang). A lock whose pid is dead is stale and
// is taken over. Node has no flock(2) without native code, and an O_EXCL file also works on NFS.
//
// Codes: QNET3001 the lock is held by a live process.
import { open, readFile, rm, stat, unlink } from 'node:fs/promises';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { isCode } from './atomic.js';
import { lockFilePath } from './paths.js';

export const LOCK_BUSY = 'QNET3001';

/** A lock file with no readable pid younger than this is still being written by its creator. */
const UNREADABLE_GRACE_MS = 10_000;

export interface Lock {
  readonly path: string;
  /** Idempotent; removes the lock file only while it is still this lock (same inode). */
  release(): Promise<void>;
}

/** Take the writer lock on `dir` (which must exist), or throw QnetError QNET3001. */
export async function acquireLock(dir: string): Promise<Lock> {
  const path = lockFilePath(dir);
  // A few rounds: each lost race (the holder released, a stale lock was broken) gets a fresh try.
  for (let round = 0; round < 5; round++) {
    const ino = await tryCreate(path);
    if (ino !== undefined) return heldLock(path, ino);
    const holder = await readHolder(path);
    if (holder === undefined) continue; // released between our create and our read
    if (isLive(holder)) throw busy(dir, path, holder.pid);
    await breakStale(path, holder.ino);
  }
  const holder = await readHolder(path);
  throw busy(dir, path, holder?.pid ?? null);
}

/** Run `fn` holding the lock on `dir`; released on completion and on error. */
export async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(dir);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** kill(pid, 0): ESRCH means no such process; EPERM means it exists but belongs to someone else. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isCode(e, 'EPERM');
  }
}

interface Holder {
  pid: number | null;
  ino: number;
  mtimeMs: number;
}

async function tryCreate(path: string): Promise<number | undefined> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o644);
  } catch (e) {
    if (isCode(e, 'EEXIST')) return undefined;
    throw e;
  }
  let done = false;
  try {
    await fh.writeFile(`${process.pid}\n`);
    await fh.sync();
    const { ino } = await fh.stat();
    done = true;
    return ino;
  } finally {
    await fh.close();
    if (!done) await rm(path, { force: true });
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const [st, text] = await Promise.all([stat(path), readFile(path, 'utf8')]);
    const m = /^\s*(\d+)\s*$/.exec(text);
    return { pid: m ? Number(m[1]) : null, ino: st.ino, mtimeMs: st.mtimeMs };
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** A holder whose pid we cannot read yet is live for a grace period (it may be mid-write). */
function isLive(h: Holder): boolean {
  if (h.pid === null) return Date.now() - h.mtimeMs < UNREADABLE_GRACE_MS;
  return isProcessAlive(h.pid);
}

/**
 * Remove a stale lock. Check-then-unlink is not atomic, so two processes breaking the same stale
 * lock could otherwise remove each other's fresh lock; a second O_EXCL file (`.lock.break`) makes
 * breaking exclusive, and the inode check makes sure we remove the stale file we inspected.
 * A `.lock.break` left by a crash in these few lines is itself stale and removed the same way.
 */
async function breakStale(path: string, staleIno: number): Promise<void> {
  const guard = `${path}.break`;
  const guardIno = await tryCreate(guard);
  if (guardIno === undefined) {
    const g = await readHolder(guard);
    if (g && !isLive(g)) await unlinkIfSame(guard, g.ino, g.pid ?? undefined);
    return; // someone else is breaking it; the caller retries
  }
  try {
    const cur = await readHolder(path);
    if (cur && cur.ino === staleIno && !isLive(cur)) await unlinkIfSame(path, staleIno, cur.pid ?? undefined);
  } finally {
    await unlinkIfSame(guard, guardIno, process.pid);
  }
}

/**
 * Unlink `path` if it is still the file we mean: same inode and, when given, the same pid inside
 * (inode numbers are reused at once on tmpfs and ext4, so the inode alone is not proof).
 */
async function unlinkIfSame(path: string, ino: number, pid?: number): Promise<void> {
  const h = await readHolder(path);
  if (!h || h.ino !== ino || (pid !== undefined && h.pid !== pid)) return;
  try {
    await unlink(path);
  } catch (e) {
    if (!isCode(e, 'ENOENT')) throw e;
  }
}

function heldLock(path: string, ino: number): Lock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      await unlinkIfSame(path, ino, process.pid);
    },
  };
}

function busy(dir: string, path: string, pid: number | null): QnetError {
  const who = pid === null ? 'another qnet' : `another qnet (pid ${pid})`;
  return new QnetError(
    diag(LOCK_BUSY, `${who} is changing ${dir}; wait for it or, if no qnet is running, remove ${path}`, {
      file: path,
    }),
  );
}
