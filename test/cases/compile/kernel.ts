// Test helper: ask the kernel whether nft scripts load, with `nft -c` (check only) inside a
// throwaway namespace made for the purpose and always deleted. Never touches the host's ruleset.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelUnavailable } from '../../kernel/ns.js';

export { kernelUnavailable };

export interface NftOutcome {
  ok: boolean;
  stderr: string;
}

/** Run `fn` with a fresh namespace `qcmp-<random>`; deleted afterwards (after its promise, if it returns one) whatever happens. */
export function withScratchNs<T>(fn: (ns: string) => T): T {
  const ns = `qcmp-${randomBytes(4).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
  const del = () => void spawnSync('ip', ['netns', 'del', ns]);
  let r: T;
  try {
    r = fn(ns);
  } catch (e) {
    del();
    throw e;
  }
  if (r instanceof Promise) return r.finally(del) as T;
  del();
  return r;
}

/** `nft [-j] [-c] -f -` in namespace `ns`. `check: false` loads for real (only in a scratch namespace). */
export function nft(ns: string, script: string, opts: { json?: boolean; check?: boolean } = {}): NftOutcome {
  // A file, not `-f -`: node's spawnSync stdin is a socketpair, and nft's open("/dev/stdin") on a
  // socket fails with ENXIO ("No such device or address").
  const dir = mkdtempSync(join(tmpdir(), 'qcmp-'));
  const file = join(dir, opts.json ? 'rules.json' : 'rules.nft');
  try {
    writeFileSync(file, script);
    const args = ['netns', 'exec', ns, 'nft', ...(opts.json ? ['-j'] : []), ...(opts.check === false ? [] : ['-c']), '-f', file];
    const r = spawnSync('ip', args, { encoding: 'utf8', maxBuffer: 1 << 28 });
    return { ok: r.status === 0, stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function listRuleset(ns: string): string {
  return spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
}

/**
 * An `nft list` output with each table's chains and sets in name order (the kernel lists them in
 * creation order, which a recreated set changes) and, with `noCounts`, counters without their counts.
 */
export function canonicalListing(listing: string, opts: { noCounts?: boolean } = {}): string {
  const text = opts.noCounts ? listing.replace(/counter packets \d+ bytes \d+/g, 'counter') : listing;
  return text
    .split(/^(?=table )/m)
    .map((t) => {
      const [head, ...blocks] = t.replace(/\n}\n$/, '').split(/\n\n|\n(?=\t(?:chain|set|map) )/);
      return [head, ...blocks.sort()].join('\n\n');
    })
    .join('\n');
}
