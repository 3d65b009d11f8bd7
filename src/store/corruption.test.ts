// One broken state file is one qube's problem (issue 9, items 1 and 2): every kind of broken
// firewall.xml × load and update, each answered within 2 s, the qube blocked (never open), the other
// qubes read and written as usual, and the broken file left byte for byte as it was.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { effectiveRules, type Rule } from '../model/rule.js';
import { analyse } from '../ops/analysis.js';
import { ask } from '../sim/questions.js';
import { FileStore } from './file-store.js';
import { formatFirewallXml } from './firewall-xml.js';
import { replaceRules, RULES_UNKNOWN, rulesOf } from './rules-problem.js';

const NOW_MS = 2_000_000_000_000;
const isRoot = process.getuid?.() === 0;
const dst4 = (a: string): Rule['dsthost'] => ({ type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 });
/** work accepts everything: a broken file read as "no file" or as its old rules would show as accept. */
const ACCEPT: Rule = { action: 'accept' };
const HTTPS: Rule = { action: 'accept', proto: 'tcp', dsthost: dst4('203.0.113.5'), dstports: { start: 443, end: 443 } };
const GOOD = formatFirewallXml([ACCEPT]);

type Kind = { name: string; regular: boolean; make(file: string): Promise<void>; skip?: string };

