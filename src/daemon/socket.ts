// Where the daemon listens, and how a client proves that what listens there is the daemon.
//
// The socket is an *abstract* Unix socket. Abstract sockets belong to the network namespace they
// were bound in, so no process inside a qube (another network namespace) can even connect — unlike
// a socket file, which every namespace sharing the filesystem could reach. But any user of the host
// namespace can bind an abstract name, first come first served, so the name proves nothing. Node has
// no SO_PEERCRED; /proc tells the same without native code:
//   - the daemon, once it holds the name, writes run/daemon.pid (`<pid> <start time>`) into its own
//     run directory (0700), and the bearer token (0600) beside it;
//   - a client trusts the pid file only if its owner is root or the client itself, the process it
//     names is alive, runs as that owner and has the recorded start time (a stale file or a reused
//     pid is not trusted), and the listening socket bound to the name (/proc/self/net/unix) is one of
//     that process's open files (/proc/<pid>/fd → socket:[inode]).
// The daemon's side of it (claimSocket, publishDaemon, withdrawDaemon) and the client's (verify*)
// are here together so they cannot drift apart.
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, chmod, open, readdir, readFile, readlink, unlink } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { fsyncDir, isCode, writeFileAtomic } from '../store/atomic.js';
import { runDir } from '../store/paths.js';

export function socketName(stateDir: string): string {
  return `\0qnet:${createHash('sha256').update(stateDir).digest('hex').slice(0, 24)}`;
}

export const tokenPath = (runDir: string) => join(runDir, 'daemon.token');
export const pidPath = (runDir: string) => join(runDir, 'daemon.pid');

/** A fresh bearer token, kept in memory until publishDaemon writes it. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

// ---- /proc ------------------------------------------------------------------------------------

/** __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket listens. */
const SO_ACCEPTCON = 0x10000;

/**
 * The inodes of listening sockets bound to the abstract `name` in this process's network namespace.
 * /proc/net/unix shows the name's NULs as '@', and Node binds abstract names padded with NULs to the
 * whole sun_path, so trailing '@'s are dropped before comparing; a name that differs from ours only
 * there counts too, which only errs towards refusing. More than one inode means a forgery: abstract
 * names are printed raw, so a user can bind one holding a newline and a made-up line. Callers trust
 * only exactly one.
 */
export async function listeningInodes(name: string): Promise<number[]> {
  const shown = '@' + name.slice(1).replace(/\0+$/, '');
  const text = await readFile('/proc/self/net/unix', 'utf8');
  const found = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path — Path exactly, never a prefix of something longer.
    const m = /^\s*[0-9A-Fa-f]+: [0-9A-Fa-f]+ [0-9A-Fa-f]+ ([0-9A-Fa-f]+) [0-9A-Fa-f]+ [0-9A-Fa-f]+ +(\d+) (.*)$/.exec(line);
    if (m && m[3]!.replace(/@+$/, '') === shown && (parseInt(m[1]!, 16) & SO_ACCEPTCON) !== 0) found.add(Number(m[2]));
  }
  return [...found];
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null when no such process. */
export async function startTime(pid: number | 'self'): Promise<string | null> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    if (isCode(e, 'ENOENT') || isCode(e, 'ESRCH')) return null;
    throw e;
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[22 - 3] ?? null;
}

/** Real and effective uid of a process, or null when it is gone. */
async function uidsOf(pid: number): Promise<[number, number] | null> {
  try {
    const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? [Number(m[1]), Number(m[2])] : null;
  } catch (e) {
    if (isCode(e, 'ENOENT') || isCode(e, 'ESRCH')) return null;
    throw e;
  }
}

/** Whether `socket:[inode]` is among the process's open files. */
async function hasSocket(pid: number, inode: number): Promise<boolean> {
  const want = `socket:[${inode}]`;
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === want) return true;
  return false;
}

/** Who has the socket open (for messages only: a non-root caller sees only its own processes). */
export async function holderOf(inode: number): Promise<{ pid: number; uid: number } | undefined> {
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p)).map(Number);
  for (const pid of pids) {
    if (pid === process.pid) continue;
    if (await hasSocket(pid, inode)) return { pid, uid: (await uidsOf(pid))?.[0] ?? -1 };
  }
  return (await hasSocket(process.pid, inode)) ? { pid: process.pid, uid: process.getuid?.() ?? -1 } : undefined;
}

// ---- run files --------------------------------------------------------------------------------

const myUid = () => process.getuid?.() ?? -1;

/** The uids whose run files this process may trust: root's, and its own. */
const trustedOwner = (uid: number) => uid === 0 || uid === myUid();

/**
 * Read a run file without following a link, refusing one that a user we do not trust owns or can
 * write. `secret` also refuses one that others can read. Errors from open (EACCES, ENOENT) pass on.
 */
