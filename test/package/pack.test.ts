// The npm package as a user gets it: `npm pack` (which builds, through prepack), install the
// tarball into a temporary prefix, and run the installed qnet. Also the man page and the bash
// completion, as installed. Needs npm and the three runtime packages in npm's cache or registry.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../cases/compile/baseline.js';

const root = repoRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; dependencies?: Record<string, string> };

function run(argv: string[], opts: SpawnSyncOptions = {}): { status: number | null; stdout: string; stderr: string; ms: number } {
  const t = Date.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 180_000, ...opts });
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), ms: Date.now() - t };
}

const npm = run(['npm', '--version']);
const skipNpm = npm.status === 0 ? undefined : 'npm is not installed';
if (skipNpm) console.error(`# SKIP package test: ${skipNpm}`);

test('npm pack → install -g into a prefix → the installed qnet runs', { skip: skipNpm ?? false, timeout: 300_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'qnet-pack-'));
  try {
    // 1. Pack: prepack builds dist/ and the man page.
    const pack = run(['npm', 'pack', '--json', '--pack-destination', tmp], { cwd: root });
    assert.equal(pack.status, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    for (const want of ['bin/qnet.js', 'dist/cli/main.js', 'dist/cli/resolve-main.js', 'dist/cli/world-services.js', 'dist/web/index.html', 'dist/web/app.js', 'dist/man/qnet.1', 'systemd/qnet.service', 'completions/qnet.bash', 'README.md'])
      assert.ok(files.includes(want), `the tarball lacks ${want}`);
    const leaked = files.filter((f) => /^dist\/src\/|\.test\.js$|\.test-helpers\.|^dist\/test\/|^dist\/bench\/|^test\/|^bench\/|^src\/|\/testing\/|\.ts$|\.map$/.test(f));
    assert.deepEqual(leaked, [], 'no tests, helpers, sources, unbundled modules or source maps in the package');

    // 2. Install into a private prefix; the registry is asked only for what the cache lacks.
    const prefix = join(tmp, 'prefix');
    const inst = run(['npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(tmp, info!.filename)]);
    if (inst.status !== 0 && /ENOTCACHED|EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|network/i.test(inst.stderr)) {
      t.skip(`npm could not fetch ${Object.keys(pkg.dependencies ?? {}).join(', ')}: neither cached nor reachable`);
      return;
    }
    assert.equal(inst.status, 0, inst.stderr);
    const modules = join(prefix, 'lib', 'node_modules');
    for (const dep of Object.keys(pkg.dependencies ?? {})) assert.ok(existsSync(join(modules, 'qnet', 'node_modules', dep)) || existsSync(join(modules, dep)), `${dep} installed`);
    assert.equal(existsSync(join(modules, 'qnet', 'node_modules', 'fast-check')), false, 'test-only packages are not installed');

    // 3. The installed command, from outside the repository.
    const qnet = join(prefix, 'bin', 'qnet');
    const env = { ...process.env, QNET_NO_DAEMON: '1', PATH: `${join(prefix, 'bin')}:${process.env['PATH'] ?? ''}` };
    const version = run([qnet, '--version'], { cwd: tmp, env });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), pkg.version);
    const state = join(tmp, 'state');
    const init = run([qnet, '--state', state, 'init'], { cwd: tmp, env });
    assert.equal(init.status, 0, init.stderr);
    assert.match(init.stdout, /initialised/);
    assert.ok(existsSync(join(state, 'qubes.json')));
    const ls = run([qnet, '--state', state, 'ls', '-n'], { cwd: tmp, env });
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, /^sys-firewall\s/m);

    // 4. npm links the man page into the prefix; it renders without warnings.
    const man = join(prefix, 'share', 'man', 'man1', 'qnet.1');
    assert.ok(existsSync(man), 'man page installed');
    const page = readFileSync(man, 'utf8');
    for (const c of ['init', 'firewall', 'check', 'daemon']) assert.match(page, new RegExp(`^\\.SS ${c}$`, 'm'));
    if (run(['man', '--version']).status === 0) {
      const r = run(['man', '--warnings', '-l', man], { env: { ...env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'roff warnings');
      assert.match(r.stdout, /QNET\(1\)/);
    } else console.error('# SKIP man rendering: man is not installed');

    // 5. bash completion, as installed, against the installed qnet.
    const completion = join(modules, 'qnet', 'completions', 'qnet.bash');
    const complete = (line: string): string[] => {
      const script = `source ${JSON.stringify(completion)}; COMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); ` +
        `[[ "${line}" == *' ' ]] && { COMP_WORDS+=(''); COMP_CWORD=$((COMP_CWORD + 1)); }; _qnet; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = run(['bash', '-c', script], { env });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean).sort();
    };
    assert.deepEqual(complete('qnet fi'), ['firewall']);
    assert.deepEqual(complete('qnet s'), ['shutdown', 'start']);
    assert.deepEqual(complete(`qnet --state ${state} firewall w`), ['work']);
    assert.deepEqual(complete(`qnet --state ${state} start s`), ['sys-firewall', 'sys-net']);
    assert.deepEqual(complete(`qnet --state ${state} firewall work a`), ['add']);
    assert.deepEqual(complete(`qnet --state ${state} check work o`), ['outside']);
    assert.ok(complete('qnet firewall --r').includes('--raw'));
    console.error(`# package: pack ${pack.ms} ms, install ${inst.ms} ms, ${files.length} files`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
