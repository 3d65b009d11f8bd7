// The README's main job, end to end with the installed command: `qnet demo` brings the default
// layout up in namespaces with a daemon and a world; traffic behaves as its policy says; `qnet demo
// --down` leaves nothing behind (namespaces, daemon, /etc/netns entries, the state directory).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { deleteNamespaces, kernelUnavailable, uniquePrefix } from './ns.js';
import { repoRoot } from '../cases/compile/baseline.js';

// Guarded: throws at the filesystem root instead of looping for ever without a package.json.
const root = repoRoot();
const bin = join(root, 'bin', 'qnet.js');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'main.js'));
const why = kernelUnavailable() ?? (built ? null : 'dist/ is not built (npm run build): the demo starts the daemon from bin/qnet.js');

test('qnet demo brings the layout up, behaves as its policy says, and --down removes everything', { skip: why ?? false, timeout: 120_000 }, () => {
  const parent = mkdtempSync(join(tmpdir(), 'qnet-demo-'));
  const state = join(parent, 'state'); // the demo creates it, so --down removes it
  const prefix = uniquePrefix('qd');
  const env = { ...process.env, QNET_STATE: state, QNET_NETNS_PREFIX: prefix };
  const qnet = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  const inQube = (qube: string, script: string) =>
    spawnSync('ip', ['netns', 'exec', prefix + qube, process.execPath, '-e', script], { encoding: 'utf8', timeout: 15_000 }).stdout.trim();
  const fetchIn = (qube: string, url: string) =>
    inQube(qube, `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }).then(async (r) => console.log('ok:' + (await r.text()))).catch((e) => console.log('error:' + (e.cause?.code ?? e.name)))`);
  try {
    const up = qnet('demo');
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stdout, /qnet demo is up \(network namespaces/);
    assert.match(up.stdout, /work +Running +sys-firewall +10\.137\.0\.3/);
    // work's rule 2 allows web.example.com over http, resolved through 10.139.1.1 in its resolv.conf
    assert.equal(fetchIn('work', 'http://web.example.com/'), 'ok:qnet world: web.example.com (203.0.113.10)');
    // other.example.com is refused at once (admin-prohibited), not dropped
    const started = Date.now();
    assert.match(fetchIn('work', 'http://other.example.com/'), /^error:(EHOSTUNREACH|ENETUNREACH|EACCES)/);
    assert.ok(Date.now() - started < 2500, 'a reject, not a timeout');
    // untrusted drops other.example.com but may go elsewhere
    assert.equal(fetchIn('untrusted', 'http://web.example.com/').slice(0, 3), 'ok:');
    // the commands the demo suggests answer through the daemon
    const check = qnet('check', 'work', 'other.example.com:80');
    assert.match(check.stdout, /REJECT/);
    const counters = qnet('counters', 'work', '--json');
    const rows = JSON.parse(counters.stdout) as { rule: string; packets: number }[];
    assert.ok(rows.some((r) => /^work rules? /.test(r.rule) && r.packets > 0), 'the rule that let work through counted it');
    const pid = Number(readFileSync(join(state, 'run', 'daemon.pid'), 'utf8'));

    const down = qnet('demo', '--down');
    assert.equal(down.status, 0, down.stderr);
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(prefix));
    assert.deepEqual(left, [], 'no namespace left');
    assert.equal(existsSync(`/proc/${pid}`), false, 'the daemon is gone');
    assert.equal(existsSync(state), false, 'the state directory the demo made is gone');
    assert.deepEqual(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => d.startsWith(prefix)) : [], []);
  } finally {
    spawnSync(process.execPath, [bin, 'demo', '--down'], { env, timeout: 60_000 });
    deleteNamespaces(prefix);
    rmSync(parent, { recursive: true, force: true });
  }
});
