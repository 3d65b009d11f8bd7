// Removes compiled files whose source is gone (tsc's incremental build never deletes them): a stale
// dist/test/x.test.js would otherwise still run under `npm test`, a stale module still be importable.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let removed = 0;
function walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else {
      const m = /^(.*)\.js(\.map)?$/.exec(relative(join(root, 'dist'), p));
      if (m && !existsSync(join(root, `${m[1]}.ts`))) {
        rmSync(p);
        removed++;
      }
    }
  }
}
for (const top of ['src', 'test', 'bench']) if (existsSync(join(root, 'dist', top))) walk(join(root, 'dist', top));
if (removed) console.error(`prune-dist: removed ${removed} compiled file(s) whose source is gone`);
