// The layer order of DESIGN.md, as a test: imports run one way, down this list, and two rooms on the
// same floor do not import each other (the simulator interprets IR, it does not compile; the store
// knows nothing of nftables). `import type` is exempt: it leaves nothing behind at run time.
//
//   web → cli → daemon → ops → engine → backend → {sim, compile} → {ir, store} → model
//
// A new file goes in the room its imports allow; a file that needs a room the picture does not have
// is a question for the design, not for this list (docs/architecture.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from './cases/compile/baseline.js';

const FLOORS: Record<string, number> = { web: 9, cli: 8, daemon: 7, ops: 6, engine: 5, backend: 4, sim: 3, compile: 3, ir: 2, store: 2, model: 1 };

/** The repository's src/, from dist/test/ (compiled) or test/ (tsx). */
const srcDir = (): string => join(repoRoot(), 'src');

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p;
  }
}

/** Runtime imports (static and dynamic) of a file, as paths relative to src/. */
export function runtimeImports(file: string, text: string, src: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/gm;
  for (const m of text.matchAll(re)) {
    if (m[1]) continue; // import type / export type
    const spec = m[2] ?? m[3]!;
    out.push(relative(src, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
  }
  return out;
}

const room = (rel: string) => rel.split('/')[0]!;

test('imports run one way down the floors of DESIGN.md', () => {
  const src = srcDir();
  const wrong: string[] = [];
  let checked = 0;
  for (const file of sources(src)) {
    const from = relative(src, file);
    if (/\.test(-helpers)?\.ts$/.test(from) || from.includes('/testing/')) continue; // tests may reach anything
    const a = room(from);
    assert.ok(a in FLOORS, `${from} is in a room DESIGN.md does not have`);
    for (const to of runtimeImports(file, readFileSync(file, 'utf8'), src)) {
      checked++;
      const b = room(to);
      if (a === b) continue;
      if (!(b in FLOORS)) wrong.push(`${from} → ${to} (outside src/)`);
      else if (FLOORS[b]! >= FLOORS[a]!) wrong.push(`${from} → ${to} (${a} may not import ${b})`);
    }
  }
  assert.ok(checked > 300, `the scan found the imports (${checked})`);
  assert.deepEqual(wrong, []);
});

test('the scan sees static, dynamic and re-exporting imports, and skips type-only ones', () => {
  const src = '/r/src';
  const text = [
    "import { a } from '../model/x.js';",
    "import type { T } from '../cli/y.js';",
    "export { b } from './z.js';",
    "const m = await import('../engine/e.js');",
    "export type { U } from '../daemon/d.js';",
  ].join('\n');
  assert.deepEqual(runtimeImports('/r/src/ops/f.ts', text, src), ['model/x.ts', 'ops/z.ts', 'engine/e.ts']);
});
