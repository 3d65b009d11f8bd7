// Offline reads show what exists: a qube qubes.json calls Running whose namespace is gone (a reboot,
// a crash) is listed Halted, from one look at /run/netns, without writing qubes.json (a read takes
// no lock; the next change records it). On the simulator the states are bookkeeping and stay.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { StateDir } from './helpers.js';

function markRunning(s: StateDir, names: string[]): string {
  const file = s.path('qubes.json');
  const j = JSON.parse(readFileSync(file, 'utf8')) as { qubes: { name: string; state: string }[] };
  for (const q of j.qubes) if (names.includes(q.name)) q.state = 'Running';
  const text = JSON.stringify(j, null, 2) + '\n';
  writeFileSync(file, text);
  return text;
}

const states = async (s: StateDir, args = 'ls --json') =>
  Object.fromEntries((JSON.parse(await s.ok(args)) as { name: string; state: string }[]).map((q) => [q.name, q.state]));

test('ls shows a qube Halted when its namespace is gone, and leaves qubes.json as it was', async () => {
  const s = new StateDir();
  try {
    await s.ok('init');
    const text = markRunning(s, ['sys-net', 'sys-firewall', 'work']);
    // A prefix no namespace on this machine has: none of these qubes has a namespace.
    writeFileSync(s.path('runtime.json'), JSON.stringify({ backend: 'netns', prefix: `qz${randomBytes(3).toString('hex')}-` }) + '\n');
    const st = await states(s);
    assert.deepEqual([st['sys-net'], st['sys-firewall'], st['work']], ['Halted', 'Halted', 'Halted']);
    assert.match(await s.ok('ls work'), /^work\s+Halted/m);
    assert.match(await s.ok('ls -n'), /^work\s+Halted/m);
    assert.equal(readFileSync(s.path('qubes.json'), 'utf8'), text, 'a read writes nothing');
  } finally {
    s.cleanup();
  }
});

test('on the simulator offline, the states in qubes.json are shown as they are', async () => {
  const s = new StateDir();
  try {
    await s.ok('init');
    markRunning(s, ['sys-net', 'sys-firewall', 'work']);
    writeFileSync(s.path('runtime.json'), JSON.stringify({ backend: 'sim', prefix: 'qnet-' }) + '\n');
    assert.equal((await states(s))['work'], 'Running');
  } finally {
    s.cleanup();
  }
});
