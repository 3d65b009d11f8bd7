// qnet import-qubes on copies of dom0's /var/lib/qubes shaped like real R4.2 and R4.1 ones
// (fixtures beside this file), then what `ls -n`, `firewall`, `check` and `matrix` say about them;
// and hostile or partial copies, each refused in one line with nothing imported.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { QubeView } from '../../../src/ops/views.js';
import { StateDir } from '../../cli/helpers.js';

/** The fixtures in the source tree (the test runs from dist/). */
const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const FIXTURE = (name: string) => join(ROOT, 'test', 'cases', 'qubes-xml', name);

/** First line of a check: the verdict. */
const verdict = async (s: StateDir, args: string) => (await s.ok(`check ${args}`)).split('\n')[0]!;

describe('import a Qubes R4.2 dom0 copy', () => {
  const s = new StateDir();
  let imported: { code: number; out: string; err: string };
  before(async () => void (imported = await s.run(['import-qubes', FIXTURE('r42')])));
  after(() => s.cleanup());

  test('imports every qube but dom0, with its rules, and says what it left out', () => {
    assert.equal(imported.code, 0, imported.err);
    assert.match(imported.out, /^imported 18 qubes \(10 AppVM, 3 DispVM, 4 TemplateVM, 1 StandaloneVM\) from /);
    assert.match(imported.out, /rules: 9 in 4 firewall\.xml files; default_netvm: sys-firewall; skipped: dom0\n$/);
    // What qnet has no field for is named, once (template, memory, global updatevm …), with its code.
    assert.match(imported.err, /left out \(qnet has no field for them\): .*\bglobal updatevm\b.*\bmemory\b.*\btemplate\b.*\(QNET3305\)/);
    // disp1234's dispid is past 254: R4.1 would number it differently, and the import says so.
    assert.match(imported.err, /disp1234 10\.138\.4\.218: addresses as R4\.2 gives them/);
  });

  test('ls -n: netvms (default, explicit, none), addresses from qid and dispid, gateways', async () => {
    assert.equal(
      await s.ok('ls -n'),
      [
        'NAME                       STATE   NETVM         IP            IPBACK  GATEWAY',
        'anon-whonix                Halted  sys-whonix    10.137.0.10   -       10.137.0.9',
        'debian-12-xfce             Halted  -             -             -       -',
        'default-dvm                Halted  sys-firewall  10.137.0.6    -       10.138.0.37',
        'default-mgmt-dvm           Halted  -             -             -       -',
        'disp1234                   Halted  sys-firewall  10.138.4.218  -       10.138.0.37',
        'fedora-40-xfce             Halted  -             -             -       -',
        'personal                   Halted  sys-firewall  10.137.0.13   -       10.138.0.37',
        'sys-firewall               Halted  sys-net       10.138.0.37   -       10.137.0.5',
        'sys-net                    Halted  -             10.137.0.5    -       -',
        'sys-usb                    Halted  -             -             -       -',
        'sys-whonix                 Halted  sys-firewall  10.137.0.9    -       10.138.0.37',
        'untrusted                  Halted  sys-firewall  10.137.0.14   -       10.138.0.37',
        'vault                      Halted  -             -             -       -',
        'whonix-gateway-17          Halted  -             -             -       -',
        'whonix-workstation-17      Halted  -             -             -       -',
        'whonix-workstation-17-dvm  Halted  sys-whonix    10.137.0.11   -       10.137.0.9',
        'win10                      Halted  sys-firewall  10.137.0.17   -       10.138.0.37',
        'work                       Halted  sys-firewall  10.137.0.12   -       10.138.0.37',
        '',
      ].join('\n'),
    );
  });

  test('classes, labels by reference, features, and ipv6 as Qubes inherits it through netvms', async () => {
    const qubes = JSON.parse(await s.ok('ls --json')) as QubeView[];
    const q = (n: string) => qubes.find((x) => x.name === n)!;
    assert.deepEqual(
      ['sys-firewall', 'work', 'win10', 'fedora-40-xfce', 'disp1234'].map((n) => [n, q(n).class, q(n).label, q(n).qid]),
      [['sys-firewall', 'DispVM', 'green', 7], ['work', 'AppVM', 'blue', 12], ['win10', 'StandaloneVM', 'orange', 17], ['fedora-40-xfce', 'TemplateVM', 'black', 1], ['disp1234', 'DispVM', 'red', 18]],
    );
    assert.equal(q('work').netvm_is_default, true);
    assert.equal(q('vault').netvm_is_default, false);
    assert.equal(q('sys-net').features['ipv6'], '1');
    assert.equal(q('sys-whonix').features['ipv6'], '', 'an empty feature is kept: it switches ipv6 off');
    assert.equal(q('work').features['menu-items'], 'org.mozilla.firefox.desktop org.gnome.Nautilus.desktop');
    // sys-net's ipv6 reaches work through sys-firewall; sys-whonix switches it off for its clients.
    assert.equal(q('work').ip6, 'fd09:24ef:4179::a89:c');
    assert.equal(q('sys-firewall').ip6, 'fd09:24ef:4179::a8a:25', 'a disposable: a8a and its dispid');
    assert.equal(q('anon-whonix').ip6, null);
  });

  test("firewall: a v2 file, a v1 file converted as Qubes converts it, a template's empty list", async () => {
    assert.equal(
      await s.ok('firewall work --raw'),
      [
        'action=accept proto=tcp dst4=203.0.113.0/24 dstports=443-443 comment=company web',
        'action=accept specialtarget=dns',
        'action=accept proto=icmp',
        'action=drop',
        '',
      ].join('\n'),
    );
    assert.equal(
      await s.ok('firewall untrusted --raw'),
      ['action=accept specialtarget=dns', 'action=accept proto=icmp', 'action=accept proto=tcp dst4=198.51.100.0/24 dstports=80-80', ''].join('\n'),
    );
    assert.equal(await s.ok('firewall debian-12-xfce --raw'), '');
    // No firewall.xml: accept everything, as Qubes.
    assert.equal(await s.ok('firewall personal --raw'), 'action=accept\n');
    // The state directory holds them as Qubes would: version 2, where Qubes keeps each class.
    assert.match(readFileSync(s.path('appvms', 'untrusted', 'firewall.xml'), 'utf8'), /^<firewall version="2">/);
    assert.ok(existsSync(s.path('vm-templates', 'debian-12-xfce', 'firewall.xml')));
  });

  test('check answers what the Qubes configuration means, hop by hop', async () => {
    assert.match(await verdict(s, 'work 203.0.113.5:443'), /^work → 203\.0\.113\.5 tcp\/443: ACCEPT/);
    assert.match(await verdict(s, 'work 198.51.100.7:80'), /REJECT .* by work rule 3$/);
    assert.match(await verdict(s, 'untrusted 198.51.100.9:80'), /ACCEPT/);
    assert.match(await verdict(s, 'untrusted 198.51.100.9:443'), /REJECT .*untrusted default drop$/);
    assert.match(await verdict(s, 'vault 203.0.113.5:443'), /DROP — vault is not on any network/);
    // Whonix's chain: anon-whonix → sys-whonix → sys-firewall (a disposable) → sys-net.
    const trace = await s.ok('check anon-whonix 203.0.113.5:443');
    assert.match(trace, /sys-whonix \(in vif10\.0, out eth0\)[\s\S]*sys-firewall \(in vif9\.0, out eth0\)[\s\S]*sys-net \(in vif7\.0, out eth0\)/);
    assert.match(await verdict(s, 'win10 192.168.1.1:445'), /REJECT .* by win10 rule 0$/);
  });

  test('matrix: who reaches the outside on tcp/443', async () => {
    const rows = new Map(
      (await s.ok('matrix --port 443'))
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((l) => {
          const cells = l.trim().split(/\s+/);
          return [cells[0]!, cells[cells.length - 1]!] as const;
        }),
    );
    assert.deepEqual(
      ['work', 'personal', 'untrusted', 'vault', 'anon-whonix', 'disp1234', 'win10', 'sys-usb', 'fedora-40-xfce'].map((n) => [n, rows.get(n)]),
      [['work', 'yes'], ['personal', 'yes'], ['untrusted', 'no'], ['vault', 'no'], ['anon-whonix', 'yes'], ['disp1234', 'yes'], ['win10', 'yes'], ['sys-usb', 'no'], ['fedora-40-xfce', 'no']],
    );
  });
});

