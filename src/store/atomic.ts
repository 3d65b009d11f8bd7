// Crash-safe file replacement, as Qubes' qubes.utils.replace_file: a reader sees the old file or the
// new one, never a mix. rename(2) within one directory is atomic; the fsyncs make the data durable
// before the rename and the rename durable before we report success.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temp files start with this, so a leftover from a crash is recognisable (and never a qube name). */
export const TEMP_PREFIX = '.qnet-tmp-';

/**
 * Replace `path` with `data`: write a temp file in the same directory, fsync it, rename it over
 * `path`, fsync the directory. On any failure the old file is intact and the temp file removed.
 * The mode is set explicitly (Qubes writes firewall.xml 0664 whatever the umask).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o664): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${TEMP_PREFIX}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
}

/** Make a rename, creation or removal in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems cannot fsync a directory; the rename is still atomic there.
    if (!isCode(e, 'EINVAL') && !isCode(e, 'EISDIR') && !isCode(e, 'ENOTSUP')) throw e;
  } finally {
    await fh.close();
  }
}

/** mkdir -p, making each directory it creates durable in its parent. */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // `first` is the topmost directory created; sync its parent and every level below it.
  for (let d = dir; ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === first || dirname(d) === d) break;
  }
}

/** Remove a file durably; a file that is already gone is fine. Returns whether it existed. */
export async function removeFileDurable(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return false;
    throw e;
  }
  await fsyncDir(dirname(path));
  return true;
}

/** Remove a directory if it is empty (other files a user keeps there are left alone). */
export async function removeDirIfEmpty(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
  } catch (e) {
    if (isCode(e, 'ENOENT') || isCode(e, 'ENOTEMPTY') || isCode(e, 'EEXIST')) return false;
    throw e;
  }
  await fsyncDir(dirname(dir));
  return true;
}

export function isCode(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}
