// The qvm-* habits a Qubes user reaches for (issue 9, item 12), progress lines on a terminal
// (item 13) and the remaining one-line errors (item 4), in-process on temporary state directories.
// Qubes are started on the simulator runtime (runtime.json says sim), so nothing touches the kernel.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { bufferIo } from '../../src/cli/io.js';
import { shellArgv } from '../../src/cli/commands/lifecycle.js';
import { main } from '../../src/cli/main.js';
import { StateDir, type Run } from './helpers.js';

/** Run with a terminal (tty) and what the user answers at a prompt. */
async function runAs(s: StateDir, args: string, opts: { tty?: boolean; answer?: string } = {}): Promise<Run> {
  const b = bufferIo({ now: s.now, env: { QNET_NO_DAEMON: '1' }, ...opts });
  const code = await main(['--state', s.dir, ...args.split(' ').filter(Boolean)], b.io);
  return { code, out: b.stdout(), err: b.stderr() };
}

const oneCodedLine = (err: string, code: string) => {
  assert.equal(err.split('\n').filter(Boolean).length, 1, `one line: ${JSON.stringify(err)}`);
  assert.match(err, new RegExp(`\\(${code}\\)\\n$`));
};

describe('qvm-ls habits', () => {
  const s = new StateDir();
  before(async () => {
    await s.ok('init');
    writeFileSync(s.path('runtime.json'), JSON.stringify({ backend: 'sim', prefix: 'qhab-' }) + '\n');
    await s.ok('start work');
  });
  after(() => s.cleanup());

  test('--raw-list: names only; --running and --halted filter, together both', async () => {
    assert.equal(await s.ok('ls --raw-list'), 'personal\nsys-firewall\nsys-net\nuntrusted\nvault\nwork\n');
    assert.equal(await s.ok('ls --raw-list --running'), 'sys-firewall\nsys-net\nwork\n');
    assert.equal(await s.ok('ls --raw-list --halted'), 'personal\nuntrusted\nvault\n');
    assert.equal(await s.ok('ls --raw-list --running --halted'), await s.ok('ls --raw-list'));
  });

  test('--tree indents qubes under their netvm', async () => {
    assert.equal(
      await s.ok('ls --tree --fields name,state'),
      [
        'NAME            STATE',
        'sys-net         Running',
        '└─sys-firewall  Running',
        '  └─personal    Halted',
        '  └─untrusted   Halted',
        '  └─work        Running',
        'vault           Halted',
        '',
      ].join('\n'),
    );
  });

  test('--fields takes qvm-ls names in any case; an unknown one is a usage error', async () => {
    assert.equal(await s.ok('ls work --fields NAME,netvm,Ip,qid'), 'NAME  NETVM         IP          QID\nwork  sys-firewall  10.137.0.3  3\n');
    const r = await s.run('ls --fields name,flavour');
    assert.equal(r.code, 2);
    oneCodedLine(r.err, 'QNET9000');
  });
});