async function readRunFile(path: string, secret: boolean, maxBytes = 256): Promise<{ text: string; uid: number }> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    const loose = secret ? 0o077 : 0o022;
    if (!st.isFile() || !trustedOwner(st.uid) || (st.mode & loose) !== 0)
      throw new Untrusted(`${path} is not a file that only root${myUid() === 0 ? '' : ' or you'} may write (owner ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
    const buf = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > maxBytes) throw new Untrusted(`${path} is too large`);
    return { text: buf.subarray(0, bytesRead).toString('utf8'), uid: st.uid };
  } finally {
    await fh.close();
  }
}

/** A run file that is there but must not be believed. */
export class Untrusted extends Error {}

export interface PidFile {
  pid: number;
  start: string;
  /** The file's owner: the uid the daemon must run as. */
  uid: number;
}

export async function readPidFile(stateDir: string): Promise<PidFile> {
  const path = pidPath(runDir(stateDir));
  const { text, uid } = await readRunFile(path, false);
  const m = /^([1-9]\d{0,9}) (\d{1,20})\n$/.exec(text);
  if (!m) throw new Untrusted(`${path} does not say "<pid> <start time>"`);
  return { pid: Number(m[1]), start: m[2]!, uid };
}

export async function readToken(stateDir: string, daemonUid: number): Promise<string> {
  const path = tokenPath(runDir(stateDir));
  const { text, uid } = await readRunFile(path, true);
  const m = /^([0-9a-f]{64})\n$/.exec(text);
  if (uid !== daemonUid || !m) throw new Untrusted(`${path} is not the daemon's token`);
  return m[1]!;
}

/**
 * Whether `p` names a live process, started when the file says, running as the file's owner.
 * The start time is read again after the other checks: a pid reused meanwhile is caught.
 */
export async function isLive(p: PidFile): Promise<boolean> {
  if ((await startTime(p.pid)) !== p.start) return false;
  const uids = await uidsOf(p.pid);
  return uids !== null && uids[0] === p.uid && uids[1] === p.uid && (await startTime(p.pid)) === p.start;
}

/** Whether the live process `p` holds the listening socket `inode` (checked again for a reused pid). */
export async function owns(p: PidFile, inode: number): Promise<boolean> {
  return (await hasSocket(p.pid, inode)) && (await isLive(p));
}

// ---- the daemon's side ------------------------------------------------------------------------

/**
 * Bind the daemon's name. It comes first in start (before the daemon touches anything): the name
 * can be held by one socket only, so a second daemon stops here, and so does a daemon whose name
 * another process took. Nothing is published yet: clients find the name held but cannot verify
 * the holder until publishDaemon, and so send nothing.
 */
export async function claimSocket(server: Server, stateDir: string): Promise<void> {
  const name = socketName(stateDir);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    if (!isCode(e, 'EADDRINUSE')) throw e;
    const [inode] = await listeningInodes(name);
    const p = await readPidFile(stateDir).catch(() => undefined);
    if (p && inode !== undefined && (await owns(p, inode)))
      throw new QnetError(diag('QNET6003', `a qnet daemon already serves ${stateDir} (pid ${p.pid})`));
    const h = inode === undefined ? undefined : await holderOf(inode);
    throw new QnetError(diag('QNET6009', `another process holds qnet's daemon socket for ${stateDir}${h ? ` (pid ${h.pid}, uid ${h.uid})` : ''}: not starting`));
  }
}

/**
 * The run directory, made the daemon's own (0700): refused when it is a link or another user's,
 * since whoever owns it could swap the files in it.
 */
async function ownRunDir(stateDir: string): Promise<string> {
  const dir = runDir(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== myUid())
    throw new QnetError(diag('QNET6010', `${dir} is not a directory of the daemon's user (uid ${myUid()}): not starting`));
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  return dir;
}

/**
 * Once the daemon holds its name and is ready: the token, then the pid file (which clients read
 * first), each replacing whatever a previous daemon left.
 */
export async function publishDaemon(stateDir: string, token: string): Promise<void> {
  const dir = await ownRunDir(stateDir);
  const start = await startTime('self');
  if (start === null) throw new Error('qnet internal error: no /proc/self/stat');
  await writeFileAtomic(tokenPath(dir), token + '\n', 0o600);
  await writeFileAtomic(pidPath(dir), `${process.pid} ${start}\n`, 0o600);
}

/**
 * At stop, once the socket is closed: remove the pid file and the token, if they are still this
 * daemon's (a daemon that failed to claim the name must not remove the running one's).
 */
export async function withdrawDaemon(stateDir: string, token: string): Promise<void> {
  const dir = runDir(stateDir);
  const p = await readPidFile(stateDir).catch(() => undefined);
  if (p?.pid === process.pid) await unlink(pidPath(dir)).catch(() => undefined);
  const t = await readToken(stateDir, myUid()).catch(() => undefined);
  if (t !== undefined && t === token) await unlink(tokenPath(dir)).catch(() => undefined);
  await fsyncDir(dir).catch(() => undefined);
}
