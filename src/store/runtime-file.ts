// How this state directory runs: which executor, and the namespace prefix. Written by `qnet start`
// and `qnet demo`; read by every command that touches the kernel and by the daemon. Separate from
// qubes.json because it describes this host, not the qubes (copying a state dir to another machine
// keeps the qubes and picks a runtime anew).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { writeFileAtomic, mkdirDurable, isCode } from './atomic.js';

export interface Runtime {
  backend: 'netns' | 'sim';
  /** Namespace names are `<prefix><qube>`; a unique prefix keeps parallel runs apart. */
  prefix: string;
  /**
   * Set when the simulator was chosen only because network namespaces could not run here (why, one
   * line): such a runtime moves to netns once they can (wiring.ts runtimeFor). Absent when the
   * simulator was asked for (--backend sim), which is never switched behind the user's back.
   */
  fallback?: string;
  /**
   * Clients per `qubes-firewall` shard (compile/names.ts FIREWALL_SHARD_CLIENTS when absent). Only
   * from QNET_FIREWALL_SHARD, as the prefix from QNET_NETNS_PREFIX: tests shard a few clients.
   */
  shardClients?: number;
}

export const DEFAULT_PREFIX = 'qnet-';
const PREFIX_RE = /^[a-z][a-z0-9-]{0,11}$/;

export const runtimeFilePath = (dir: string) => join(dir, 'runtime.json');

export async function readRuntime(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<Runtime | null> {
  let r: Runtime | null = null;
  try {
    const j = JSON.parse(await readFile(runtimeFilePath(dir), 'utf8')) as Partial<Runtime>;
    if ((j.backend !== 'netns' && j.backend !== 'sim') || typeof j.prefix !== 'string' || !PREFIX_RE.test(j.prefix))
      throw new Error('expected {"backend": "netns"|"sim", "prefix": "<a-z0-9->"}');
    // The reason is printed later: one short line of printable ASCII, nothing a terminal acts on.
    if (j.fallback !== undefined && (typeof j.fallback !== 'string' || j.backend !== 'sim' || !/^[\x20-\x7e]{1,200}$/.test(j.fallback)))
      throw new Error('"fallback" is one short line of text, only with "backend": "sim"');
    r = { backend: j.backend, prefix: j.prefix, ...(j.fallback !== undefined ? { fallback: j.fallback } : {}) };
  } catch (e) {
    if (!isCode(e, 'ENOENT'))
      throw new QnetError(diag('QNET3201', `${runtimeFilePath(dir)}: ${(e as Error).message}`, { hint: 'fix or remove the file' }));
  }
  const p = env['QNET_NETNS_PREFIX'];
  if (r && p) r.prefix = checkPrefix(p);
  const shard = env['QNET_FIREWALL_SHARD'];
  if (r && shard) {
    if (!/^[1-9][0-9]{0,4}$/.test(shard)) throw new QnetError(diag('QNET3203', `bad QNET_FIREWALL_SHARD '${shard.slice(0, 20)}'`, { hint: 'clients per qubes-firewall shard: 1 to 99999' }));
    r.shardClients = Number(shard);
  }
  return r;
}

export function checkPrefix(p: string): string {
  if (!PREFIX_RE.test(p))
    throw new QnetError(diag('QNET3202', `bad namespace prefix '${p}'`, { hint: 'a lowercase letter, then up to 11 of a-z 0-9 -' }));
  return p;
}

export async function writeRuntime(dir: string, r: Runtime): Promise<void> {
  await mkdirDurable(dir);
  await writeFileAtomic(runtimeFilePath(dir), JSON.stringify(r, null, 2) + '\n', 0o644);
}