describe('prefs --get, features', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('prefs --get VM PROP prints the value; --get with a value is a usage error', async () => {
    assert.equal(await s.ok('prefs --get work netvm'), 'sys-firewall\n');
    assert.equal(await s.ok('prefs -g work ip'), '10.137.0.3\n');
    assert.equal((await s.run('prefs --get work netvm none')).code, 2);
  });

  test('features: ipv6 switched on at sys-net reaches every qube behind it; a qube can switch it off and unset it', async () => {
    assert.equal(await s.ok('features sys-net'), '');
    await s.ok('features sys-net ipv6 1');
    assert.equal(await s.ok('features sys-net'), 'ipv6  1\n');
    assert.equal(await s.ok('features sys-net ipv6'), '1\n');
    assert.equal(await s.ok('prefs work ip6'), 'fd09:24ef:4179::a89:3\n');
    await s.ok(['features', 'work', 'ipv6', '']);
    assert.equal(await s.ok('prefs work ip6'), '');
    await s.ok('features work ipv6 --unset');
    assert.equal(await s.ok('prefs work ip6'), 'fd09:24ef:4179::a89:3\n');
    const stored = JSON.parse(readFileSync(s.path('qubes.json'), 'utf8'));
    assert.deepEqual(stored.qubes.find((q: { name: string }) => q.name === 'sys-net').features, { ipv6: '1' });
  });

  test('a feature that is not set: exit 1, nothing on stdout, one coded line', async () => {
    const r = await s.run('features work nosuch');
    assert.deepEqual([r.code, r.out], [1, '']);
    oneCodedLine(r.err, 'QNET2110');
  });

  test('bad feature names and values are refused', async () => {
    for (const args of [['features', 'work', '__proto__', '1'], ['features', 'work', 'a b', '1'], ['features', 'work', 'x', 'a\nb']]) {
      const r = await s.run(args);
      assert.equal(r.code, 1, args.join(' '));
      oneCodedLine(r.err, 'QNET2111');
    }
  });
});

describe('remove asks first, as qvm-remove', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());
  const names = async () => (await s.ok('ls --raw-list')).split('\n').filter(Boolean);

  test('without a terminal: refused unless --force/-f', async () => {
    const r = await runAs(s, 'remove vault');
    assert.equal(r.code, 1);
    oneCodedLine(r.err, 'QNET9003');
    assert.ok((await names()).includes('vault'));
  });

  test('on a terminal: N (or anything but y) keeps the qube, y removes it', async () => {
    const no = await runAs(s, 'remove vault', { answer: 'n' });
    assert.equal(no.code, 1);
    assert.match(no.err, /Are you sure\? \[y\/N\]/);
    assert.ok((await names()).includes('vault'));
    assert.equal((await runAs(s, 'remove vault', { answer: 'y' })).code, 0);
    assert.ok(!(await names()).includes('vault'));
    await s.ok('create v2');
    assert.equal((await runAs(s, 'remove -f v2')).code, 0);
    assert.ok(!(await names()).includes('v2'));
  });
});

describe('firewall: a name that does not resolve is said at once; --reload', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('add with a name the world does not serve: added, with a QNET4001 warning; a served name: no warning', async () => {
    const r = await s.run('firewall work add accept nosuch.example.com tcp 443');
    assert.equal(r.code, 0);
    assert.match(r.err, /warning: work: cannot resolve 'nosuch\.example\.com' \(NXDOMAIN\).*\(QNET4001\)/);
    const ok = await s.run('firewall work add --before 0 accept web.example.com tcp 443');
    assert.deepEqual([ok.code, ok.err], [0, '']);
  });

  test('--reload alone prints nothing and leaves the rules file as it was; with list it lists', async () => {
    const file = readFileSync(s.path('appvms', 'work', 'firewall.xml'), 'utf8');
    assert.deepEqual(await s.run('firewall work --reload'), { code: 0, out: '', err: '' });
    assert.equal(readFileSync(s.path('appvms', 'work', 'firewall.xml'), 'utf8'), file);
    assert.match(await s.ok('firewall work -r list'), /^NO {2}ACTION/);
    assert.equal((await s.run('firewall nosuch --reload')).code, 1);
  });
});

