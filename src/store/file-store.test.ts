import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test, type TestContext } from 'node:test';
import { defaultLayout, newQube } from '../model/layout.js';
import { rekeyQube } from '../model/ops.js';
import type { Model } from '../model/qube.js';
import { QnetError, unwrap } from '../model/result.js';
import type { Rule } from '../model/rule.js';
import { FileStore } from './file-store.js';
import { formatFirewallXml, parseFirewallXml } from './firewall-xml.js';
import { LOCK_BUSY } from './lock.js';
import { MODEL_INVALID } from './memory-store.js';
import { formatQubesFile } from './qubes-file.js';

const NOW_MS = 2_000_000_000_000;
const https: Rule = { action: 'accept', proto: 'tcp', dsthost: { type: 'dsthost', text: 'qubes-os.org' }, dstports: { start: 443, end: 443 } };
const dns: Rule = { action: 'accept', specialtarget: 'dns' };
const drop: Rule = { action: 'drop', comment: 'the rest' };
const expired: Rule = { action: 'accept', proto: 'udp', dstports: { start: 123, end: 123 }, expire: NOW_MS / 1000 - 60 };
const later: Rule = { action: 'accept', proto: 'icmp', icmptype: 8, expire: NOW_MS / 1000 + 60 };

/** What the rules look like after a trip through the file (the parser's canonical shape). */
const canon = (rules: Rule[]): Rule[] => unwrap(parseFirewallXml(formatFirewallXml(rules))).rules;

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under `dir` with its inode: atomic writes make a new inode, so a changed ino = written. */
async function tree(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    if (e.isFile()) out[relative(dir, p)] = (await stat(p)).ino;
  }
  return out;
}

async function seeded(t: TestContext): Promise<{ dir: string; store: FileStore }> {
  const dir = await scratch(t);
  const store = new FileStore(dir, { now: () => NOW_MS });
  await store.update((m) => {
    Object.assign(m, defaultLayout());
    m.qubes.get('work')!.rules = [https, dns, drop];
    m.qubes.get('vault')!.rules = [];
    m.qubes.set('fedora', newQube(7, 'fedora', 'black', { klass: 'TemplateVM', netvm: null, rules: [dns] }));
  });
  return { dir, store };
}

test('no qubes.json is an empty model, and loading creates nothing', async (t) => {
  const dir = await scratch(t);
  assert.deepEqual(await new FileStore(dir).load(), { default_netvm: null, qubes: new Map() });
  assert.deepEqual(await new FileStore(join(dir, 'missing')).load(), { default_netvm: null, qubes: new Map() });
  assert.deepEqual(await readdir(dir), []);
});

test('round trip: qubes.json, appvms/<name> and vm-templates/<name>; null rules have no file', async (t) => {
  const { dir, store } = await seeded(t);
  assert.deepEqual(Object.keys(await tree(dir)).sort(), [
    'appvms/vault/firewall.xml',
    'appvms/work/firewall.xml',
    'qubes.json',
    'vm-templates/fedora/firewall.xml',
  ]);
  const m = await new FileStore(dir).load();
  assert.equal(await readFile(join(dir, 'qubes.json'), 'utf8'), formatQubesFile(m));
  assert.equal(await readFile(join(dir, 'appvms/work/firewall.xml'), 'utf8'), formatFirewallXml([https, dns, drop]));
  assert.deepEqual(m.qubes.get('work')!.rules, canon([https, dns, drop]));
  assert.deepEqual(m.qubes.get('vault')!.rules, []); // a file with <rules/>: drop everything
  assert.equal(m.qubes.get('personal')!.rules, null); // no file: accept everything
  assert.deepEqual(m.qubes.get('fedora')!.rules, canon([dns]));
  assert.deepEqual([...m.qubes.keys()], ['sys-net', 'sys-firewall', 'work', 'personal', 'untrusted', 'vault', 'fedora']);
  assert.deepEqual(await store.load(), m);
});

test('only what changed is written', async (t) => {
  const { dir, store } = await seeded(t);
  const t0 = await tree(dir);
  await store.update(() => {});
  await store.update((m) => {
    m.qubes.get('work')!.rules = canon([https, dns, drop]); // same rules, new objects
  });
  assert.deepEqual(await tree(dir), t0);

  await store.update((m) => void m.qubes.get('work')!.rules!.push({ action: 'accept', proto: 'icmp' }));
  const t1 = await tree(dir);
  assert.deepEqual(changed(t0, t1), ['appvms/work/firewall.xml']);

  await store.update((m) => void (m.qubes.get('personal')!.label = 'purple'));
  assert.deepEqual(changed(t1, await tree(dir)), ['qubes.json']);
});

