// `qnet daemon --http` refuses a non-loopback address before anything starts, and `qnet manager`
// prints no URL when no verified daemon serves HTTP (the live cases are in test/kernel/http.test.ts).
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { StateDir } from './helpers.js';

test('qnet daemon --http takes a loopback address only', async () => {
  const s = new StateDir();
  try {
    for (const a of ['0.0.0.0:8765', '192.0.2.1:8765', '[::]:8765', 'nonsense']) {
      const r = await s.run(['daemon', '--backend', 'sim', '--http', a]);
      assert.notEqual(r.code, 0, a);
      assert.match(r.err, /QNET6113/, a);
    }
  } finally {
    s.cleanup();
  }
});

test('qnet manager prints no URL without a verified daemon behind it', async () => {
  const s = new StateDir();
  try {
    const none = await s.run('manager');
    assert.notEqual(none.code, 0);
    assert.match(none.err, /QNET6114/);
    assert.equal(none.out, '', 'no URL, no token');
    // A stale or forged http.json (no daemon pid file, whatever listens there) gives no token either.
    mkdirSync(s.path('run'), { recursive: true, mode: 0o700 });
    writeFileSync(s.path('run', 'http.json'), JSON.stringify({ url: 'http://127.0.0.1:9/', pid: 1 }) + '\n', { mode: 0o600 });
    writeFileSync(s.path('run', 'http-editor.token'), 'a'.repeat(64) + '\n', { mode: 0o600 });
    const forged = await s.run('manager');
    assert.notEqual(forged.code, 0);
    assert.match(forged.err, /QNET6114/);
    assert.doesNotMatch(forged.out + forged.err, /a{64}/);
  } finally {
    s.cleanup();
  }
});