describe('run, shutdown', () => {
  test("run: one word with a space is a shell command line (sh -c), as qvm-run; --shell joins words; else argv", () => {
    assert.deepEqual(shellArgv(['echo hi | wc -c'], false), ['sh', '-c', 'echo hi | wc -c']);
    assert.deepEqual(shellArgv(['echo', 'a b'], false), ['echo', 'a b']);
    assert.deepEqual(shellArgv(['echo', '$HOME'], true), ['sh', '-c', 'echo $HOME']);
    assert.deepEqual(shellArgv(['true'], false), ['true']);
  });

  const s = new StateDir();
  before(async () => {
    await s.ok('init');
    writeFileSync(s.path('runtime.json'), JSON.stringify({ backend: 'sim', prefix: 'qhab-' }) + '\n');
  });
  after(() => s.cleanup());
  const running = async () => (await s.ok('ls --raw-list --running')).split('\n').filter(Boolean);

  test('run --help says -p is accepted and IO always passes', async () => {
    assert.match(await s.ok('run --help'), /-p, --pass-io\s+accepted[\s\S]*always passes stdin,\s+stdout,\s+stderr/);
    assert.match(await s.ok('shutdown --help'), /--wait +accepted/);
  });

  test('shutdown --all --exclude keeps the excluded qube and the netvms it needs refused, unless --force', async () => {
    await s.ok('start work personal');
    const r = await s.run('shutdown --all --exclude work --wait');
    assert.equal(r.code, 1, 'sys-firewall still serves work');
    assert.match(r.err, /QNET2101/);
    await s.ok('shutdown --all --exclude work --exclude sys-firewall --exclude sys-net --wait');
    assert.deepEqual(await running(), ['sys-firewall', 'sys-net', 'work']);
    assert.equal((await s.run('shutdown --all --exclude nosuch')).code, 1);
    assert.equal((await s.run('shutdown --exclude work')).code, 2, '--exclude needs --all');
    await s.ok('shutdown --all --wait');
    assert.deepEqual(await running(), []);
  });

  test('progress: one line per phase on a terminal, none otherwise', async () => {
    // Warnings are not progress (as root this directory, kept on the simulator, says so: QNET5106).
    const progressOf = (err: string) => err.split('\n').filter((l) => l && !l.startsWith('qnet: warning:'));
    const quiet = await runAs(s, 'start work');
    assert.deepEqual([quiet.code, progressOf(quiet.err)], [0, []]);
    await s.ok('shutdown --all');
    const tty = await runAs(s, 'start work personal', { tty: true });
    assert.equal(tty.code, 0);
    const lines = progressOf(tty.err);
    assert.match(lines[0]!, /stand-in world/);
    assert.match(lines[1]!, /starting 2 qubes, and first their netvms sys-firewall, sys-net/);
    assert.match(lines[2]!, /started 4 qubes in \d+\.\d s/);
    assert.equal(lines.length, 3);
  });
});

describe('errors are one line with a code', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('usage errors, unknown commands, words with control characters: one line, QNET9000, exit 2, escaped', async () => {
    for (const args of [['firewall', 'work', 'add', '-foo'], ['firewall'], ['nosuchcmd'], ['ls', '--format', 'x\ny'], ['x\x1b[31my']]) {
      const r = await s.run(args);
      assert.equal(r.code, 2, args.join(' '));
      oneCodedLine(r.err, 'QNET9000');
      assert.ok(!r.err.includes('\x1b'), 'no ESC reaches the terminal');
    }
  });

  test('ls nosuch exits 1 with QNET2003, as every other command naming a missing qube', async () => {
    for (const args of ['ls nosuch', 'prefs nosuch', 'firewall nosuch', 'features nosuch']) {
      const r = await s.run(args);
      assert.equal(r.code, 1, args);
      oneCodedLine(r.err, 'QNET2003');
    }
  });

  test('matrix --port without --proto means tcp; check with a non-numeric port is refused', async () => {
    assert.match(await s.ok('matrix --port 22'), /^tcp\/22:/);
    const r = await s.run('check work x:http');
    assert.equal(r.code, 1);
    oneCodedLine(r.err, 'QNET4205');
  });

  test('a file the system refuses is one line naming it (QNET3023), not "a bug in qnet"', async () => {
    const r = await s.run(['--state', '/proc/version/x', 'init']);
    assert.equal(r.code, 1);
    assert.match(r.err, /^qnet: \/proc\/version.*not a directory.*\(QNET3023\)\n$/);
  });
});