function changed(a: Record<string, number>, b: Record<string, number>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}

test('update returns what change returned; loads and updates do not alias each other', async (t) => {
  const { store } = await seeded(t);
  const a = await store.load();
  a.qubes.get('work')!.rules!.length = 0;
  let kept: Rule[] = [];
  assert.equal(await store.update((m) => ((kept = m.qubes.get('work')!.rules!), 'done')), 'done');
  kept.length = 0;
  assert.equal((await store.load()).qubes.get('work')!.rules!.length, 3);
});

test('rename moves the directory; remove deletes it; a class change moves between appvms and vm-templates', async (t) => {
  const { dir, store } = await seeded(t);
  const bytes = await readFile(join(dir, 'appvms/work/firewall.xml'));
  await store.update((m) => {
    const q = m.qubes.get('work')!;
    q.name = 'job';
    m.qubes = new Map([...m.qubes].map(([k, v]) => [k === 'work' ? 'job' : k, v]));
    m.qubes.delete('vault');
    const f = m.qubes.get('fedora')!;
    f.klass = 'AppVM';
  });
  const files = Object.keys(await tree(dir)).sort();
  assert.deepEqual(files, ['appvms/fedora/firewall.xml', 'appvms/job/firewall.xml', 'qubes.json']);
  assert.deepEqual(await readFile(join(dir, 'appvms/job/firewall.xml')), bytes);
  assert.deepEqual((await readdir(join(dir, 'appvms'))).sort(), ['fedora', 'job']);
  assert.deepEqual(await readdir(join(dir, 'vm-templates')), []);
  const m = await store.load();
  assert.deepEqual(m.qubes.get('job')!.rules, canon([https, dns, drop]));
  assert.equal(m.qubes.get('job')!.qid, 3);
});

test('rules set to null remove the file (and the empty directory)', async (t) => {
  const { dir, store } = await seeded(t);
  await store.update((m) => void (m.qubes.get('work')!.rules = null));
  assert.deepEqual(await readdir(join(dir, 'appvms')), ['vault']);
  assert.equal((await store.load()).qubes.get('work')!.rules, null);
});

test('two qubes swapping names, and a removed qube\'s name reused, keep each qube\'s own rules', async (t) => {
  const { dir, store } = await seeded(t);
  await store.update((m) => {
    const work = m.qubes.get('work')!;
    const vault = m.qubes.get('vault')!;
    [work.name, vault.name] = ['vault', 'work'];
    m.qubes = new Map([...m.qubes.values()].map((q) => [q.name, q]));
  });
  let m = await store.load();
  assert.equal(m.qubes.get('vault')!.qid, 3);
  assert.deepEqual(m.qubes.get('vault')!.rules, canon([https, dns, drop]));
  assert.deepEqual(m.qubes.get('work')!.rules, []);

  await store.update((x) => {
    x.qubes.delete('vault');
    x.qubes.set('vault', newQube(9, 'vault', 'black', { rules: [drop] }));
  });
  m = await store.load();
  assert.equal(m.qubes.get('vault')!.qid, 9);
  assert.deepEqual(m.qubes.get('vault')!.rules, canon([drop]));
  assert.ok(Object.keys(await tree(dir)).every((f) => !f.includes('qnet-tmp')));
  assert.ok(![...m.qubes.keys()].some((n) => n.startsWith('qnet-tmp')));
});

test('a new qube without rules clears a file left at its path (an orphan from a crash)', async (t) => {
  const { dir, store } = await seeded(t);
  await mkdir(join(dir, 'appvms/newbie'), { recursive: true });
  await writeFile(join(dir, 'appvms/newbie/firewall.xml'), formatFirewallXml([]));
  await store.update((m) => void m.qubes.set('newbie', newQube(8, 'newbie', 'red')));
  assert.equal((await store.load()).qubes.get('newbie')!.rules, null);
});

const V1 = `<QubesFirewallRules policy="deny" dns="allow" icmp="allow" yumProxy="allow">
  <rule address="192.168.0.0" netmask="24" proto="tcp" port="22" toport="23"/>
</QubesFirewallRules>
`;