const kinds: Kind[] = [
  { name: 'not well-formed', regular: true, make: (f) => writeFile(f, '<firewall version="2"><rules><rule>') },
  { name: 'version 3', regular: true, make: (f) => writeFile(f, GOOD.replace('version="2"', 'version="3"')) },
  { name: 'an unknown element', regular: true, make: (f) => writeFile(f, GOOD.replace('<rules>', '<rules>\n    <frob/>')) },
  { name: 'truncated', regular: true, make: (f) => writeFile(f, GOOD.slice(0, Math.floor(GOOD.length / 2))) },
  { name: 'empty', regular: true, make: (f) => writeFile(f, '') },
  { name: 'binary with control characters', regular: true, make: (f) => writeFile(f, Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0x0a, 0x00, 0xff])) },
  { name: 'a directory', regular: false, make: async (f) => (await unlink(f), await mkdir(f)) },
  {
    name: 'unreadable (chmod 000)',
    regular: true,
    make: (f) => chmod(f, 0o000),
    ...(isRoot ? { skip: 'root reads a chmod 000 file; the directory case covers a file that cannot be read' } : {}),
  },
  { name: 'a FIFO', regular: false, make: async (f) => (await unlink(f), mkfifo(f)) },
  { name: 'a symlink to /dev/zero', regular: false, make: async (f) => (await unlink(f), await symlink('/dev/zero', f)) },
  { name: 'bigger than 64 MiB (sparse)', regular: true, make: (f) => truncate(f, 64 * 1024 * 1024 + 1) },
];

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr}`);
}

async function seeded(t: TestContext): Promise<{ dir: string; store: FileStore; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-corrupt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new FileStore(dir, { now: () => NOW_MS });
  await store.update((m) => {
    Object.assign(m, defaultLayout());
    m.qubes.get('work')!.rules = [ACCEPT];
    m.qubes.get('personal')!.rules = [HTTPS];
  });
  return { dir, store, file: join(dir, 'appvms/work/firewall.xml') };
}

/** What identifies the broken thing: its bytes when it is a file we can read back, else its inode and type. */
async function fingerprint(file: string, regular: boolean): Promise<string> {
  const st = await lstat(file);
  const id = `${st.ino}:${st.mode}:${st.size}:${st.mtimeMs}`;
  if (!regular || (st.mode & 0o777) === 0 || st.size > 1 << 20) return id;
  return `${id}:${(await readFile(file)).toString('hex')}`;
}

function verdict(model: Model, from: string): string {
  const a = analyse(model, new Map(), NOW_MS / 1000);
  return ask(a, { from, to: '203.0.113.5', proto: 'tcp', dport: 443 }, { trace: false, reply: false }).verdict;
}

test('the probe sees the difference: with its good file, work reaches the outside', async (t) => {
  const { store } = await seeded(t);
  assert.equal(verdict(await store.load(), 'work'), 'accept');
});

for (const k of kinds) {
  test(`a firewall.xml that is ${k.name}: the qube is marked and blocked, others work, the file stays`, { timeout: 20_000, skip: k.skip ?? false }, async (t) => {
    const { dir, store, file } = await seeded(t);
    await k.make(file);
    t.after(() => chmod(file, 0o644).catch(() => undefined));
    const before = await fingerprint(file, k.regular);
    const within2s = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      try {
        return await f();
      } finally {
        assert.ok(Date.now() - t0 < 2000, `${what} took ${Date.now() - t0} ms`);
      }
    };

    // load: the qube is there, marked with the file's name in one line, and blocked
    const m = await within2s('load', () => store.load());
    const work = m.qubes.get('work')!;
    assert.ok(work.rulesProblem, 'work is marked');
    assert.equal(work.rulesProblem.file, file);
    assert.ok(work.rulesProblem.message.startsWith(`${file}: `), work.rulesProblem.message);
    assert.doesNotMatch(work.rulesProblem.message, /[\x00-\x1f\x7f]/);
    assert.deepEqual(work.rules, []);
    assert.deepEqual(effectiveRules(work.rules, NOW_MS / 1000), []);
    assert.equal(verdict(m, 'work'), 'reject'); // blocked at sys-firewall, never open
    assert.equal(verdict(m, 'personal'), 'accept'); // the other qubes' rules still read
    assert.deepEqual(m.qubes.get('personal')!.rules, [HTTPS]);
    assert.throws(() => rulesOf(work), (e: unknown) => e instanceof QnetError && e.diag.code === RULES_UNKNOWN && e.diag.file === file);
    const one = await within2s('loadQube', () => store.loadQube('work'));
    assert.equal(one!.rulesProblem!.file, file);

    // updates of other data work and leave the broken file alone
    await within2s('update of another qube', () => store.update((mm) => void rulesOf(mm.qubes.get('personal')!)!.push(ACCEPT)));
    await within2s('update of a property', () => store.update((mm) => void (mm.qubes.get('work')!.label = 'purple')));
    await within2s('update of globals', () => store.update((mm) => void (mm.default_netvm = 'sys-firewall')));
    const after = await store.load();
    assert.deepEqual(after.qubes.get('personal')!.rules, [HTTPS, ACCEPT]);
    assert.equal(after.qubes.get('work')!.label, 'purple');
    // an edit of the unknown rules is refused, naming the file, even when the caller did not ask rulesOf
    await assert.rejects(
      within2s('blind add', () => store.update((mm) => void mm.qubes.get('work')!.rules!.push(ACCEPT))),
      (e: unknown) => e instanceof QnetError && e.diag.code === RULES_UNKNOWN && e.diag.file === file,
    );
    await assert.rejects(
      store.update((mm) => void (mm.qubes.get('work')!.rules = null)),
      (e: unknown) => e instanceof QnetError && e.diag.code === RULES_UNKNOWN,
    );
    assert.equal(await fingerprint(file, k.regular), before, 'the broken file is untouched');

    // a wholesale replacement (firewall set / reset) writes the file fresh where a file can go
    if (k.name !== 'a directory') {
      await within2s('replace', () => store.update((mm) => replaceRules(mm.qubes.get('work')!, [HTTPS])));
      const fixed = (await store.load()).qubes.get('work')!;
      assert.equal(fixed.rulesProblem, undefined);
      assert.deepEqual(fixed.rules, [HTTPS]);
      assert.equal(await readFile(file, 'utf8'), formatFirewallXml([HTTPS]));
    } else {
      await assert.rejects(store.update((mm) => replaceRules(mm.qubes.get('work')!, [HTTPS])), (e: unknown) => e instanceof QnetError && e.message.includes(file));
    }
    void dir;
  });
}

test('a renamed qube takes its broken file along byte for byte; removing the qube removes it', async (t) => {
  const { dir, store, file } = await seeded(t);
  await writeFile(file, 'not xml');
  const { rekeyQube } = await import('../model/ops.js');
  await store.update((m) => rekeyQube(m, 'work', 'job'));
  const job = (await store.load()).qubes.get('job')!;
  assert.equal(job.rulesProblem!.file, join(dir, 'appvms/job/firewall.xml'));
  assert.equal(await readFile(join(dir, 'appvms/job/firewall.xml'), 'utf8'), 'not xml');
  await assert.rejects(lstat(file), { code: 'ENOENT' });
  await store.update((m) => void m.qubes.delete('job'));
  await assert.rejects(lstat(join(dir, 'appvms/job/firewall.xml')), { code: 'ENOENT' });
});

test('a FIFO or a symlink to /dev/zero as qubes.json is refused in one line naming it, at once', { timeout: 20_000 }, async (t) => {
  for (const make of [mkfifo, (f: string) => symlink('/dev/zero', f)]) {
    const { dir, store } = await seeded(t);
    const q = join(dir, 'qubes.json');
    await unlink(q);
    await make(q);
    for (const f of [() => store.load(), () => store.update(() => undefined), () => store.loadQube('work')]) {
      const t0 = Date.now();
      await assert.rejects(f(), (e: unknown) => e instanceof QnetError && e.message.startsWith(`${q}: is a`) && !e.message.includes('\n'));
      assert.ok(Date.now() - t0 < 2000);
    }
    assert.ok((await lstat(q)).isFIFO() || (await lstat(q)).isSymbolicLink());
  }
});

test('a broken qubes.json entry leaves that qube out with a problem; the file is never rewritten without it', async (t) => {
  const { dir, store } = await seeded(t);
  const q = join(dir, 'qubes.json');
  const personalXml = join(dir, 'appvms/personal/firewall.xml');
  const text = (await readFile(q, 'utf8')).replace('"yellow"', '"pink\\u001b[2J"');
  await writeFile(q, text);
  const xml = await readFile(personalXml);
  const m = await store.load();
  assert.equal(m.qubes.has('personal'), false);
  assert.equal(m.problems!.length, 1);
  const p = m.problems![0]!;
  assert.equal(p.qube, 'personal');
  assert.ok(p.message.startsWith(`${q}: qubes[3].label: `) && !/[\x00-\x1f]/.test(p.message), p.message);
  assert.equal(verdict(m, 'work'), 'accept'); // the others work as before
  await assert.rejects(store.loadQube('personal'), (e: unknown) => e instanceof QnetError && e.diag.file === q);
  // a change to other qubes' rules works and rewrites neither qubes.json nor personal's file
  await store.update((mm) => void rulesOf(mm.qubes.get('work')!)!.push(HTTPS));
  assert.deepEqual((await store.load()).qubes.get('work')!.rules, [ACCEPT, HTTPS]);
  // a change that would rewrite qubes.json is refused, naming it
  for (const change of [(mm: Model) => void (mm.qubes.get('work')!.label = 'red'), (mm: Model) => void mm.qubes.delete('untrusted')]) {
    const t0 = Date.now();
    await assert.rejects(store.update(change), (e: unknown) => e instanceof QnetError && e.diag.file === q && e.message.includes('qubes[3]'));
    assert.ok(Date.now() - t0 < 2000);
  }
  // dropping the problems from the model in hand does not make the file writable
  await store.update((mm) => void delete mm.problems);
  assert.equal(await readFile(q, 'utf8'), text);
  assert.deepEqual(await readFile(personalXml), xml);
});

test('qubes.json entries that cannot be isolated stay an error of the whole file', async (t) => {
  const { dir, store } = await seeded(t);
  const q = join(dir, 'qubes.json');
  const good = await readFile(q, 'utf8');
  // default_netvm is sys-firewall: breaking its entry leaves every default-following qube unplaced
  await writeFile(q, good.replace('"green"', '"pink"'));
  await assert.rejects(store.load(), (e: unknown) => e instanceof QnetError && e.diag.file === q);
  // breaking sys-net takes sys-firewall (its client) along, and with it default_netvm
  const json = JSON.parse(good);
  json.qubes.find((x: { name: string }) => x.name === 'sys-net').label = 'rot';
  await writeFile(q, JSON.stringify(json));
  await assert.rejects(store.load(), QnetError);
  // two entries with one qid: neither is trusted
  json.qubes.find((x: { name: string }) => x.name === 'sys-net').label = 'red';
  json.qubes.find((x: { name: string }) => x.name === 'untrusted').qid = json.qubes.find((x: { name: string }) => x.name === 'vault').qid;
  await writeFile(q, JSON.stringify(json));
  const m = await store.load();
  assert.deepEqual([...m.qubes.keys()].filter((n) => n === 'untrusted' || n === 'vault'), []);
  assert.equal(m.problems!.length, 2);
});

test('MemoryStore keeps the same guard: rules of a qube marked broken are not editable, only replaceable', async () => {
  const { MemoryStore } = await import('./memory-store.js');
  const m = defaultLayout();
  const problem = { code: 'QNET3023' as const, severity: 'error' as const, message: '/x/firewall.xml: not well-formed', file: '/x/firewall.xml' };
  m.qubes.set('work', { ...m.qubes.get('work')!, rules: [], rulesProblem: problem });
  const store = new MemoryStore(m);
  await assert.rejects(store.update((mm) => void mm.qubes.get('work')!.rules!.push(ACCEPT)), (e: unknown) => e instanceof QnetError && e.diag.code === RULES_UNKNOWN);
  await store.update((mm) => void (mm.qubes.get('personal')!.label = 'green'));
  assert.deepEqual((await store.load()).qubes.get('work')!.rulesProblem, problem);
  await store.update((mm) => replaceRules(mm.qubes.get('work')!, [HTTPS]));
  assert.equal((await store.load()).qubes.get('work')!.rulesProblem, undefined);
});
