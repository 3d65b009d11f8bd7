// Where the state directory is and how it is laid out. The layout mirrors Qubes' /var/lib/qubes so
// a qube's firewall.xml sits where a Qubes user expects it (reference/qubes-firewall.md §2.3):
//   <dir>/qubes.json                         qubes and globals (qubes-file.ts)
//   <dir>/appvms/<name>/firewall.xml         AppVM, DispVM, StandaloneVM
//   <dir>/vm-templates/<name>/firewall.xml   TemplateVM
//   <dir>/.lock                              the writer lock (lock.ts)
import { homedir } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QubeClass } from '../model/qube.js';

/** The documented default when qnet runs as root (like /var/lib/qubes). */
export const ROOT_STATE_DIR = '/var/lib/qnet';

/**
 * `--state DIR`, else `$QNET_STATE`, else /var/lib/qnet for root, else `$XDG_STATE_HOME/qnet`
 * (or `~/.local/state/qnet`). Empty values count as unset, as shells make them easily.
 */
export function resolveStateDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolveStateDirFor(flag, env, process.getuid?.() ?? -1);
}

/** resolveStateDir with the uid passed in, so the root/non-root choice can be tested. */
export function resolveStateDirFor(flag: string | undefined, env: NodeJS.ProcessEnv, uid: number): string {
  if (flag) return resolve(flag);
  if (env.QNET_STATE) return resolve(env.QNET_STATE);
  if (uid === 0) return ROOT_STATE_DIR;
  // The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
  const xdg = env.XDG_STATE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'qnet');
  return join(env.HOME || homedir(), '.local', 'state', 'qnet');
}

export const qubesFilePath = (dir: string): string => join(dir, 'qubes.json');
/** Where the daemon and the world keep their run files (PIDs, token, world zone and logs). */
export const runDir = (stateDir: string): string => join(stateDir, 'run');
export const lockFilePath = (dir: string): string => join(dir, '.lock');

/** Qubes keeps templates apart from every other class. */
export const classDirName = (klass: QubeClass): 'vm-templates' | 'appvms' =>
  klass === 'TemplateVM' ? 'vm-templates' : 'appvms';

/** The qube's own directory. `name` must already be a valid qube name (no `/`, no leading `.`). */
export const qubeDirPath = (dir: string, name: string, klass: QubeClass): string =>
  join(dir, classDirName(klass), name);

export const firewallFilePath = (dir: string, name: string, klass: QubeClass): string =>
  join(qubeDirPath(dir, name, klass), 'firewall.xml');

/**
 * qnet's own folder (where its package.json is) from any of its modules: dist/src/…, the bundle in
 * dist/cli, or src/… under tsx — so bin/qnet.js and dist/web are found from each layout alike.
 */
export function packageRoot(moduleUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
  return dir;
}