test('a version 1 file is read, and written as version 2 only when its rules change', async (t) => {
  const { dir, store } = await seeded(t);
  const file = join(dir, 'appvms/personal/firewall.xml');
  await mkdir(join(dir, 'appvms/personal'));
  await writeFile(file, V1);
  const v1Rules = unwrap(parseFirewallXml(V1)).rules;
  assert.equal(unwrap(parseFirewallXml(V1)).version, 1);
  assert.deepEqual((await store.load()).qubes.get('personal')!.rules, v1Rules);

  await store.update((m) => void (m.qubes.get('work')!.label = 'gray'));
  await store.update((m) => void (m.qubes.get('personal')!.label = 'gray'));
  assert.equal(await readFile(file, 'utf8'), V1);

  await store.update((m) => void m.qubes.get('personal')!.rules!.push({ action: 'drop' }));
  const text = await readFile(file, 'utf8');
  assert.equal(text, formatFirewallXml([...v1Rules, { action: 'drop' }]));
  assert.equal(unwrap(parseFirewallXml(text)).version, 2);
});

test('expired rules are dropped when a file is written, and kept while it is not', async (t) => {
  const { store } = await seeded(t);
  await store.update((m) => {
    m.qubes.get('personal')!.rules = [expired, later];
  });
  assert.deepEqual((await store.load()).qubes.get('personal')!.rules, canon([later]));
  // An expired rule in a file nobody changes stays until the next write of that file.
  const { dir } = await seeded(t);
  await mkdir(join(dir, 'appvms/personal'));
  await writeFile(join(dir, 'appvms/personal/firewall.xml'), formatFirewallXml([expired, later]));
  const s = new FileStore(dir, { now: () => NOW_MS });
  await s.update((m) => void (m.qubes.get('personal')!.label = 'gray'));
  assert.deepEqual((await s.load()).qubes.get('personal')!.rules, canon([expired, later]));
  await s.update((m) => void m.qubes.get('personal')!.rules!.push(drop));
  assert.deepEqual((await s.load()).qubes.get('personal')!.rules, canon([later, drop]));
});

test('a broken qubes.json is reported with its name and never overwritten', async (t) => {
  const { dir, store } = await seeded(t);
  const file = join(dir, 'qubes.json');
  const broken = (await readFile(file, 'utf8')).replace('"blue"', '"pink"');
  await writeFile(file, broken);
  const t0 = await tree(dir);
  const named = (e: unknown) =>
    e instanceof QnetError && e.message.startsWith(`${file}: qubes[2].label: 'pink' is not a label (red, orange,`);
  // one broken entry is that qube's problem (corruption.test.ts has more); the file is not rewritten
  const m = await store.load();
  assert.equal(m.qubes.has('work'), false);
  assert.ok(named(new QnetError(m.problems![0]!)));
  await assert.rejects(store.update((mm) => void mm.qubes.clear()), named);
  assert.equal(await readFile(file, 'utf8'), broken);
  assert.deepEqual(await tree(dir), t0);

  await writeFile(file, '{ "version": 1, ');
  await assert.rejects(store.load(), (e: QnetError) => e.message.startsWith(`${file}: not valid JSON`));
});

test('a broken firewall.xml (bad XML, bad rule) marks its qube, names the file, and is never overwritten', async (t) => {
  const { dir, store } = await seeded(t);
  const file = join(dir, 'appvms/work/firewall.xml');
  const good = await readFile(file, 'utf8');
  for (const broken of [good.replace('</rules>', ''), good.replace('name="proto">tcp<', 'name="proto">sctp<'), good.replace('name="proto"', 'name="colour"')]) {
    await writeFile(file, broken);
    const t0 = await tree(dir);
    const named = (e: unknown) => e instanceof QnetError && e.message.startsWith(`${file}: `) && e.diag.file === file;
    const work = (await store.load()).qubes.get('work')!;
    assert.deepEqual(work.rules, []);
    assert.ok(work.rulesProblem && work.rulesProblem.message.startsWith(`${file}: `) && work.rulesProblem.file === file);
    await assert.rejects(store.update((m) => void m.qubes.get('work')!.rules!.push(drop)), named);
    await store.update((m) => void (m.qubes.get('personal')!.label = 'gray'));
    await store.update((m) => void (m.qubes.get('personal')!.label = 'red'));
    assert.equal(await readFile(file, 'utf8'), broken);
    assert.equal((await tree(dir))['appvms/work/firewall.xml'], t0['appvms/work/firewall.xml']);
  }
});

