// The CLI end to end on temporary state dirs: Qubes' words in, Qubes' output out.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { StateDir } from './helpers.js';

describe('qnet init / ls', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('ls shows the fresh layout with qvm-ls columns, sorted by name', async () => {
    assert.equal(
      await s.ok('ls'),
      [
        'NAME          STATE   CLASS  LABEL   TEMPLATE  NETVM',
        'personal      Halted  AppVM  yellow  -         sys-firewall',
        'sys-firewall  Halted  AppVM  green   -         sys-net',
        'sys-net       Halted  AppVM  red     -         -',
        'untrusted     Halted  AppVM  red     -         sys-firewall',
        'vault         Halted  AppVM  black   -         -',
        'work          Halted  AppVM  blue    -         sys-firewall',
        '',
      ].join('\n'),
    );
  });

  test('ls -n shows NAME STATE NETVM IP IPBACK GATEWAY as qvm-ls -n', async () => {
    const expected = [
      'NAME          STATE   NETVM         IP          IPBACK  GATEWAY',
      'personal      Halted  sys-firewall  10.137.0.4  -       10.137.0.2',
      'sys-firewall  Halted  sys-net       10.137.0.2  -       10.137.0.1',
      'sys-net       Halted  -             10.137.0.1  -       -',
      'untrusted     Halted  sys-firewall  10.137.0.5  -       10.137.0.2',
      'vault         Halted  -             -           -       -',
      'work          Halted  sys-firewall  10.137.0.3  -       10.137.0.2',
      '',
    ].join('\n');
    assert.equal(await s.ok('ls -n'), expected);
    assert.equal(await s.ok('ls --format network'), expected);
  });

  test('--format json and --json give the same objects', async () => {
    const a = JSON.parse(await s.ok('ls --format json'));
    const b = JSON.parse(await s.ok('ls -n --json'));
    assert.deepEqual(a, b);
    const work = a.find((q: { name: string }) => q.name === 'work');
    assert.deepEqual(
      { ip: work.ip, gateway: work.gateway, netvm: work.netvm, qid: work.qid },
      { ip: '10.137.0.3', gateway: '10.137.0.2', netvm: 'sys-firewall', qid: 3 },
    );
  });

  test('init twice is refused and changes nothing', async () => {
    const r = await s.run('init');
    assert.equal(r.code, 1);
    assert.match(r.err, /already has 6 qubes/);
  });
});

describe('qnet create / remove / rename / clone / prefs', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('create takes the lowest free qid and the default netvm', async () => {
    await s.ok('create dev --label purple');
    assert.equal(await s.ok('prefs dev qid'), '7\n');
    assert.equal(await s.ok('prefs dev netvm'), 'sys-firewall\n');
    assert.equal(await s.ok('prefs dev ip'), '10.137.0.7\n');
  });

  test('prefs lists properties as qvm-prefs: sorted, D for defaults', async () => {
    const out = await s.ok('prefs work');
    const lines = out.trimEnd().split('\n');
    assert.deepEqual(
      lines.filter((l) => /^(klass|label|netvm|ip|gateway|provides_network|qid) /.test(l)),
      [
        'gateway           D  10.137.0.2',
        'ip                D  10.137.0.3',
        'klass             -  AppVM',
        'label             -  blue',
        'netvm             D  sys-firewall',
        'provides_network  D  False',
        'qid               -  3',
      ],
    );
  });

  test('netvm none, back to default, and refusals for non-network and loops', async () => {
    await s.ok('prefs dev netvm none');
    assert.equal(await s.ok('prefs dev netvm'), '');
    assert.equal(await s.ok('prefs dev ip'), '', 'a qube without network has no address');
    await s.ok('prefs dev netvm --default');
    assert.equal(await s.ok('prefs dev netvm'), 'sys-firewall\n');
    const r1 = await s.run('prefs dev netvm personal');
    assert.equal(r1.code, 1);
    assert.match(r1.err, /'personal' does not provide network .*\(QNET2004\)/);
    const r2 = await s.run('prefs sys-net netvm sys-firewall');
    assert.equal(r2.code, 1);
    assert.match(r2.err, /loops in network/);
  });

  test('a netvm in use cannot be removed or stop providing network', async () => {
    const r = await s.run('remove --force sys-firewall');
    assert.equal(r.code, 1);
    assert.match(r.err, /in use as netvm of: work, personal, untrusted, dev, the global default_netvm/);
    const r2 = await s.run('prefs sys-net provides_network False');
    assert.equal(r2.code, 1);
    assert.match(r2.err, /change theirs 'netvm' first/);
  });

  test('rename keeps rules and references', async () => {
    await s.ok('create fw2 --provides-network --netvm sys-net');
    await s.ok('prefs dev netvm fw2');
    await s.ok('firewall fw2 reset');
    await s.ok('rename fw2 firewall2');
    assert.equal(await s.ok('prefs dev netvm'), 'firewall2\n');
    assert.equal(existsSync(s.path('appvms', 'firewall2', 'firewall.xml')), true);
    assert.equal(existsSync(s.path('appvms', 'fw2')), false);
    assert.equal(await s.ok('firewall firewall2 get'), 'action=accept\n');
  });

  test('clone copies rules and gets its own address', async () => {
    await s.ok('firewall work set', 'action=accept proto=icmp\n');
    await s.ok('clone work work2');
    assert.equal(await s.ok('firewall work2 get'), 'action=accept proto=icmp\n');
    assert.notEqual(await s.ok('prefs work2 ip'), await s.ok('prefs work ip'));
  });

  test('names follow Qubes rules', async () => {
    for (const bad of ['1abc', 'a b', 'x'.repeat(32)]) {
      const r = await s.run(['create', bad]);
      assert.equal(r.code, 1, bad);
      assert.match(r.err, /invalid qube name/);
    }
  });
});

