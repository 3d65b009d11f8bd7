// Qubes scenarios with real packets (issue 4 §8): a live qnet system per test (withLiveSystem: temp
// state dir, unique namespace prefix, the real CLI in-process, everything removed afterwards), and
// every assertion is about what traffic actually did. All traffic starts inside qube namespaces and
// ends in the test's own `world` namespace (documentation addresses only); every wait is bounded.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { Daemon } from '../../src/daemon/server.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';

const WEB = '203.0.113.10';
const OTHER = '203.0.113.20';
const ECHO_PORT = 7000;
const prefixes: string[] = [];

/** A live system whose prefix is remembered for the final "nothing left" check. */
function live<T>(tag: string, fn: (s: LiveSystem) => Promise<T>): Promise<T> {
  return withLiveSystem(tag, async (s) => {
    prefixes.push(s.prefix);
    return fn(s);
  });
}

const conntrack = async (s: LiveSystem, qube: string) => (await s.sh(qube, ['conntrack', '-L', '-p', 'tcp'])).stdout;

const hasPing = spawnSync('sh', ['-c', 'command -v ping']).status === 0;

const why = kernelUnavailable();
if (why) test('kernel scenarios', { skip: why }, () => {});
else {
  test('work reaches the web server by name through 10.139.1.1, and the world sees the masqueraded address', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const resolv = await s.sh('work', ['cat', '/etc/resolv.conf']);
      assert.match(resolv.stdout, /^nameserver 10\.139\.1\.1$/m, 'work resolves through the virtual resolver');
      // Ask the virtual resolver explicitly: the query is DNATed by sys-firewall and sys-net to the world's server.
      const script = `const r = new (require('node:dns').promises.Resolver)({ timeout: 2000, tries: 1 }); r.setServers(['10.139.1.1']);
        r.resolve4('web.example.com').then((a) => console.log(a.join()), (e) => console.log('error:' + e.code));`;
      assert.equal((await s.sh('work', [process.execPath, '-e', script])).stdout.trim(), WEB);
      // The system resolver inside work (getaddrinfo via /etc/netns/<ns>/resolv.conf), then HTTP.
      assert.equal(await s.fetch('work', 'http://web.example.com/'), 'ok:qnet world: web.example.com (203.0.113.10)');
      const ip = await s.fetch('work', 'http://web.example.com/ip');
      assert.equal(ip, `ok:${worldUplinkAddresses.v4.netvm}`, 'the world sees sys-net\'s uplink address, not 10.137.0.3');
    });
  });

  test('a qube with drop rules cannot reach the target and is told so at once (admin-prohibited)', async (t) => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      await s.setRules('work', ['action=accept specialtarget=dns', `action=drop dsthost=${WEB}`, 'action=accept']);
      const t0 = Date.now();
      const r = await s.fetch('work', `http://${WEB}/`, 5000);
      const took = Date.now() - t0;
      assert.equal(r, 'error:EHOSTUNREACH', 'an ICMP admin-prohibited reject, not a silent drop');
      assert.ok(took < 2500, `failed fast (${took} ms, timeout 5000 ms)`);
      const probe = await s.tcpProbe('work', WEB, 80, { timeoutMs: 3000 });
      assert.equal(probe.result, 'error:EHOSTUNREACH');
      assert.ok(probe.ms < 1000, `connect refused in ${probe.ms} ms`);
      // The rule is specific: the other host is still reachable.
      assert.match(await s.fetch('work', `http://${OTHER}/`), /^ok:qnet world: other\.example\.com/);
      // And the default policy (no rule matches) rejects the same way.
      await s.setRules('work', [`action=accept dsthost=${OTHER}`]);
      assert.equal((await s.tcpProbe('work', WEB, 80, { timeoutMs: 3000 })).result, 'error:EHOSTUNREACH');
      if (hasPing) {
        const p = await s.sh('work', ['ping', '-n', '-c', '1', '-W', '2', WEB], 8000);
        assert.notEqual(p.code, 0);
        assert.match(p.stdout + p.stderr, /Packet filtered|Destination Host Prohibited|Communication administratively prohibited/i);
      } else t.diagnostic('ping is not installed: the ICMP echo check (admin-prohibited answer) was skipped');
    });
  });

  test('personal cannot open connections into work, nor work into personal', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work personal');
      await s.echoServer('work', '10.137.0.3', 8000);
      await s.echoServer('personal', '10.137.0.4', 8000);
      // The listeners work (seen from inside their own qube) and both qubes reach the world.
      assert.equal((await s.tcpProbe('work', '10.137.0.3', 8000)).result, 'ok');
      assert.equal((await s.tcpProbe('personal', '10.137.0.4', 8000)).result, 'ok');
      assert.match(await s.fetch('personal', `http://${WEB}/`), /^ok:/);
      const before = (await s.counters('sys-firewall', true)).find((r) => r.hop === 'sys-firewall' && r.rule === 'base: no new flows to clients' && r.chain === 'ip qubes forward');
      assert.ok(before, 'the base rule that refuses new flows to clients has a counter');
      // Dropped silently in sys-firewall (no answer at all), in both directions.
      assert.equal((await s.tcpProbe('personal', '10.137.0.3', 8000, { timeoutMs: 1500 })).result, 'timeout', 'personal → work');
      assert.equal((await s.tcpProbe('work', '10.137.0.4', 8000, { timeoutMs: 1500 })).result, 'timeout', 'work → personal');
      const after = (await s.counters('sys-firewall', true)).find((r) => r.hop === 'sys-firewall' && r.rule === 'base: no new flows to clients' && r.chain === 'ip qubes forward')!;
      assert.ok(after.packets >= before.packets + 2, `sys-firewall dropped both connection attempts (${before.packets} → ${after.packets})`);
    });
  });

  test('a spoofed source address is dropped in sys-firewall and counted by the antispoof rule', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const antispoof = async () =>
        (await s.counters('sys-firewall', true)).find((r) => r.hop === 'sys-firewall' && r.chain === 'ip qubes antispoof' && r.rule === 'base: antispoof')?.packets ?? -1;
      const upstream = async () => (await s.counters('work')).filter((r) => r.hop === 'sys-net').reduce((n, r) => n + r.packets, 0);
      const a0 = await antispoof();
      const u0 = await upstream();
      assert.ok(a0 >= 0, 'the antispoof drop rule has a counter');
      // personal's address, added inside work's namespace only.
      const add = await s.sh('work', ['ip', 'addr', 'add', '10.137.0.4/32', 'dev', 'eth0']);
      assert.equal(add.code, 0, add.stderr);
      const spoofed = await s.tcpProbe('work', WEB, 80, { localAddress: '10.137.0.4', timeoutMs: 1500 });
      assert.equal(spoofed.result, 'timeout', 'a spoofed SYN gets no answer at all');
      assert.ok((await antispoof()) >= a0 + 1, 'the antispoof drop counted it');
      assert.equal(await upstream(), u0, 'nothing of it reached sys-net');
      assert.ok(!(await conntrack(s, 'sys-net')).includes('10.137.0.4'));
      // Work's own address still works from the same namespace.
      assert.equal((await s.tcpProbe('work', WEB, 80, { localAddress: '10.137.0.3' })).result, 'ok');
    });
  });

  test('vault, which has no netvm, reaches nothing', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start vault');
      const links = JSON.parse((await s.sh('vault', ['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
      assert.deepEqual(links.map((l) => l.ifname), ['lo'], 'only loopback');
      assert.equal((await s.sh('vault', ['ip', 'route', 'show'])).stdout.trim(), '', 'no routes');
      assert.equal((await s.tcpProbe('vault', WEB, 80)).result, 'error:ENETUNREACH');
      assert.match(await s.fetch('vault', 'http://web.example.com/'), /^error:(?!timeout)/, 'not even a name lookup gets out');
      const udp = `const s = require('node:dgram').createSocket('udp4'); s.send('x', 53, '10.139.1.1', (e) => { console.log(e ? 'error:' + e.code : 'sent'); s.close(); });`;
      assert.equal((await s.sh('vault', [process.execPath, '-e', udp])).stdout.trim(), 'error:ENETUNREACH', 'even a UDP send fails locally');
    });
  });

  test('a held TCP connection is cut by a tightened rule and kept by a loosened one', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      await s.echoServer('world', WEB, ECHO_PORT);
      await s.setRules('work', [`action=accept dsthost=${WEB} proto=tcp dstports=${ECHO_PORT}`]);
      const held = await s.holdTcp('work', WEB, ECHO_PORT);
      assert.ok(await held.send(), 'data flows');
      const listed = async () => (await conntrack(s, 'sys-firewall')).split('\n').some((l) => l.includes('src=10.137.0.3') && l.includes(`dport=${ECHO_PORT}`));
      assert.ok(await listed(), 'sys-firewall tracks the flow');

      // Loosened, and still allowing the flow: it carries on.
      await s.setRules('work', [`action=accept dsthost=${OTHER}`, `action=accept dsthost=${WEB} proto=tcp dstports=${ECHO_PORT - 10}-${ECHO_PORT + 10}`]);
      assert.ok(await held.send(), 'still flows after a change that allows it');
      assert.ok(await listed());

      // Tightened: the flow is no longer allowed, so it is cut.
      await s.setRules('work', [`action=accept dsthost=${OTHER}`]);
      assert.ok(!(await listed()), 'the flow is gone from sys-firewall\'s conntrack');
      assert.equal(await held.send(2000), false, 'the connection no longer carries data');
      assert.ok(!(await listed()), 'and it is not re-established by the retransmissions');
      // A new connection is refused at once.
      assert.equal((await s.tcpProbe('work', WEB, ECHO_PORT)).result, 'error:EHOSTUNREACH');
    });
  });

  test('killing the netvm detaches work; starting it again reattaches work without touching it', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:/);
      const inode = statSync(`/run/netns/${s.ns('work')}`).ino;
      await s.ok('kill sys-firewall');
      const ls = JSON.parse(await s.ok('ls --json')) as { name: string; state: string }[];
      const state = (n: string) => ls.find((q) => q.name === n)?.state;
      assert.equal(state('sys-firewall'), 'Halted');
      assert.equal(state('work'), 'Running');
      assert.match(await s.fetch('work', `http://${WEB}/`, 1500), /^error:/, 'work is detached');
      await s.ok('start sys-firewall');
      assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:qnet world: web/, 'work reaches the world again');
      assert.equal(statSync(`/run/netns/${s.ns('work')}`).ino, inode, 'work\'s namespace is the same one');
    });
  });

  test('changing the netvm of a running qube moves its link live; its traffic then crosses the new netvm', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const inode = statSync(`/run/netns/${s.ns('work')}`).ino;
      // Only to a running netvm, as Qubes: a halted one is refused and nothing changes.
      await s.ok('create sys-vpn --provides-network --netvm sys-net --label blue');
      const refused = await s.q('prefs work netvm sys-vpn');
      assert.equal(refused.code, 1);
      assert.match(refused.err, /cannot dynamically attach to stopped qube 'sys-vpn'/);
      assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:/);
      // Straight to sys-net: the world now sees sys-net's uplink address, as before, but the path is
      // one hop shorter and sys-firewall no longer carries work's chain.
      await s.ok('prefs work netvm sys-net');
      assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:qnet world: web/);
      const route = (await s.sh('work', ['ip', 'route', 'show', 'default'])).stdout;
      assert.match(route, /via 10\.137\.0\.1 /, 'the gateway is sys-net now');
      const fw = (await s.sh('sys-firewall', ['nft', 'list', 'table', 'ip', 'qubes-firewall'])).stdout;
      assert.doesNotMatch(fw, /qbs-10-137-0-3/);
      const net = (await s.sh('sys-net', ['nft', 'list', 'table', 'ip', 'qubes-firewall'])).stdout;
      assert.match(net, /qbs-10-137-0-3/, "sys-net enforces work's rules now");
      assert.equal(statSync(`/run/netns/${s.ns('work')}`).ino, inode, 'work itself was not restarted');
    });
  });

  test('user rules in custom-forward survive every re-apply', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      const add = await s.sh('sys-firewall', ['nft', 'add', 'rule', 'ip', 'qubes', 'custom-forward', 'ip', 'daddr', OTHER, 'counter', 'comment', '"user rule"']);
      assert.equal(add.code, 0, add.stderr);
      const userRule = async () => {
        const r = await s.sh('sys-firewall', ['nft', 'list', 'chain', 'ip', 'qubes', 'custom-forward']);
        return /ip daddr 203\.0\.113\.20 counter packets (\d+) .*comment "user rule"/.exec(r.stdout)?.[1];
      };
      await s.ok(['firewall', 'work', 'add', '--before', '0', 'drop', WEB]);
      assert.ok(await userRule(), 'kept after the first change');
      await s.ok(['firewall', 'work', 'del', '--rule-no', '0']);
      assert.ok(await userRule(), 'kept after the second change');
      // The daemon's first converge loads every node whole: still there.
      const d = new Daemon({ stateDir: s.dir, runtime: (await runtimeFor(s.dir, s.env))!, sysctls: NO_ICMP_RATELIMIT });
      try {
        await d.start();
      } finally {
        await d.stop();
      }
      assert.ok(await userRule(), 'kept after a full load');
      // And it still sees traffic.
      assert.match(await s.fetch('work', `http://${OTHER}/`), /^ok:/);
      assert.ok(Number(await userRule()) > 0, 'the user rule counts packets');
    });
  });

  test('qnet counters shows packets on the rule that matched', async () => {
    await live('qs', async (s) => {
      await s.ok('init');
      await s.ok('start work');
      await s.setRules('work', [`action=accept dsthost=${OTHER} proto=tcp dstports=80`, `action=accept dsthost=${WEB} proto=tcp dstports=80`]);
      assert.match(await s.fetch('work', `http://${WEB}/`), /^ok:/);
      assert.equal((await s.tcpProbe('work', WEB, 81)).result, 'error:EHOSTUNREACH');
      const rows = (await s.counters('work')).filter((r) => r.hop === 'sys-firewall');
      const packets = (rule: string) => rows.find((r) => r.rule === rule)?.packets;
      assert.equal(packets('work rule 0'), 0, 'the rule for the other host saw nothing');
      assert.ok(packets('work rule 1')! >= 1, 'the rule that allowed the fetch counted it');
      assert.ok(packets('policy: work default drop')! >= 1, 'the refused connection hit the default policy');
    });
  });

  test('no namespace is left behind', () => {
    assert.ok(prefixes.length > 0);
    const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const left = list.split('\n').filter((l) => prefixes.some((p) => l.startsWith(p)));
    assert.deepEqual(left, []);
  });
}