describe('import a Qubes R4.1 dom0 copy', () => {
  const s = new StateDir();
  before(() => s.ok(['import-qubes', FIXTURE('r41')]));
  after(() => s.cleanup());

  test('an AppVM sys-firewall, a label given by ref=, a disposable, an ipv6 feature', async () => {
    const qubes = JSON.parse(await s.ok('ls --json')) as QubeView[];
    const q = (n: string) => qubes.find((x) => x.name === n)!;
    assert.equal(qubes.length, 12);
    assert.deepEqual([q('sys-net').label, q('sys-net').ip, q('sys-net').netvm], ['red', '10.137.0.4', null]);
    assert.deepEqual([q('sys-firewall').class, q('sys-firewall').ip, q('sys-firewall').gateway], ['AppVM', '10.137.0.5', '10.137.0.4']);
    assert.deepEqual([q('disp42').class, q('disp42').ip, q('disp42').netvm], ['DispVM', '10.138.0.42', 'sys-firewall']);
    assert.equal(q('work').ip6, 'fd09:24ef:4179::a89:9', 'ipv6 on work itself');
    assert.equal(q('personal').ip6, null);
  });

  test('a v1 allow-policy file: the listed network is dropped, everything else accepted', async () => {
    assert.equal(
      await s.ok('firewall personal --raw'),
      ['action=accept specialtarget=dns', 'action=accept proto=icmp', 'action=drop dst4=192.0.2.0/24', 'action=accept', ''].join('\n'),
    );
    assert.match(await verdict(s, 'personal 192.0.2.1:80'), /REJECT .* by personal rule 2$/);
    assert.match(await verdict(s, 'personal 203.0.113.1:80'), /ACCEPT/);
    assert.match(await verdict(s, 'work 203.0.113.1:443'), /ACCEPT/);
    assert.match(await verdict(s, 'work 203.0.113.1:80'), /REJECT .* by work rule 2$/);
  });
});

