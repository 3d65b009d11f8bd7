import test from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DropRecord } from '../backend/backend.js';
import { defaultLayout } from '../model/layout.js';
import { DropLog } from './drop-log.js';
import type { EngineEvent } from './types.js';

/** A backend whose readers are in-memory: feed(node, record) as if the kernel logged it. */
function fakeBackend() {
  const readers = new Map<string, { onDrop: (d: DropRecord) => void; onEnd: (why: string) => void }>();
  const stopped: string[] = [];
  const backend = {
    readDrops(node: string, onDrop: (d: DropRecord) => void, onEnd: (why: string) => void) {
      readers.set(node, { onDrop, onEnd });
      return { pid: 1, stop: async () => void (stopped.push(node), readers.delete(node)) };
    },
  } as unknown as Backend;
  const feed = (node: string, i: number, origin: DropRecord['origin'] = { kind: 'rule', qube: 'work', index: 0 }) =>
    readers.get(node)!.onDrop({ node, time: Date.UTC(2026, 0, 1, 0, 0, i), origin, family: 4, src: '10.137.0.3', dst: `192.0.2.${i % 250}`, proto: 'udp', dport: 53, length: 30 });
  return { backend, readers, stopped, feed };
}

test('drop log: readers follow the running netvms; entries mapped to qube and rule text, bounded; events rate-bounded', async () => {
  const m = defaultLayout();
  for (const n of ['sys-net', 'sys-firewall', 'work']) m.qubes.get(n)!.state = 'Running';
  m.qubes.get('work')!.rules = [{ action: 'drop', proto: 'udp', dstports: { start: 53, end: 53 } }, { action: 'accept' }];
  const f = fakeBackend();
  const events: EngineEvent[] = [];
  const log = new DropLog(f.backend, (e) => events.push(e), { capacity: 50, eventsPerSecond: 10 });
  await log.sync(m, new Set(['sys-net', 'sys-firewall', 'work']));
  assert.deepEqual([...log.running.keys()].sort(), ['sys-firewall', 'sys-net'], 'netvms only');

  for (let i = 0; i < 120; i++) f.feed('sys-firewall', i);
  f.feed('sys-firewall', 200, null); // a prefix qnet did not write: not mapped, not kept
  f.feed('sys-firewall', 201, { kind: 'base', part: 'antispoof' });
  const all = log.entries();
  assert.equal(all.length, 50, 'the ring keeps the last `capacity`');
  assert.equal(all[0]!.dst, '192.0.2.70');
  assert.deepEqual({ qube: all[0]!.qube, rule: all[0]!.rule, ruleText: all[0]!.ruleText, decidedBy: all[0]!.decidedBy }, { qube: 'work', rule: 0, ruleText: 'action=drop proto=udp dstports=53-53', decidedBy: 'work rule 0' });
  assert.equal(events.filter((e) => e.type === 'dropped').length, 10, 'a burst is announced up to the rate');
  assert.deepEqual(log.entries('personal'), []);

  // A packed set: placed before its first rule, no rule text (any of them may have matched).
  f.feed('sys-firewall', 1, { kind: 'rules', qube: 'work', ranges: [[0, 0], [3, 4]] });
  assert.deepEqual([log.entries().at(-1)!.rule, log.entries().at(-1)!.ruleText], [0, undefined]);

  // A reader that ends by itself is said once, and started again by the next sync.
  f.readers.get('sys-net')!.onEnd('tcpdump exited (1)');
  f.readers.get('sys-net')?.onEnd('again');
  assert.equal(events.filter((e) => e.type === 'warning' && e.diag.code === 'QNET5120').length, 1);
  assert.deepEqual([...log.running.keys()], ['sys-firewall']);
  await log.sync(m, new Set(['sys-net', 'sys-firewall', 'work']));
  assert.equal(log.running.size, 2);
  f.readers.get('sys-net')!.onEnd('tcpdump exited (1)');
  assert.equal(events.filter((e) => e.type === 'warning').length, 1, 'a reader that keeps failing is not said at every converge');
  await log.sync(m, new Set(['sys-net', 'sys-firewall', 'work']));

  // A rule edit converges nothing: the rule text follows the model it gives.
  const edited = structuredClone(m);
  edited.qubes.get('work')!.rules = [{ action: 'accept', proto: 'tcp' }, { action: 'drop', proto: 'udp', dstports: { start: 53, end: 53 } }];
  log.see(edited);
  f.feed('sys-firewall', 2, { kind: 'rule', qube: 'work', index: 1 });
  assert.equal(log.entries().at(-1)!.ruleText, 'action=drop proto=udp dstports=53-53');

  // sys-firewall stops: its reader is stopped; then all.
  m.qubes.get('sys-firewall')!.state = 'Halted';
  await log.sync(m, new Set(['sys-net', 'work']));
  assert.deepEqual(f.stopped, ['sys-firewall']);
  await log.stopAll();
  assert.equal(log.running.size, 0);
});