describe('qnet firewall (the reference end-to-end example, §6)', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('a qube without firewall.xml accepts everything', async () => {
    assert.equal(await s.ok('firewall work get'), 'action=accept\n');
    assert.equal(existsSync(s.path('appvms', 'work', 'firewall.xml')), false);
  });

  test('reset, del, add, add --before give the table, Get and file Qubes gives', async () => {
    await s.ok('firewall work reset');
    await s.ok('firewall work del --rule-no 0');
    assert.equal(await s.ok('firewall work get'), '', 'no rules: everything dropped');
    assert.equal(readFileSync(s.path('appvms', 'work', 'firewall.xml'), 'utf8'), '<firewall version="2">\n  <rules/>\n</firewall>\n');
    await s.ok('firewall work add accept specialtarget=dns');
    await s.ok('firewall work add accept qubes-os.org tcp 443');
    await s.ok('firewall work add --before 0 accept proto=icmp');
    assert.equal(
      await s.ok('firewall work'),
      [
        'NO  ACTION  HOST          PROTOCOL  PORT(S)  SPECIAL TARGET  ICMP TYPE  EXPIRE  COMMENT',
        '0   accept  -             icmp      -        -               -          -       -',
        '1   accept  -             -         -        dns             -          -       -',
        '2   accept  qubes-os.org  tcp       443      -               -          -       -',
        '',
      ].join('\n'),
    );
    assert.equal(
      await s.ok('firewall work get'),
      'action=accept proto=icmp\naction=accept specialtarget=dns\naction=accept dsthost=qubes-os.org proto=tcp dstports=443-443\n',
    );
    assert.equal(
      await s.ok('firewall work --raw'),
      'action=accept proto=icmp\naction=accept specialtarget=dns\naction=accept proto=tcp dsthost=qubes-os.org dstports=443-443\n',
    );
  });

  test('del RULE removes the first equal rule; a missing one is refused', async () => {
    await s.ok('firewall work del accept proto=icmp');
    assert.equal((await s.ok('firewall work get')).split('\n')[0], 'action=accept specialtarget=dns');
    const r = await s.run('firewall work del accept proto=icmp');
    assert.equal(r.code, 1);
    assert.match(r.err, /no rule matches/);
  });

  test('set is all-or-nothing: one bad line changes nothing', async () => {
    const before = await s.ok('firewall work get');
    const r = await s.run('firewall work set', 'action=accept proto=tcp\naction=accept dstports=80\n');
    assert.equal(r.code, 1);
    assert.match(r.err, /line 2: .*dstports/);
    assert.equal(await s.ok('firewall work get'), before);
    await s.ok('firewall work set', 'proto=udp dstports=53 action=accept\n');
    assert.equal(await s.ok('firewall work get'), 'action=accept proto=udp dstports=53-53\n');
    await s.ok('firewall work set', '');
    assert.equal(await s.ok('firewall work get'), '');
  });

  test('expire=+N is relative; an expired rule vanishes from listings and from the file', async () => {
    await s.ok('firewall work set', '');
    await s.ok('firewall work add accept expire=+60');
    assert.equal(await s.ok('firewall work get'), `action=accept expire=${s.now + 60}\n`);
    assert.match(await s.ok('firewall work'), /\+60s/);
    s.now += 120;
    assert.equal(await s.ok('firewall work get'), '');
    await s.ok('firewall work add drop');
    assert.doesNotMatch(readFileSync(s.path('appvms', 'work', 'firewall.xml'), 'utf8'), /expire/);
  });

  test('adding after a catch-all warns that the rule can never match', async () => {
    await s.ok('firewall personal reset');
    const r = await s.run('firewall personal add drop example.com');
    assert.equal(r.code, 0);
    assert.match(r.err, /rule 1 can never match/);
  });

  test('usage errors exit 2, refusals exit 1', async () => {
    assert.equal((await s.run('firewall work frobnicate')).code, 2);
    assert.equal((await s.run('firewall work add')).code, 2);
    assert.equal((await s.run('firewall work del')).code, 2);
    assert.equal((await s.run('ls --bogus')).code, 2);
    assert.equal((await s.run('firewall nosuch get')).code, 1);
    assert.equal((await s.run('firewall work del --rule-no 99')).code, 1);
  });
});

describe('the installed command', () => {
  // From test/cli (tsx) or dist/test/cli (compiled): walk up to the repository root.
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'package.json'))) root = dirname(root);
  const bin = join(root, 'bin', 'qnet.js');
  const built = existsSync(join(root, 'dist', 'src', 'cli', 'main.js'));
  test('bad input gives one clear line on stderr and no stack trace', { skip: !built && 'dist/ is not built (npm run build)' }, () => {
    const s = new StateDir();
    try {
      const r = spawnSync(process.execPath, [bin, '--state', s.dir, 'firewall', 'work', 'add', 'accept', 'dstports=99999'], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const h = spawnSync(process.execPath, [bin, 'firewall', '--help'], { encoding: 'utf8' });
      assert.equal(h.status, 0);
      assert.match(h.stdout, /qvm-firewall/);
    } finally {
      s.cleanup();
    }
  });
});
