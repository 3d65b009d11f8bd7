// Kernel tests run in namespaces of their own, with a unique prefix per run, and always clean up,
// even on failure. Where namespaces cannot be created (not root, no CAP_NET_ADMIN, no nft), tests
// skip loudly with the reason instead of passing silently.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

let cachedReason: string | null | undefined;

/** Why kernel tests cannot run here, or null if they can. */
export function kernelUnavailable(): string | null {
  if (cachedReason !== undefined) return cachedReason;
  const probe = `qnprobe-${randomBytes(3).toString('hex')}`;
  const tools = ['ip', 'nft', 'conntrack'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (tools.length) return (cachedReason = `needs ${tools.join(', ')} installed (apt-get install nftables iproute2 conntrack)`);
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return (cachedReason = `needs root/CAP_NET_ADMIN to create network namespaces: ${add.stderr.trim()}`);
  const nft = spawnSync('ip', ['netns', 'exec', probe, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', probe]);
  if (nft.status !== 0) return (cachedReason = `nft does not work in a namespace: ${nft.stderr.trim()}`);
  return (cachedReason = null);
}

/** A unique short prefix for this run: interface and namespace names stay well under 15 chars. */
export function uniquePrefix(tag = 'qt'): string {
  return `${tag}${randomBytes(2).toString('hex')}-`;
}

/** Delete every namespace whose name starts with prefix (and so every veth in them). */
export function deleteNamespaces(prefix: string): void {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(prefix)) spawnSync('ip', ['netns', 'del', name]);
  }
}

/**
 * Run `fn` with a fresh prefix; every namespace created under that prefix is deleted afterwards,
 * whether `fn` passed or threw. Call only after checking kernelUnavailable().
 */
export async function withNamespaces<T>(tag: string, fn: (prefix: string) => Promise<T>): Promise<T> {
  const prefix = uniquePrefix(tag);
  try {
    return await fn(prefix);
  } finally {
    deleteNamespaces(prefix);
  }
}
