// Golden baselines (EXAMPLES.md Example 13): the emitted text of each case is compared with
// test/baselines/reference/compile/<case>.nft. On a difference the new text is written to
// test/baselines/local/compile/<case>.nft for diffing (scratch, not committed), and removed again
// once the output matches; QNET_ACCEPT_BASELINES=1 writes the reference instead. A missing
// reference fails, and so does a reference no case produces any more.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory above this file that holds package.json (throws if there is none). */
export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('no package.json above the test');
    d = up;
  }
  return d;
}

const ROOT = repoRoot();
export const REFERENCE = join(ROOT, 'test/baselines/reference/compile');
export const LOCAL = join(ROOT, 'test/baselines/local/compile');
const accepting = process.env['QNET_ACCEPT_BASELINES'] === '1';
const HOW = 'run with QNET_ACCEPT_BASELINES=1 if the new output is correct';

export function assertBaseline(name: string, actual: string): void {
  const ref = join(REFERENCE, `${name}.nft`);
  const local = join(LOCAL, `${name}.nft`);
  if (accepting) {
    mkdirSync(REFERENCE, { recursive: true });
    writeFileSync(ref, actual);
    rmSync(local, { force: true });
    return;
  }
  const expected = existsSync(ref) ? readFileSync(ref, 'utf8') : undefined;
  if (expected === actual) {
    // No stale diff lingers from an earlier failing run.
    rmSync(local, { force: true });
    return;
  }
  mkdirSync(LOCAL, { recursive: true });
  writeFileSync(local, actual);
  if (expected === undefined) assert.fail(`baseline ${name}.nft is missing (new output in ${LOCAL}); ${HOW}`);
  assert.equal(actual, expected, `baseline ${name}.nft differs (new output in ${LOCAL}); ${HOW}`);
}

/** References that no case produced. */
export function staleBaselines(produced: readonly string[]): string[] {
  if (!existsSync(REFERENCE)) return [];
  const want = new Set(produced.map((n) => `${n}.nft`));
  return readdirSync(REFERENCE).filter((f) => f.endsWith('.nft') && !want.has(f));
}
