// Reading /run/netns and tidying /etc/netns, on temporary directories standing in for both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { presentNamespaces, removeStaleEtcNetns } from './netns-dir.js';

function dirs() {
  const root = mkdtempSync(join(tmpdir(), 'qnet-netnsdir-'));
  const etc = join(root, 'etc');
  const run = join(root, 'run');
  mkdirSync(etc);
  mkdirSync(run);
  return { root, etc, run };
}

const ours = (ns: string) => /^qu-[a-z][a-z0-9-]*$/.test(ns);

test('presentNamespaces: the names; empty where the directory does not exist yet; unknown where it cannot be read', async () => {
  const d = dirs();
  try {
    writeFileSync(join(d.run, 'qu-work'), '');
    assert.deepEqual(await presentNamespaces(d.run), new Set(['qu-work']));
    assert.deepEqual(await presentNamespaces(join(d.root, 'missing')), new Set());
    writeFileSync(join(d.root, 'file'), '');
    assert.equal(await presentNamespaces(join(d.root, 'file')), undefined, 'ENOTDIR: cannot tell');
  } finally {
    rmSync(d.root, { recursive: true, force: true });
  }
});

test('removeStaleEtcNetns removes only our directories of gone namespaces that hold only what qnet writes', async () => {
  const d = dirs();
  try {
    const mk = (name: string, files: string[]) => {
      mkdirSync(join(d.etc, name));
      for (const f of files) writeFileSync(join(d.etc, name, f), 'x\n');
    };
    mk('qu-work', ['resolv.conf']); // stale: removed
    mk('qu-empty', []); // stale and empty: removed
    mk('qu-live', ['resolv.conf']); // its namespace exists: kept
    writeFileSync(join(d.run, 'qu-live'), '');
    mk('qu-mixed', ['resolv.conf', 'hosts']); // holds more than ours: kept
    mk('other-work', ['resolv.conf']); // another prefix: kept
    mkdirSync(join(d.root, 'target'));
    writeFileSync(join(d.root, 'target', 'resolv.conf'), 'x\n');
    symlinkSync(join(d.root, 'target'), join(d.etc, 'qu-link')); // a link: never followed or removed
    writeFileSync(join(d.etc, 'qu-file'), 'x\n'); // not a directory: kept

    const removed = await removeStaleEtcNetns(ours, { etc: d.etc, run: d.run });
    assert.deepEqual(removed.sort(), ['qu-empty', 'qu-work']);
    for (const kept of ['qu-live', 'qu-mixed', 'other-work', 'qu-link', 'qu-file']) assert.ok(existsSync(join(d.etc, kept)), kept);
    assert.ok(existsSync(join(d.root, 'target', 'resolv.conf')), "a link's target is untouched");

    // After a reboot /run/netns does not exist at all: every stale directory of ours goes.
    rmSync(d.run, { recursive: true });
    assert.deepEqual(await removeStaleEtcNetns(ours, { etc: d.etc, run: d.run }), ['qu-live']);
    // No /etc/netns at all: nothing to do.
    assert.deepEqual(await removeStaleEtcNetns(ours, { etc: join(d.root, 'none'), run: d.run }), []);
  } finally {
    rmSync(d.root, { recursive: true, force: true });
  }
});