test('a change that throws, or makes the model invalid, writes nothing', async (t) => {
  const { dir, store } = await seeded(t);
  const t0 = await tree(dir);
  await assert.rejects(
    store.update((m) => {
      m.qubes.get('work')!.rules = [];
      m.qubes.delete('vault');
      throw new Error('changed my mind');
    }),
    /changed my mind/,
  );
  await assert.rejects(
    store.update((m) => {
      m.qubes.get('work')!.rules = [];
      m.qubes.set('../etc', newQube(42, '../etc', 'red', { rules: [] }));
    }),
    (e: QnetError) => e.diag.code === MODEL_INVALID,
  );
  assert.deepEqual(await tree(dir), t0);
});

test('another writer holding the lock is refused and nothing is written; a stale lock is taken over', async (t) => {
  const { dir, store } = await seeded(t);
  await writeFile(join(dir, '.lock'), `${process.pid}\n`);
  const t0 = await tree(dir);
  await assert.rejects(
    new FileStore(dir, { now: () => NOW_MS, lockWaitMs: 0 }).update((m) => void (m.qubes.get('work')!.rules = [])),
    (e: QnetError) => e.diag.code === LOCK_BUSY && e.message.includes(`(pid ${process.pid})`) && e.message.includes(join(dir, '.lock')),
  );
  assert.deepEqual(await tree(dir), t0);
  await writeFile(join(dir, '.lock'), '999999999\n');
  await store.update((m) => void (m.qubes.get('work')!.rules = []));
  assert.deepEqual((await store.load()).qubes.get('work')!.rules, []);
  assert.ok(!(await readdir(dir)).includes('.lock'));
});

test('updates from one process queue instead of refusing each other; no temp files are left', async (t) => {
  const { dir, store } = await seeded(t);
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      store.update((m) => {
        m.qubes.get('personal')!.features[`f${i}`] = '1';
      }),
    ),
  );
  assert.equal(Object.keys((await store.load()).qubes.get('personal')!.features).length, 10);
  const names = (await readdir(dir, { recursive: true })).map(String);
  assert.ok(names.every((n) => !n.includes('.qnet-tmp-') && !n.endsWith('.lock')), names.join(' '));
});

test('an unchanged model on an empty directory writes no qubes.json', async (t) => {
  const dir = await scratch(t);
  await new FileStore(dir).update((m: Model) => m.qubes.size);
  assert.deepEqual(await readdir(dir), []);
});

test('a failed rule-file write stops before qubes.json: the old state stays whole', async (t) => {
  const { dir, store } = await seeded(t);
  const before = await readFile(join(dir, 'qubes.json'), 'utf8');
  const t0 = await tree(dir);
  await assert.rejects(
    store.update(async (m) => {
      rekeyQube(m, 'work', 'job');
      // Something in the way of the new file (a non-empty directory named firewall.xml).
      await mkdir(join(dir, 'appvms/job/firewall.xml'), { recursive: true });
      await writeFile(join(dir, 'appvms/job/firewall.xml/x'), '');
    }),
    (e: QnetError) => e.diag.code === 'QNET3023' && e.message.startsWith(join(dir, 'appvms/job/firewall.xml')),
  );
  assert.equal(await readFile(join(dir, 'qubes.json'), 'utf8'), before);
  const { 'appvms/job/firewall.xml/x': _, ...after } = await tree(dir);
  assert.deepEqual(after, t0);
  await rm(join(dir, 'appvms/job'), { recursive: true });
  await store.update((m) => rekeyQube(m, 'work', 'job'));
  assert.deepEqual((await store.load()).qubes.get('job')!.rules, canon([https, dns, drop]));
});

test('order: new rule files are in place before qubes.json, old ones are removed only after it', async (t) => {
  const { dir, store } = await seeded(t);
  const old = await readFile(join(dir, 'appvms/work/firewall.xml'));
  await assert.rejects(
    store.update(async (m) => {
      rekeyQube(m, 'work', 'job');
      m.qubes.delete('vault');
      // Make the switch itself fail: qubes.json replaced by a non-empty directory after the read.
      await rm(join(dir, 'qubes.json'));
      await mkdir(join(dir, 'qubes.json/x'), { recursive: true });
    }),
    (e: QnetError) => e.diag.code === 'QNET3023' && e.message.startsWith(join(dir, 'qubes.json')),
  );
  assert.deepEqual(await readFile(join(dir, 'appvms/job/firewall.xml')), old); // step 1 done
  assert.deepEqual(await readFile(join(dir, 'appvms/work/firewall.xml')), old); // step 3 not reached
  assert.ok((await readdir(join(dir, 'appvms'))).includes('vault'));
});

