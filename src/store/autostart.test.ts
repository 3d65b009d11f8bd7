// The autostart property (qvm-prefs VM autostart): False by default and shown so by `prefs`, a
// boolean, never on a template; kept in qubes.json only when set, so files without it keep their bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout, newQube } from '../model/layout.js';
import { cloneQube, getProp, listProps, resetProp, setProp } from '../model/ops.js';
import { QnetError } from '../model/result.js';
import { formatQubesFile, parseQubesFile } from './qubes-file.js';

test('autostart is False by default, set with a Qubes boolean, reset to the default', () => {
  const m = defaultLayout();
  const work = m.qubes.get('work')!;
  assert.deepEqual(getProp(m, work, 'autostart'), { name: 'autostart', value: 'False', isDefault: true });
  assert.ok(listProps(m, work).some((p) => p.name === 'autostart'), 'prefs lists it');
  setProp(m, work, 'autostart', 'True');
  assert.deepEqual(getProp(m, work, 'autostart'), { name: 'autostart', value: 'True', isDefault: false });
  setProp(m, work, 'autostart', 'false');
  assert.deepEqual(getProp(m, work, 'autostart'), { name: 'autostart', value: 'False', isDefault: false });
  resetProp(m, work, 'autostart');
  assert.equal(work.autostart, undefined);
  assert.throws(() => setProp(m, work, 'autostart', 'maybe'), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET2010');
});

test('a template cannot be set to autostart: templates are not started here', () => {
  const m = defaultLayout();
  const t = newQube(40, 'debian-12', 'black', { klass: 'TemplateVM' });
  m.qubes.set(t.name, t);
  assert.throws(() => setProp(m, t, 'autostart', 'True'), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET2102');
  setProp(m, t, 'autostart', 'False'); // saying no is fine
});

test('qubes.json keeps autostart only when set, round-trips it, and refuses a non-boolean or a template', () => {
  const m = defaultLayout();
  const plain = formatQubesFile(m);
  assert.ok(!plain.includes('autostart'), 'unset: the file is as before');
  m.qubes.get('work')!.autostart = true;
  const text = formatQubesFile(m);
  assert.match(text, /"state": "Halted",\n {6}"autostart": true,/);
  const r = parseQubesFile(text);
  assert.ok(r.ok);
  assert.equal(r.value.qubes.get('work')!.autostart, true);
  assert.equal(r.value.qubes.get('personal')!.autostart, undefined);
  assert.equal(formatQubesFile(r.value), text, 'same bytes back');

  const entry = { qid: 1, name: 'work', class: 'AppVM', label: 'blue', provides_network: false, state: 'Halted', features: {} };
  const bad = (e: object) => {
    const p = parseQubesFile(JSON.stringify({ version: 1, default_netvm: null, qubes: [{ ...entry, ...e }] }), 'q.json');
    assert.equal(p.ok, false);
    return p.ok ? '' : p.error.map((d) => d.message).join('\n');
  };
  assert.match(bad({ autostart: 'yes' }), /q\.json: qubes\[0\]\.autostart: expected true or false, got string 'yes'/);
  assert.match(bad({ class: 'TemplateVM', autostart: true }), /qubes\[0\]\.autostart: a template is not started here/);
});

test('a clone keeps autostart, as qvm-clone copies properties', () => {
  const m = defaultLayout();
  setProp(m, m.qubes.get('work')!, 'autostart', 'True');
  assert.equal(cloneQube(m, 'work', 'work2').autostart, true);
  assert.equal(cloneQube(m, 'personal', 'personal2').autostart, undefined);
});

test('runtime.json: a fallback reason is read back; one that is not a short printable line is refused', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { readRuntime, writeRuntime } = await import('./runtime-file.js');
  const dir = mkdtempSync(join(tmpdir(), 'qnet-rt-'));
  try {
    await writeRuntime(dir, { backend: 'sim', prefix: 'qnet-', fallback: 'creating namespaces needs root' });
    assert.deepEqual(await readRuntime(dir, {}), { backend: 'sim', prefix: 'qnet-', fallback: 'creating namespaces needs root' });
    for (const bad of [{ backend: 'sim', fallback: 'a\u001b[2Jb' }, { backend: 'sim', fallback: 7 }, { backend: 'netns', fallback: 'x' }]) {
      writeFileSync(join(dir, 'runtime.json'), JSON.stringify({ prefix: 'qnet-', ...bad }));
      await assert.rejects(readRuntime(dir, {}), (e: unknown) => e instanceof QnetError && e.diag.code === 'QNET3201', JSON.stringify(bad));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
