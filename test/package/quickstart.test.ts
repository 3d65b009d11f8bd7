// scripts/quickstart: npm ci only when the lock changed, tsc only when a source did, and a line for
// each step. Run in a scratch copy whose npm and system tools are stubs that log their calls, so
// nothing is installed or built for real; node is the real one (the script checks its version).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../cases/compile/baseline.js';

const STUBS = ['nft', 'ip', 'conntrack', 'runuser', 'tcpdump', 'curl', 'ping', 'socat', 'python3', 'systemd-analyze', 'man'];

function scratch(): { dir: string; run: (...args: string[]) => { status: number | null; stderr: string; calls: string[] }; touch: (p: string, ageS?: number) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-quickstart-'));
  const bin = join(dir, '.bin');
  const log = join(dir, '.calls');
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(repoRoot(), 'scripts', 'quickstart'), join(dir, 'scripts', 'quickstart'));
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const s of STUBS) writeFileSync(join(bin, s), `#!/bin/sh\necho "${s} $*" >> ${log}\n`, { mode: 0o755 });
  // npm: ci leaves its marker; run build writes the output the script checks for.
  writeFileSync(join(bin, 'npm'), `#!/bin/sh
echo "npm $*" >> ${log}
case "$1" in
  ci) mkdir -p node_modules && cp package-lock.json node_modules/.package-lock.json ;;
  run) mkdir -p dist/cli && echo 'export {}' > dist/cli/main.js ;;
esac
`, { mode: 0o755 });
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'qnet.js'), `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(log)}, 'qnet ' + process.argv.slice(2).join(' ') + '\\n');\n`);
  for (const d of ['src/cli', 'bench', 'test/baselines/local']) mkdirSync(join(dir, d), { recursive: true });
  for (const f of ['src/cli/main.ts', 'bench/b.ts', 'test/t.ts', 'tsconfig.json', 'package.json', 'package-lock.json']) writeFileSync(join(dir, f), '{}\n');
  const touch = (p: string, ageS = 0) => {
    const t = new Date(Date.now() - ageS * 1000);
    utimesSync(join(dir, p), t, t);
  };
  // Everything written "an hour ago", so what the test touches later is newer than any stamp.
  for (const f of ['src/cli/main.ts', 'src/cli', 'src', 'bench/b.ts', 'bench', 'test/t.ts', 'test', 'tsconfig.json', 'package.json', 'package-lock.json']) touch(f, 3600);
  const run = (...args: string[]) => {
    writeFileSync(log, '');
    const r = spawnSync('bash', [join(dir, 'scripts', 'quickstart'), ...args], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: dir },
    });
    return { status: r.status, stderr: r.stderr, calls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  };
  return { dir, run, touch };
}

test('quickstart: installs and builds once, then only what changed; says each step', () => {
  const { dir, run, touch } = scratch();
  try {
    let r = run('demo', '--down');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.calls, ['npm ci --no-audit --no-fund --loglevel=error', 'npm run --silent build', 'qnet demo --down']);
    assert.match(r.stderr, /installing npm packages.*npm ci/);
    assert.match(r.stderr, /building \(tsc.*no build yet\)/);

    r = run('demo', '--down');
    assert.deepEqual(r.calls, ['qnet demo --down'], 'nothing changed: straight to the demo');
    assert.doesNotMatch(r.stderr, /building|installing/);

    // What tests write under test/baselines/local is not a source.
    writeFileSync(join(dir, 'test/baselines/local/x.json'), '{}');
    assert.deepEqual(run('demo').calls, ['qnet demo']);

    for (const [change, why] of [
      [() => touch('src/cli/main.ts'), /src\/cli\/main\.ts changed/],
      [() => unlinkSync(join(dir, 'bench/b.ts')), /bench changed/],
      [() => touch('tsconfig.json'), /tsconfig\.json changed/],
    ] as const) {
      change();
      r = run('demo');
      assert.deepEqual(r.calls, ['npm run --silent build', 'qnet demo']);
      assert.match(r.stderr, why);
      assert.deepEqual(run('demo').calls, ['qnet demo'], 'built once');
    }

    touch('package-lock.json');
    r = run('demo');
    assert.deepEqual(r.calls, ['npm ci --no-audit --no-fund --loglevel=error', 'npm run --silent build', 'qnet demo']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quickstart: a failed build leaves no stamp, so the next call builds again', () => {
  const { dir, run } = scratch();
  try {
    writeFileSync(join(dir, '.bin', 'npm'), '#!/bin/sh\n[ "$1" = ci ] && { mkdir -p node_modules; cp package-lock.json node_modules/.package-lock.json; exit 0; }\nexit 1\n', { mode: 0o755 });
    assert.notEqual(run('demo').status, 0);
    const r = run('demo');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /building/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quickstart: unknown command is a usage error before anything is installed', () => {
  const { dir, run } = scratch();
  try {
    const r = run('bogus');
    assert.equal(r.status, 2);
    assert.deepEqual(r.calls, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
