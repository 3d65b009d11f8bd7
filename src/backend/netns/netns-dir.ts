// The two host directories named namespaces live in, read directly: /run/netns (one file per live
// namespace; tmpfs, so empty after a reboot) and /etc/netns (per-namespace files that `ip netns
// exec` binds in; on disk, so qnet's resolv.conf directories outlive a reboot or a crash). Only
// node:fs here: the offline CLI's reads use it on every command without loading the backend.
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Where named namespaces live: one file each, the directory `ip netns list` reads. */
export const NETNS_DIR = '/run/netns';
/** Per-namespace configuration bound in by `ip netns exec` (qnet writes only resolv.conf there). */
export const ETC_NETNS = '/etc/netns';
/** What qnet puts in an /etc/netns/<ns>/ directory; one holding anything else is not only ours. */
const OURS = new Set(['resolv.conf']);

/**
 * The names in /run/netns; an empty set where it does not exist (after a reboot nothing has created
 * it yet); undefined where it cannot be read, so the caller cannot tell and claims nothing.
 */
export async function presentNamespaces(dir = NETNS_DIR): Promise<Set<string> | undefined> {
  try {
    return new Set(await readdir(dir));
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Set() : undefined;
  }
}

/**
 * Remove /etc/netns/<ns> directories qnet left for namespaces that no longer exist (a reboot, a
 * crash, `ip netns del` behind its back). Only entries `ours(name)` accepts (qnet's prefix and a
 * node name), only real directories (never a link), and only those holding nothing but what qnet
 * writes. /etc/netns is read before /run/netns: a namespace is created before its directory, so a
 * directory seen for a namespace being created meanwhile finds that namespace in the later read.
 * Returns the names removed.
 */
export async function removeStaleEtcNetns(ours: (ns: string) => boolean, dirs: { etc?: string; run?: string } = {}): Promise<string[]> {
  const etc = dirs.etc ?? ETC_NETNS;
  const candidates = (await readdir(etc).catch(() => [] as string[])).filter(ours);
  if (!candidates.length) return [];
  const present = await presentNamespaces(dirs.run ?? NETNS_DIR);
  if (!present) return [];
  const removed: string[] = [];
  for (const ns of candidates) {
    if (present.has(ns)) continue;
    const path = join(etc, ns);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const inside = await readdir(path).catch(() => undefined);
    if (!inside || inside.some((f) => !OURS.has(f))) continue;
    await rm(path, { recursive: true, force: true }).catch(() => {});
    removed.push(ns);
  }
  return removed;
}
