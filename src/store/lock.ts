// One writer at a time on a state directory. The lock is `<dir>/.lock`:
//
//   <pid>\n start=<ticks>\n role=<cli|daemon>\n
//
// so `cat .lock` tells a user who holds it. `start` is the holder's start time (/proc/<pid>/stat
// field 22): a pid reused by an unrelated process has another start time, so the lock is stale.
// The content is written to a temp file first and link(2)ed to `.lock` (link fails with EEXIST like
// O_EXCL), so `.lock` never exists empty or half-written, whenever we are killed. A lock whose
// holder is dead is stale and is broken. Writers wait for a live holder, bounded; a holder with
// role=daemon holds it for its whole life, so waiting is pointless and we give up at once.
// Node has no flock(2) without native code, and link/O_EXCL also work on NFS.
//
// Codes: QNET3001 the lock is held by a live process; QNET3002 the lock cannot be made (permissions).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { isCode, TEMP_PREFIX } from './atomic.js';
import { lockFilePath } from './paths.js';

export const LOCK_BUSY = 'QNET3001';
export const LOCK_ACCESS = 'QNET3002';

/** How long a writer waits for a live holder by default (FileStore's default too). */
export const DEFAULT_LOCK_WAIT_MS = 10_000;
/** Temp files older than this whose writer is dead are leftovers of a kill, removed. */
const TEMP_MAX_AGE_MS = 60_000;

export type LockRole = 'cli' | 'daemon';

export interface Lock {
  readonly path: string;
  /** Idempotent; removes the lock file only while it is still this lock (same inode and pid). */
  release(): Promise<void>;
}

export interface LockOptions {
  /** Wait this long for a live holder (polling), then throw LockBusyError. Default 0: refuse at once. */
  waitMs?: number;
  /** Called once, when we start waiting, with the holder's pid (null when unknown). */
  onWait?: (holderPid: number | null) => void;
  /** What the lock says about us; `daemon` makes other writers give up at once. Default `cli`. */
  role?: LockRole;
}

/** The lock is held by a live process: which one, and whether it is the daemon. */
export class LockBusyError extends QnetError {
  constructor(
    diagnostic: ConstructorParameters<typeof QnetError>[0],
    readonly holderPid: number | null,
    readonly holderRole: LockRole | null,
  ) {
    super(diagnostic);
  }
}

/** Take the writer lock on `dir` (which must exist), or throw LockBusyError (QNET3001) / QnetError (QNET3002). */
export async function acquireLock(dir: string, opts: LockOptions = {}): Promise<Lock> {
  const path = lockFilePath(dir);
  const deadline = Date.now() + (opts.waitMs ?? 0);
  const role = opts.role ?? 'cli';
  const content = `${process.pid}\nstart=${startTime(process.pid) ?? 0}\nrole=${role}\n`;
  let waited = false;
  let delay = 5;
  await removeLeftovers(dir).catch(() => undefined);
  for (;;) {
    const ino = await createWithContent(path, content, dir);
    if (ino !== undefined) return heldLock(path, ino);
    const holder = await readHolder(path);
    if (holder === undefined) continue; // released between our link and our read
    if (!isLive(holder)) {
      await breakStale(path, holder, dir);
      continue;
    }
    // A daemon holds the lock for its life: waiting would only delay the same refusal.
    if (holder.role === 'daemon' || Date.now() >= deadline) throw busy(dir, path, holder);
    if (!waited) {
      waited = true;
      opts.onWait?.(holder.pid);
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 100);
  }
}

/** Run `fn` holding the lock on `dir`; released on completion and on error. */
export async function withLock<T>(dir: string, fn: () => Promise<T>, opts?: LockOptions): Promise<T> {
  const lock = await acquireLock(dir, opts);
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

/**
 * The start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22), or null when it
 * cannot be read (no /proc, hidepid, no such process). The command name (field 2) may hold spaces
 * and parentheses, so the fields are counted from its last `)`.
 */
export function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = fields[22 - 3]; // fields[0] is field 3 (state)
    return v && /^\d+$/.test(v) ? v : null;
  } catch {
    return null;
  }
}

interface Holder {
  pid: number | null;
  start: string | null;
  role: LockRole | null;
  ino: number;
  mtimeMs: number;
}

/**
 * Create `path` holding `content`, or return undefined when it exists. The content goes to a temp
 * file first, which is linked to `path`: the name appears with its content complete, never empty.
 */