test('adding rules at the end writes exactly the bytes formatFirewallXml writes, from every kind of file', async (t) => {
  const added: Rule[] = [{ action: 'drop', proto: 'udp', dstports: { start: 1, end: 1024 } }, { action: 'accept', comment: 'z' }];
  const handEdited = '<?xml version="1.0"?>\n<firewall version="2"><rules><rule><properties><property name="proto">tcp</property><property name="action">accept</property><property name="dsthost">10.0.0.1</property><property name="dstports">0443</property></properties></rule></rules></firewall>';
  const cases: [string, string | null][] = [
    ['qnet layout', formatFirewallXml([https, dns, drop])],
    ['empty <rules/>', formatFirewallXml([])],
    ['no file', null],
    ['version 1', V1],
    ['hand-edited version 2', handEdited],
    ['<rules> with nothing in it', '<firewall version="2">\n  <rules>\n  </rules>\n</firewall>\n'],
    ['an expired rule', formatFirewallXml([https, expired, later])],
  ];
  for (const [what, text] of cases) {
    const { dir } = await seeded(t);
    const file = join(dir, 'appvms/personal/firewall.xml');
    await mkdir(join(dir, 'appvms/personal'), { recursive: true });
    if (text !== null) await writeFile(file, text);
    const before = (await new FileStore(dir, { now: () => NOW_MS }).load()).qubes.get('personal')!.rules;
    for (const rule of added) {
      // a fresh store each time (the CLI's case), then a warm one for the second rule
      await new FileStore(dir, { now: () => NOW_MS }).update((m) => {
        const q = m.qubes.get('personal')!;
        q.rules = [...(q.rules ?? [{ action: 'accept' }]), rule];
      });
    }
    const expected = formatFirewallXml([...(before ?? [{ action: 'accept' }]), ...added].filter((r) => r.expire === undefined || r.expire >= NOW_MS / 1000));
    assert.equal(await readFile(file, 'utf8'), expected, what);
    const warm = new FileStore(dir, { now: () => NOW_MS });
    await warm.load();
    await warm.update((m) => void m.qubes.get('personal')!.rules!.push(https));
    await warm.update((m) => void m.qubes.get('personal')!.rules!.push(dns));
    assert.equal(await readFile(file, 'utf8'), formatFirewallXml([...unwrap(parseFirewallXml(expected)).rules, https, dns]), what);
  }
});

test('a change that is not an append (insert, edit, delete) formats the whole list', async (t) => {
  const { dir, store } = await seeded(t);
  const file = join(dir, 'appvms/work/firewall.xml');
  const edits: ((rules: Rule[]) => Rule[])[] = [
    (r) => [drop, ...r],
    (r) => [...r.slice(0, -1), { ...r[r.length - 1]!, comment: 'changed' }, https],
    (r) => [...r.slice(1), dns],
    (r) => [{ ...r[0]!, dstports: { start: 1, end: 2 } }, ...r.slice(1), dns],
  ];
  for (const edit of edits) {
    const rules = edit((await store.load()).qubes.get('work')!.rules!);
    await new FileStore(dir, { now: () => NOW_MS }).update((m) => void (m.qubes.get('work')!.rules = edit(m.qubes.get('work')!.rules!)));
    assert.equal(await readFile(file, 'utf8'), formatFirewallXml(rules));
  }
});

