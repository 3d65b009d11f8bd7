// Builds the manager (src/web/ui) into dist/web: one esbuild bundle (and elkjs's worker, which only
// the topology starts) plus the page and its styles, all served by the daemon's HTTP listener
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
/** esbuild, with every warning an error: a stylesheet with an unclosed block only warns, and would
 * silently fold every later rule into a media query. */
async function strict(options) {
  const r = await build({ ...options, logLevel: 'warning' });
  if (r.warnings.length) throw new Error(`build-web: ${r.warnings.length} warning(s) building ${options.outfile}`);
}
await strict({
  entryPoints: [join(src, 'main.tsx')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(out, 'app.js'),
  legalComments: 'linked',
});
await strict({ entryPoints: [join(src, 'app.css')], bundle: true, minify: true, target: ['chrome123', 'firefox120', 'safari17.5'], outfile: join(out, 'app.css') });
// elkjs's layout runs in its own worker build (components/topology.tsx), served as it is, with its
// licence beside it.
copyFileSync(join(root, 'node_modules/elkjs/lib/elk-worker.min.js'), join(out, 'elk-worker.js'));
copyFileSync(join(root, 'node_modules/elkjs/LICENSE.md'), join(out, 'elkjs-license.txt'));
for (const f of readdirSync(src)) if (/\.(html|svg)$/.test(f)) copyFileSync(join(src, f), join(out, f));