describe('a state directory that already has qubes', () => {
  const s = new StateDir();
  before(() => s.ok('init'));
  after(() => s.cleanup());

  test('is refused without --force, and left as it was', async () => {
    const was = snapshot(s.dir);
    const r = await s.run(['import-qubes', FIXTURE('r41')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /already has 6 qubes .*--force.*\(QNET3101\)\n$/);
    assert.deepEqual(snapshot(s.dir), was);
  });

  test('--force replaces them, rules and all', async () => {
    const out = await s.ok(['import-qubes', '--force', FIXTURE('r41')]);
    assert.match(out, /imported 12 qubes .*, replacing 6\n/);
    assert.ok(!existsSync(s.path('appvms', 'untrusted')), "a replaced qube's directory is gone");
    assert.match(await s.ok('ls'), /disp42 /);
  });
});

/** Every file under `dir` (but the lock) with its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== '.lock') out[p.slice(dir.length)] = readFileSync(p, 'latin1');
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

describe('hostile or partial copies: one line each, nothing imported', () => {
  const work = mkdtempSync(join(tmpdir(), 'qnet-qxml-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  let n = 0;

  /** A copy of the R4.2 fixture with `edit` applied to qubes.xml (a function of its text) or to the directory. */
  function copy(edit: (xml: string) => string, more?: (dir: string) => void): string {
    const dir = join(work, `c${n++}`);
    cpSync(FIXTURE('r42'), dir, { recursive: true });
    const file = join(dir, 'qubes.xml');
    writeFileSync(file, edit(readFileSync(file, 'utf8')));
    more?.(dir);
    return dir;
  }
  const domain = (xml: string, name: string, f: (d: string) => string) =>
    xml.replace(new RegExp(`<domain [^>]*>\\s*<properties>\\s*<property name="qid">\\d+</property>\\s*<property name="name">${name}</property>[\\s\\S]*?</domain>`), f);

  const LAUGHS =
    '<?xml version="1.0"?>\n<!DOCTYPE qubes [\n <!ENTITY lol "lol">\n <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n';
  const cases: [string, () => string, RegExp][] = [
    ['no qubes.xml', () => copy((x) => x, (d) => rmSync(join(d, 'qubes.xml'))), /qubes\.xml: no such file .*\(QNET3301\)/],
    ['qubes.xml is a directory', () => copy((x) => x, (d) => (rmSync(join(d, 'qubes.xml')), cpSync(join(d, 'appvms'), join(d, 'qubes.xml'), { recursive: true }))), /qubes\.xml: is a directory, not a regular file \(QNET3301\)/],
    ['not well-formed', () => copy((x) => x.slice(0, x.length / 2)), /qubes\.xml: not well-formed XML: .*\(line \d+, column \d+\).*\(QNET3302\)/],
    ['a DTD with entities (billion laughs)', () => copy((x) => LAUGHS + x.replace(/^<\?xml[^>]*>\n/, '').replace('<property name="name">work</property>', '<property name="name">&lol3;</property>')), /qubes\.xml: has a DTD \(<!DOCTYPE at line 2\); qnet refuses one.*\(QNET3302\)/],
    ['an external entity (XXE)', () => copy((x) => x.replace('<qubes>', '<!DOCTYPE qubes [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<qubes>')), /has a DTD .*\(QNET3302\)/],
    ['an undeclared entity', () => copy((x) => x.replace('<property name="name">work</property>', '<property name="name">w&nbsp;rk</property>')), /'&' that is not an entity XML defines .*\(QNET3302\)/],
    ['a domain without a name', () => copy((x) => x.replace('<property name="name">personal</property>\n', '')), /qubes\.xml: domain-13: has no name — nothing was imported \(QNET3303\)/],
    ['a bad qid', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="qid">12</property>', '<property name="qid">123456789</property>'))), /domain 'work': qid '123456789' is not a number 1-65535/],
    ['a qid twice', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="qid">12</property>', '<property name="qid">13</property>'))), /domain '(work|personal)': qid 13 is also the qid of/],
    ['a netvm naming a missing qube', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="template">', '<property name="netvm">sys-vpn</property>\n        <property name="template">'))), /qubes\.xml: domain 'work': netvm 'sys-vpn' names no domain in qubes\.xml — nothing was imported \(QNET3303\)/],
    ['a netvm that is dom0', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="template">', '<property name="netvm">dom0</property>\n        <property name="template">'))), /domain 'work': netvm 'dom0' is dom0 \(AdminVM\), which qnet does not import/],
    ['a netvm that provides no network', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="template">', '<property name="netvm">vault</property>\n        <property name="template">'))), /domain 'work': netvm: 'vault' does not provide network/],
    ['a name that is a path', () => copy((x) => x.replace('<property name="name">personal</property>', '<property name="name">../../etc</property>')), /domain-13: '\.\.\/\.\.\/etc' is not a valid qube name/],
    ['a label that is not in <labels>', () => copy((x) => domain(x, 'work', (d) => d.replace('label-6', 'label-42'))), /domain 'work': label 'label-42' is not in <labels>/],
    ['an address that is not one', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="template">', '<property name="ip">10.137.0.300</property>\n        <property name="template">'))), /domain 'work': ip '10\.137\.0\.300' is not an IPv4 address/],
    ['two qubes with one address', () => copy((x) => domain(x, 'work', (d) => d.replace('<property name="template">', '<property name="ip">10.137.0.13</property>\n        <property name="template">'))), /address 10\.137\.0\.13 is also the address of/],
    ['an unknown class', () => copy((x) => x.replace('class="StandaloneVM"', 'class="RemoteVM"')), /domain 'win10': class 'RemoteVM' is not one qnet imports/],
    ['a DispVM without a dispid', () => copy((x) => x.replace('<property name="dispid">1234</property>\n', '')), /domain 'disp1234': is a DispVM without a dispid/],
    ['a template that is not in the copy', () => copy((x) => domain(x, 'work', (d) => d.replace('>fedora-40-xfce<', '>fedora-41-xfce<'))), /domain 'work': template 'fedora-41-xfce' names no domain/],
    ['a broken firewall.xml of one qube', () => copy((x) => x, (d) => writeFileSync(join(d, 'appvms', 'win10', 'firewall.xml'), '<firewall version="2"><rules><rule><properties><property name="action">maybe</property></properties></rule></rules></firewall>')), /appvms\/win10\/firewall\.xml: rule 0: .*\(QNET3304\)/],
    ['a firewall.xml that is a FIFO', () => copy((x) => x, (d) => (rmSync(join(d, 'appvms', 'work', 'firewall.xml')), execFileSync('mkfifo', [join(d, 'appvms', 'work', 'firewall.xml')]))), /appvms\/work\/firewall\.xml: is a FIFO, not a regular file/],
    ['qubes.xml larger than qnet reads', () => copy((x) => x + ' '.repeat(16 * 1024 * 1024)), /qubes\.xml: is \d+ bytes, more than the 16777216 qnet reads \(QNET3301\)/],
  ];

  for (const [what, make, expected] of cases) {
    test(what, async () => {
      const dir = make();
      // Into an empty state directory: it stays without qubes.
      const empty = new StateDir();
      const fresh = new StateDir();
      try {
        const r = await empty.run(['import-qubes', dir]);
        assert.equal(r.code, 1, r.out);
        assert.equal(r.out, '');
        assert.equal(r.err.split('\n').length, 2, `one line: ${r.err}`);
        assert.match(r.err, expected);
        assert.deepEqual(snapshot(empty.dir), {}, 'nothing written');
        // Over an existing one with --force: every byte stays.
        await fresh.ok('init');
        await fresh.ok('firewall work add accept proto=icmp');
        const was = snapshot(fresh.dir);
        const f = await fresh.run(['import-qubes', '--force', dir]);
        assert.equal(f.code, 1);
        assert.match(f.err, expected);
        assert.deepEqual(snapshot(fresh.dir), was);
      } finally {
        empty.cleanup();
        fresh.cleanup();
      }
    });
  }

  test('a relative path is read from the working directory (the CLI makes it absolute)', async (t) => {
    if (!FIXTURE('r41').startsWith(process.cwd() + '/')) return void t.skip(`the fixtures are not under the working directory ${process.cwd()}`);
    const s = new StateDir();
    try {
      const rel = join('.', FIXTURE('r41').slice(process.cwd().length + 1));
      assert.ok(statSync(rel).isDirectory());
      assert.match(await s.ok(['import-qubes', rel]), /^imported 12 qubes/);
    } finally {
      s.cleanup();
    }
  });
});