test('loadQube reads one qube and only its file', async (t) => {
  const { dir } = await seeded(t);
  const store = new FileStore(dir, { now: () => NOW_MS });
  const all = await store.load();
  const work = await store.loadQube('work');
  assert.deepEqual(work, all.qubes.get('work'));
  assert.equal(await store.loadQube('nope'), undefined);
  assert.equal((await store.loadQube('personal'))!.rules, null);
  // no aliasing: a change to what was handed out is not seen by the next read
  work!.rules!.push(drop);
  // rule objects are shared and frozen: changing one in place is refused, loudly
  assert.throws(() => {
    work!.rules![0]!.dstports!.start = 1;
  }, TypeError);
  assert.deepEqual(await store.loadQube('work'), all.qubes.get('work'));
  // another qube's broken file does not matter; its own does, with the file named
  const vault = join(dir, 'appvms/vault/firewall.xml');
  await writeFile(vault, 'garbage');
  assert.deepEqual(await store.loadQube('work'), all.qubes.get('work'));
  assert.equal((await store.load()).qubes.get('vault')!.rulesProblem!.file, vault);
  const v = (await store.loadQube('vault'))!;
  assert.deepEqual(v.rules, []);
  assert.ok(v.rulesProblem!.file === vault && v.rulesProblem!.message.startsWith(`${vault}: `));
  // a broken qubes.json is still an error
  await writeFile(join(dir, 'qubes.json'), '{');
  await assert.rejects(store.loadQube('work'), QnetError);
});

