// Reading a file of the state directory as hostile input: only a regular file, only up to a bound.
// A FIFO in place of a file would hang a plain read (open blocks until a writer comes), a symlink to
// /dev/zero would grow the process without end, a directory gives EISDIR. O_NONBLOCK makes open of
// a FIFO return at once; fstat on the open descriptor (not a stat of the path before, which a swap
// could race) decides. Symlinks are followed: root may keep qubes.json elsewhere; the target must
// still be a regular file within the bound.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isCode } from './atomic.js';

/** 64 MiB: 100k realistic rules (bench/support.ts realisticRules) format to 24.7 MB; this is 2.5 times that. */
export const MAX_FIREWALL_BYTES = 64 * 1024 * 1024;
/** qubes.json: about 250 bytes a qube, so this holds far more qubes than qids exist (65,536). */
export const MAX_QUBES_BYTES = 64 * 1024 * 1024;

/** Why a file could not be read, as one line without the path (the caller names the file). */
export class StateFileError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'StateFileError';
  }
}

/**
 * The bytes of `path`, or null when there is no such file. Anything else that is not a regular
 * file of at most `maxBytes` throws StateFileError (EACCES, EIO and the like too).
 */
export async function readStateFile(path: string, maxBytes: number): Promise<Buffer | null> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return null;
    throw new StateFileError(path, `cannot read: ${reason(e)}`);
  }
  try {
    const r = new BoundedRead(path, await fh.stat(), maxBytes);
    for (let buf; (buf = r.next()); ) if (!r.took(buf, (await fh.read(buf, 0, buf.length, null)).bytesRead)) break;
    return r.result();
  } catch (e) {
    if (e instanceof StateFileError) throw e;
    throw new StateFileError(path, `cannot read: ${reason(e)}`);
  } finally {
    await fh.close();
  }
}

/**
 * readStateFile, synchronously, with the same checks: for the store's rules read on first access
 * (a qube a rule edit did not name), where an await is not possible.
 */
export function readStateFileSync(path: string, maxBytes: number): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return null;
    throw new StateFileError(path, `cannot read: ${reason(e)}`);
  }
  try {
    const r = new BoundedRead(path, fstatSync(fd), maxBytes);
    for (let buf; (buf = r.next()); ) if (!r.took(buf, readSync(fd, buf, 0, buf.length, null))) break;
    return r.result();
  } catch (e) {
    if (e instanceof StateFileError) throw e;
    throw new StateFileError(path, `cannot read: ${reason(e)}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The checks and the bounded loop of both readers: a regular file only, at most `maxBytes`, read to
 * EOF rather than to st.size (a file that grows meanwhile is still bounded).
 */
class BoundedRead {
  private readonly chunks: Buffer[] = [];
  private total = 0;
  constructor(
    private readonly path: string,
    private readonly st: import('node:fs').Stats,
    private readonly maxBytes: number,
  ) {
    if (!st.isFile()) throw new StateFileError(path, `is ${kind(st)}, not a regular file`);
    if (st.size > maxBytes) throw new StateFileError(path, `is ${st.size} bytes, more than the ${maxBytes} qnet reads`);
  }
  /** The buffer for the next read. */
  next(): Buffer {
    return Buffer.allocUnsafe(Math.min(Math.max(this.st.size - this.total, 0) + 1, this.maxBytes + 1 - this.total, 1 << 24) || 1);
  }
  /** Keep what a read gave; false at EOF. */
  took(buf: Buffer, bytesRead: number): boolean {
    if (bytesRead === 0) return false;
    this.total += bytesRead;
    if (this.total > this.maxBytes) throw new StateFileError(this.path, `is more than the ${this.maxBytes} bytes qnet reads`);
    this.chunks.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
    return true;
  }
  result(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.total);
  }
}

function kind(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function reason(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'too many levels of symbolic links';
  if (code === 'EISDIR') return 'is a directory';
  return e instanceof Error ? e.message : String(e);
}

/** Control characters from a file (or its parser's echo of it) would split the line or reach a terminal. */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\n' ? ' ' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
