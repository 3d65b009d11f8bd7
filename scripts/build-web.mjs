// Builds the manager (src/web/ui) into dist/web: one esbuild bundle (and elkjs in elk.js, which only
// the topology loads) plus the page and its styles, all served by the daemon's HTTP listener
// (src/daemon/http.ts) as they are. No network at run time:
// everything the page uses is in these files. Type checking is `tsc -p src/web/ui` (npm run build).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src/web/ui');
const out = join(root, 'dist/web');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(src, 'main.tsx')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
  legalComments: 'linked',
});
// elkjs (the topology's layout) on its own: only the Qubes page loads it, when it draws the graph.
await build({
  entryPoints: [join(src, 'elk.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  outfile: join(out, 'elk.js'),
  logLevel: 'warning',
  legalComments: 'linked',
});
for (const f of readdirSync(src)) if (/\.(html|css|svg)$/.test(f)) copyFileSync(join(src, f), join(out, f));
