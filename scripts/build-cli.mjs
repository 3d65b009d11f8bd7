// Bundles the compiled CLI (dist/src, after tsc) into dist/cli, which bin/qnet.js runs: a command
// then loads a few files instead of ~50 modules and their packages (start-up is the cost that
// bench/cli-start measures). Code splitting keeps each command group a chunk loaded on first use.
// The scripts qnet starts by path inside a namespace (resolve-main, world-services) are bundled on
// their own beside main.js, where nodeScriptArgv (backend/netns/resolver.ts) looks for them.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = (p) => join(root, 'dist/src', p);
const out = join(root, 'dist/cli');
rmSync(out, { recursive: true, force: true });
const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // Bundled CommonJS packages (commander, dns-packet) call require() for node's own modules.
  banner: { js: "import { createRequire as __qnetRequire } from 'node:module'; const require = __qnetRequire(import.meta.url);" },
  legalComments: 'none',
};
await build({ ...common, entryPoints: { main: from('cli/main.js'), version: from('cli/version.js') }, splitting: true, outdir: out, chunkNames: '[name]-[hash]' });
for (const name of ['resolve-main', 'world-services'])
  await build({ ...common, entryPoints: { [name]: from(`backend/netns/${name}.js`) }, outdir: out });
