import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout, newQube } from '../model/layout.js';
import { QnetError } from '../model/result.js';
import type { Rule } from '../model/rule.js';
import { cloneData, MemoryStore, MODEL_INVALID, sameData } from './memory-store.js';

const NOW_MS = 2_000_000_000_000; // 2033
const past: Rule = { action: 'accept', proto: 'tcp', dstports: { start: 22, end: 22 }, expire: NOW_MS / 1000 - 1 };
const future: Rule = { action: 'accept', expire: NOW_MS / 1000 + 3600 };

test('starts empty, or from a copy of the model it was given', async () => {
  assert.deepEqual(await new MemoryStore().load(), { default_netvm: null, qubes: new Map() });
  const m = defaultLayout();
  const s = new MemoryStore(m);
  m.qubes.get('work')!.label = 'purple';
  assert.equal((await s.load()).qubes.get('work')!.label, 'blue');
});

test('callers cannot alias the stored model (load, update, and what change keeps)', async () => {
  const s = new MemoryStore(defaultLayout());
  const a = await s.load();
  a.qubes.get('work')!.rules = [{ action: 'drop' }];
  a.qubes.delete('vault');
  let kept: Rule[] = [];
  await s.update((m) => {
    kept = m.qubes.get('work')!.rules = [{ action: 'accept', dsthost: { type: 'dsthost', text: 'qubes-os.org' } }];
  });
  kept.push({ action: 'drop' });
  (kept[0]!.dsthost as { text: string }).text = 'evil.example';
  const b = await s.load();
  assert.ok(b.qubes.has('vault'));
  assert.deepEqual(b.qubes.get('work')!.rules, [{ action: 'accept', dsthost: { type: 'dsthost', text: 'qubes-os.org' } }]);
});

test('update returns what change returned; a change that throws changes nothing', async () => {
  const s = new MemoryStore(defaultLayout());
  assert.equal(await s.update((m) => m.qubes.size), 6);
  await assert.rejects(
    s.update((m) => {
      m.qubes.delete('work');
      throw new Error('halfway');
    }),
    /halfway/,
  );
  assert.ok((await s.load()).qubes.has('work'));
});

test('a change that makes the model invalid is refused and changes nothing', async () => {
  const s = new MemoryStore(defaultLayout());
  await assert.rejects(
    s.update((m) => {
      m.qubes.set('bad name', newQube(9, 'bad name', 'red'));
    }),
    (e: QnetError) => e.diag.code === MODEL_INVALID && /qubes\[6\]\.name: 'bad name' is not a valid qube name/.test(e.message),
  );
  assert.equal((await s.load()).qubes.size, 6);
});

test('expired rules go only when that qube\'s rules change', async () => {
  const m = defaultLayout();
  m.qubes.get('work')!.rules = [past, future];
  m.qubes.get('personal')!.rules = [past];
  const s = new MemoryStore(m, { now: () => NOW_MS });
  await s.update((x) => x.qubes.get('work')!.rules!.push({ action: 'drop' }));
  const after = await s.load();
  assert.deepEqual(after.qubes.get('work')!.rules, [future, { action: 'drop' }]);
  assert.deepEqual(after.qubes.get('personal')!.rules, [past]);
});

test('updates run one at a time, each on the result of the one before', async () => {
  const s = new MemoryStore(defaultLayout());
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      s.update(async (m) => {
        const q = m.qubes.get('work')!;
        const rules = q.rules ?? [];
        await new Promise((r) => setTimeout(r, 1));
        q.rules = [...rules, { action: 'accept', comment: `r${i}` }];
      }),
    ),
  );
  assert.equal((await s.load()).qubes.get('work')!.rules!.length, 20);
});

test('the store keeps qubes sorted by qid', async () => {
  const s = new MemoryStore(defaultLayout());
  await s.update((m) => void m.qubes.set('early', newQube(0, 'early', 'red')));
  assert.deepEqual([...(await s.load()).qubes.keys()].slice(0, 2), ['early', 'sys-net']);
});

test('sameData treats undefined keys as absent; cloneData copies deeply', () => {
  assert.ok(sameData({ a: 1, b: undefined }, { a: 1 }));
  assert.ok(sameData([{ x: [1, { y: 'z' }] }], [{ x: [1, { y: 'z' }] }]));
  assert.ok(!sameData({ a: 1 }, { a: 1, c: 2 }));
  assert.ok(!sameData({ a: 1, c: undefined }, { a: 1, d: 2 }));
  assert.ok(!sameData([1], { 0: 1 }));
  assert.ok(!sameData(null, []));
  assert.ok(!sameData([1, 2], [1]));
  const src = { a: [{ b: 1 }] };
  const copy = cloneData(src);
  assert.deepEqual(copy, src);
  copy.a[0]!.b = 2;
  assert.equal(src.a[0]!.b, 1);
});