async function createWithContent(path: string, content: string, dir: string): Promise<number | undefined> {
  const tmp = join(dir, `${TEMP_PREFIX}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  let fh;
  try {
    fh = await open(tmp, 'wx', 0o644);
  } catch (e) {
    throw isCode(e, 'EACCES') || isCode(e, 'EPERM') || isCode(e, 'EROFS') ? noAccess(dir, path, e) : e;
  }
  try {
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, path);
    } catch (e) {
      if (isCode(e, 'EEXIST')) return undefined;
      throw isCode(e, 'EACCES') || isCode(e, 'EPERM') ? noAccess(dir, path, e) : e;
    }
    return (await stat(path)).ino;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const [st, text] = await Promise.all([stat(path), readFile(path, 'utf8')]);
    const [first, ...rest] = text.split('\n');
    const pid = /^\s*\d+\s*$/.test(first ?? '') ? Number(first) : null;
    const kv = new Map(rest.map((l) => l.split('=', 2) as [string, string]));
    const start = kv.get('start');
    const role = kv.get('role');
    return {
      pid,
      start: start && start !== '0' && /^\d+$/.test(start) ? start : null,
      role: role === 'daemon' || role === 'cli' ? role : null,
      ino: st.ino,
      mtimeMs: st.mtimeMs,
    };
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined;
    if (isCode(e, 'EACCES') || isCode(e, 'EPERM')) throw noAccess(dirname(path), path, e);
    throw e;
  }
}

/**
 * Live: the pid exists and, when the lock recorded a start time we can compare, it is the same
 * process. A lock without a pid cannot come from this qnet (the content is linked in complete):
 * it is stale at once.
 */
function isLive(h: Holder): boolean {
  if (h.pid === null || !isProcessAlive(h.pid)) return false;
  const now = startTime(h.pid);
  if (now === null) return true;
  if (h.start !== null) return now === h.start;
  // A lock without a start time (an older qnet, or written by hand): a process that started after
  // the lock was written cannot be the one that wrote it.
  const started = startedAtMs(now);
  return started === null || started <= h.mtimeMs + 1000;
}

/** Ticks since boot as epoch milliseconds (btime from /proc/stat; USER_HZ is 100 on Linux). */
function startedAtMs(ticks: string): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) * 1000 + Number(ticks) * 10 : null;
  } catch {
    return null;
  }
}

/**
 * Remove a stale lock. Check-then-unlink is not atomic, so two processes breaking the same stale
 * lock could otherwise remove each other's fresh lock; a second exclusive file (`.lock.break`)
 * makes breaking exclusive, and the inode check makes sure we remove the stale file we inspected.
 * A `.lock.break` left by a crash in these few lines is itself stale and removed the same way.
 * A stale lock means a writer died holding it, maybe mid-write: its temp files go too.
 */
async function breakStale(path: string, stale: Holder, dir: string): Promise<void> {
  const guard = `${path}.break`;
  const guardIno = await createWithContent(guard, `${process.pid}\nstart=${startTime(process.pid) ?? 0}\n`, dir);
  if (guardIno === undefined) {
    const g = await readHolder(guard);
    if (g && !isLive(g)) await unlinkIfSame(guard, g.ino, g.pid ?? undefined);
    else await sleep(1); // someone else is breaking it; the caller retries
    return;
  }
  try {
    const cur = await readHolder(path);
    if (cur && cur.ino === stale.ino && !isLive(cur)) {
      await unlinkIfSame(path, stale.ino, cur.pid ?? undefined);
      await removeLeftovers(dir, true, cur.pid ?? undefined).catch(() => undefined);
    }
  } finally {
    await unlinkIfSame(guard, guardIno, process.pid);
  }
}

/**
 * Remove temp files (`.qnet-tmp-*.<pid>.<hex>`) older than a minute whose writer is dead: what a
 * kill during an atomic write or a lock creation leaves. The top of the state directory always (one
 * readdir); with `deep`, also every qube directory (after a stale lock: a writer died). The temp
 * files of `deadHolder` (the writer that died holding the lock) go whatever their age: only the
 * lock holder writes state files, and it is dead. The age rule covers pids we cannot judge (a
 * state directory shared with another pid namespace).
 */
export async function removeLeftovers(dir: string, deep = false, deadHolder?: number): Promise<number> {
  const dirs = [dir];
  if (deep)
    for (const cls of ['appvms', 'vm-templates']) {
      const names = await readdir(join(dir, cls)).catch(() => [] as string[]);
      for (const n of names) dirs.push(join(dir, cls, n));
    }
  let removed = 0;
  const now = Date.now();
  for (const d of dirs) {
    const names = await readdir(d).catch(() => [] as string[]);
    for (const n of names) {
      if (!n.startsWith(TEMP_PREFIX)) continue;
      const m = /\.(\d+)\.[0-9a-f]+$/.exec(n);
      if (!m || isProcessAlive(Number(m[1]))) continue;
      const p = join(d, n);
      try {
        const st = await stat(p);
        if (!st.isFile() || (Number(m[1]) !== deadHolder && now - st.mtimeMs < TEMP_MAX_AGE_MS)) continue;
        await unlink(p);
        removed++;
      } catch {
        // gone already, or not ours to remove
      }
    }
  }
  return removed;
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

function busy(dir: string, path: string, h: Holder): LockBusyError {
  const who = h.pid === null ? 'another qnet' : h.role === 'daemon' ? `the qnet daemon (pid ${h.pid})` : `another qnet (pid ${h.pid})`;
  const message =
    h.role === 'daemon'
      ? `${who} is the writer of ${dir}; it serves every change while it runs`
      : `${who} is changing ${dir}; wait for it or, if no qnet is running, remove ${path}`;
  const hint = h.role === 'daemon' ? 'run the command with the daemon reachable (the same user, its socket), or stop it first' : undefined;
  return new LockBusyError(diag(LOCK_BUSY, message, { file: path, ...(hint ? { hint } : {}) }), h.pid, h.role);
}

function noAccess(dir: string, path: string, e: unknown): QnetError {
  const code = (e as { code?: string }).code ?? 'error';
  return new QnetError(
    diag(LOCK_ACCESS, `cannot take the lock ${path}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'}`, {
      file: path,
      hint: `changing ${dir} needs write access to it (run as its owner, root for /var/lib/qnet)`,
    }),
  );
}
