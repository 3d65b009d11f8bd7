// qnet connect / connections / disconnect / forward, offline: the words, the listings, refusals,
// persistence in qubes.json, and what check, matrix and nft then say (the simulator, no kernel).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { StateDir } from './helpers.js';

describe('connections and forwards from the command line', () => {
  const s = new StateDir();
  after(() => s.cleanup());

  test('connect, list, check, disconnect', async () => {
    await s.ok('init');
    assert.equal(await s.ok('connect work personal --proto tcp --port 22-23 --comment ssh'), 'c1: work → personal tcp/22-23 (inactive: not running: work, sys-firewall, personal)\n');
    assert.match(await s.ok('connections'), /^ID +CONNECTION +STATE +COMMENT\nc1 +work → personal tcp\/22-23 +inactive: not running: work, sys-firewall, personal +ssh\n$/);
    assert.deepEqual(JSON.parse(await s.ok('connect --list --json')).map((c: { id: string }) => c.id), ['c1']);
    // -v: one row per hop of its path; halted hops count nothing and show '-' (null in JSON).
    assert.match(await s.ok('connections -v'), /^ID +CONNECTION +STATE +COMMENT +HOP +PKTS +BYTES\nc1 +work → personal .* ssh +sys-firewall +- +-\n +personal +- +-\n$/);
    assert.deepEqual(JSON.parse(await s.ok('connect --list -v --json'))[0].hops, [{ node: 'sys-firewall', packets: null, bytes: null }, { node: 'personal', packets: null, bytes: null }]);
    assert.equal(JSON.parse(await s.ok('connections --json'))[0].hops, undefined);
    assert.match(readFileSync(s.path('qubes.json'), 'utf8'), /"connections": \[\n    \{\n      "id": "c1",\n      "from": "work",\n      "to": "personal",\n      "proto": "tcp",\n      "ports": \{/);
    // check asks the policy as if every qube ran.
    assert.match(await s.ok('check work personal:22'), /ACCEPT — delivered to personal/);
    assert.match(await s.ok('check personal work:22'), /DROP/);
    assert.match(await s.ok('nft sys-firewall'), /ip saddr 10\.137\.0\.3 ip daddr 10\.137\.0\.4 tcp dport 22-23 counter accept comment "connection=c1"/);
    assert.match(await s.ok('nft personal'), /ip saddr 10\.137\.0\.3 tcp dport 22-23 counter accept comment "connection=c1"/);
    const dup = await s.run('connect work personal --proto tcp --port 22-23');
    assert.equal(dup.code, 1);
    assert.match(dup.err, /connection c2 is the same as c1 \(QNET2202\)/);
    const usage = await s.run('connect work personal --port 22');
    assert.equal(usage.code, 2);
    assert.match((await s.run('connect work nosuch')).err, /no such qube 'nosuch'.*\(QNET2003\)/);
    assert.equal(await s.ok('disconnect work personal --proto tcp --port 22-23'), 'removed c1\n');
    assert.match((await s.run('disconnect c1')).err, /no connection matches .*\(QNET2203\)/);
    assert.equal(await s.ok('connections'), 'no connections (qnet connect A B)\n');
  });

  test('forwards: add, list, check from the outside, no uplink says so, del', async () => {
    await s.ok('forward add work --proto tcp --port 8443 --to-port 443 --from 192.0.2.0/24 --from 198.51.100.7');
    assert.match(await s.ok('forward list'), /f1 +sys-net tcp\/8443 → work:443 +192\.0\.2\.0\/24,198\.51\.100\.7 +inactive: not running: sys-net, sys-firewall, work/);
    assert.deepEqual(JSON.parse(await s.ok('forward list -v --json'))[0].hops.map((h: { node: string; packets: null }) => [h.node, h.packets]), [['sys-net', null], ['sys-firewall', null], ['work', null]]);
    assert.match(await s.ok('check outside work:8443 --src-addr 192.0.2.9'), /ACCEPT — delivered to work/);
    assert.match(await s.ok('check outside work:8443'), /DROP/);
    assert.match(await s.ok('check outside work:443 --src-addr 192.0.2.9'), /DROP/);
    const clash = await s.run('forward add personal --proto tcp --port 8443');
    assert.match(clash.err, /forward f2 claims tcp port 8443 of sys-net, as f1 does \(QNET2202\)/);
    assert.match((await s.run('forward add work --proto tcp --port 1 --from nope')).err, /from must be at most 64 addresses or CIDRs/);
    await s.ok('qubes-prefs uplink none');
    assert.match(await s.ok('forward list'), /inactive: sys-net has no uplink/);
    const w = await s.run('forward add work --proto udp --port 53');
    assert.equal(w.code, 0);
    assert.match(w.err, /forward f2: sys-net has no uplink .*QNET4006/);
    assert.equal(await s.ok('forward del f2'), 'removed f2\n');
    assert.equal(await s.ok('forward del work --proto tcp --port 8443'), 'removed f1\n');
    assert.equal(await s.ok('forward list'), 'no port forwards (qnet forward add VM --proto tcp --port N)\n');
  });

  test('matrix: a forwarded port reaches its qube only, not every qube behind the same uplink', async () => {
    await s.ok('qubes-prefs uplink world');
    await s.ok('forward add work --proto tcp --port 8080');
    const m = JSON.parse(await s.ok('matrix --proto tcp --port 8080 --json')) as { cells: Record<string, Record<string, string>> };
    assert.equal(m.cells['outside']!['work'], 'accept');
    for (const other of ['personal', 'sys-firewall', 'sys-net']) assert.equal(m.cells['outside']![other], 'drop', `outside → ${other}:8080 lands on work, not ${other}`);
    await s.ok('forward del work --proto tcp --port 8080');
    assert.equal(JSON.parse(await s.ok('matrix --proto tcp --port 8080 --json')).cells['outside']['work'], 'drop');
  });

  test('removing a qube takes its connections with it; renaming follows', async () => {
    await s.ok('create dev --label green');
    await s.ok('connect dev personal');
    await s.ok('connect personal dev --proto icmp');
    await s.ok('rename dev lab');
    assert.match(await s.ok('connections'), /lab → personal any[\s\S]*personal → lab icmp/);
    await s.ok('remove --force lab');
    assert.equal(await s.ok('connections'), 'no connections (qnet connect A B)\n');
  });
});
