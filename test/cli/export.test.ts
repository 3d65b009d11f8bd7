// qnet export qubes, offline: printed with a header per file, written under --out with mode 0755,
// refusals and warnings (the scripts themselves are tested in src/compile and test/kernel/export).
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { StateDir } from './helpers.js';

describe('qnet export qubes', () => {
  const s = new StateDir();
  after(() => s.cleanup());

  test('prints, writes, warns, refuses', async () => {
    await s.ok('init');
    assert.equal(await s.ok('export qubes'), 'nothing to export (qnet connect A B, qnet forward add VM …)\n');
    await s.ok('connect work personal --proto tcp --port 22');
    const out = await s.ok('export qubes');
    assert.deepEqual([...out.matchAll(/^### (\S+): (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`), [
      'sys-firewall /rw/config/qubes-firewall-user-script', 'work /rw/config/rc.local', 'personal /rw/config/rc.local',
    ]);
    assert.match(await s.ok('export qubes --iptables'), /iptables-restore --noflush/);
    const dir = s.path('out');
    assert.equal(await s.ok(`export qubes personal --out ${dir}`), [`${dir}/sys-firewall/qubes-firewall-user-script`, `${dir}/work/rc.local`, `${dir}/personal/rc.local`].join('\n') + '\n');
    const file = `${dir}/personal/rc.local`;
    assert.equal(statSync(file).mode & 0o777, 0o755);
    assert.match(readFileSync(file, 'utf8'), /ip saddr 10\.137\.0\.3 tcp dport 22 counter accept comment "qnet connection c1"/);
    const none = await s.run('export qubes vault');
    assert.equal(none.code, 0);
    assert.match(none.err, /vault is on the path of no exportable connection or port forward \(QNET2203\)/);
    assert.match((await s.run('export qubes nosuch')).err, /no such qube 'nosuch'.*\(QNET2003\)/);
  });
});