test('a rules-only update reads only the named qubes; the others are read when asked for, never written unasked', async (t) => {
  const { dir } = await seeded(t);
  const vaultFile = join(dir, 'appvms/vault/firewall.xml');
  const fedoraFile = join(dir, 'vm-templates/fedora/firewall.xml');
  const broken = '<firewall version="2"><rules>\n';
  await writeFile(vaultFile, broken);
  const before = await tree(dir);
  const store = new FileStore(dir, { now: () => NOW_MS });
  await store.update(
    (m) => {
      // Not read: its rules are an accessor until asked for (no model with rules missing exists).
      assert.equal(typeof Object.getOwnPropertyDescriptor(m.qubes.get('fedora')!, 'rules')?.get, 'function');
      m.qubes.get('work')!.rules!.push(drop);
    },
    { kind: 'rules', qubes: ['work'] },
  );
  const after = await tree(dir);
  assert.notEqual(after['appvms/work/firewall.xml'], before['appvms/work/firewall.xml']);
  assert.deepEqual({ ...after, 'appvms/work/firewall.xml': 0 }, { ...before, 'appvms/work/firewall.xml': 0 });
  assert.equal(await readFile(vaultFile, 'utf8'), broken);
  assert.deepEqual((await store.load()).qubes.get('work')!.rules, canon([https, dns, drop, drop]));

  // Asked for: the others' rules are there, a broken file marks its qube as load() does, a copy
  // (spread, clone) reads them too, and a blind edit of a broken qube is refused.
  await store.update(
    (m) => {
      assert.deepEqual(m.qubes.get('fedora')!.rules, canon([dns]));
      const vault = m.qubes.get('vault')!;
      assert.equal({ ...vault }.rulesProblem?.file, vaultFile);
      assert.deepEqual(vault.rules, []);
      assert.equal(m.qubes.get('personal')!.rulesProblem, undefined);
      assert.equal('rulesProblem' in { ...m.qubes.get('personal')! }, false);
    },
    { kind: 'rules', qubes: ['work'] },
  );
  await assert.rejects(
    store.update((m) => void m.qubes.get('vault')!.rules!.push(drop), { kind: 'rules', qubes: ['work'] }),
    (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET3024',
  );
  assert.equal(await readFile(vaultFile, 'utf8'), broken);
  // Replaced wholesale without being read (replaceRules: the mark goes first): written fresh.
  await store.update(
    (m) => {
      const v = m.qubes.get('vault')!;
      delete v.rulesProblem;
      v.rules = [dns];
      m.qubes.get('fedora')!.rules = [https];
    },
    { kind: 'rules', qubes: ['work'] },
  );
  const m = await new FileStore(dir).load();
  assert.deepEqual(m.qubes.get('vault')!.rules, canon([dns]));
  assert.equal(m.qubes.get('vault')!.rulesProblem, undefined);
  assert.deepEqual(m.qubes.get('fedora')!.rules, canon([https]));
  assert.deepEqual((await readFile(fedoraFile, 'utf8')).includes('qubes-os.org'), true);

  // A "rule edit" that renames or adds qubes is a bug of its declaration: refused, nothing written.
  const still = await tree(dir);
  await assert.rejects(
    store.update((mm) => rekeyQube(mm, 'personal', 'private'), { kind: 'rules', qubes: ['personal'] }),
    /added, removed or renamed/,
  );
  assert.deepEqual(await tree(dir), still);
});

test('a links-only update reads no qube rules and writes qubes.json alone, with the links changed', async (t) => {
  const { dir } = await seeded(t);
  const before = await tree(dir);
  const store = new FileStore(dir, { now: () => NOW_MS });
  const c = { id: 'c1', from: 'work', to: 'personal', proto: 'tcp' as const, ports: { start: 22, end: 22 }, bothWays: false };
  await store.update(
    (m) => {
      for (const q of m.qubes.values()) assert.equal(typeof Object.getOwnPropertyDescriptor(q, 'rules')?.get, 'function', `${q.name}'s rules not read`);
      m.connections = [c];
      m.forwards = [{ id: 'f1', qube: 'work', proto: 'tcp', port: 8080, from: [], on: [] }];
    },
    { kind: 'links' },
  );
  const after = await tree(dir);
  assert.deepEqual({ ...after, 'qubes.json': 0 }, { ...before, 'qubes.json': 0 }, 'only qubes.json written');
  const m = await new FileStore(dir).load();
  assert.deepEqual(m.connections, [c]);
  assert.deepEqual(m.forwards?.map((f) => f.id), ['f1']);
  assert.deepEqual(m.qubes.get('work')!.rules, canon([https, dns, drop]));
  // And removing them is a change too (the text as read is not kept).
  await store.update((mm) => void ((mm.connections = []), (mm.forwards = [])), { kind: 'links' });
  const again = await new FileStore(dir).load();
  assert.deepEqual([again.connections ?? [], again.forwards ?? []], [[], []]);
});

test('under a held lock (the daemon), a rules-only update takes the other qubes’ rules as last parsed: plain lists of their own, written only when changed', async (t) => {
  const { dir } = await seeded(t);
  const store = new FileStore(dir, { now: () => NOW_MS });
  const lock = await store.holdLock();
  t.after(() => lock.release());
  await store.load(); // every file parsed, as the daemon's start does
  const before = await tree(dir);
  await store.update(
    (m) => {
      const fedora = m.qubes.get('fedora')!;
      assert.equal(Object.getOwnPropertyDescriptor(fedora, 'rules')?.get, undefined, 'no accessor: taken as parsed');
      assert.deepEqual(fedora.rules, canon([dns]));
      m.qubes.get('work')!.rules!.push(drop);
    },
    { kind: 'rules', qubes: ['work'] },
  );
  const after = await tree(dir);
  assert.deepEqual({ ...after, 'appvms/work/firewall.xml': 0 }, { ...before, 'appvms/work/firewall.xml': 0 }, 'only the edited qube is written');
  // Each model's lists are its own (the parse cache's are not touched): an edit in place is a change, written.
  await store.update((m) => void m.qubes.get('fedora')!.rules!.push(drop), { kind: 'rules', qubes: ['work'] });
  await store.update((m) => assert.deepEqual(m.qubes.get('fedora')!.rules, canon([dns, drop])), { kind: 'rules', qubes: ['work'] });
  assert.deepEqual((await new FileStore(dir).load()).qubes.get('fedora')!.rules, canon([dns, drop]));
});

test('under a held lock (the daemon), qubes.json as just written is parsed after the change, not by the next one; without it, not', async (t) => {
  const dir = await scratch(t);
  const parsedKey = (s: FileStore) => (s as unknown as { qubesParsed?: { key: string; text: string } }).qubesParsed;
  const held = new FileStore(dir, { now: () => NOW_MS });
  const lock = await held.holdLock();
  t.after(() => lock.release());
  await held.update((m) => Object.assign(m, defaultLayout()));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 50)); // the read is asynchronous
  const text = await readFile(join(dir, 'qubes.json'), 'utf8');
  assert.equal(parsedKey(held)?.text, text, 'parsed as written, before anything asked');
  await held.update((m) => m.qubes.set('extra', newQube(90, 'extra', 'red')));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(parsedKey(held)?.text, await readFile(join(dir, 'qubes.json'), 'utf8'), 'again after the next change');
  assert.ok((await held.load()).qubes.has('extra'), 'and what a read then gives is the new file');
  await lock.release();
  const other = new FileStore(dir, { now: () => NOW_MS });
  await other.update((m) => m.qubes.delete('extra'));
  await new Promise((r) => setTimeout(r, 50));
  assert.notEqual(parsedKey(other)?.text, await readFile(join(dir, 'qubes.json'), 'utf8'), 'a store without the lock for good does not: another writer may come first');
});
