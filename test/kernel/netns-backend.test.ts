// Real packets in real namespaces. Address plan (Qubes §5.1, inside namespaces only):
//   sys-net 10.137.0.1 (no uplink) ← sys-firewall 10.137.0.2 ← work 10.137.0.3 (+ fd09:24ef:4179::a89:3)
//                                  ← sys-firewall2 10.137.0.5        personal 10.137.0.4
// Every ping is bounded (-c/-W), every child process has a timeout and is killed by PID, and every
// namespace is removed by withNamespaces even when a test fails.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { kernelUnavailable, withNamespaces } from './ns.js';
import { until } from './system.js';
import { NodeRunner, runChecked } from '../../src/backend/netns/runner.js';
import { NetnsBackend } from '../../src/backend/netns/netns-backend.js';
import { NO_ICMP_RATELIMIT } from '../../src/backend/netns/sysctl.js';
import { NftError } from '../../src/backend/netns/nft.js';
import { NetnsError } from '../../src/backend/netns/links.js';
import type { NetNode, NetPlan } from '../../src/model/netplan.js';
import { planNetwork } from '../../src/model/topology.js';
import { defaultLayout } from '../../src/model/layout.js';

const runner = new NodeRunner();

/** The pid of a node's nft session (tests only: the backend keeps it private). */
const sessionPid = (be: NetnsBackend, node: string): number =>
  (be as unknown as { sessions: Map<string, { session: { pid: number } }> }).sessions.get(node)!.session.pid;
const V6 = 'fd09:24ef:4179::a89:';

/** A hand-made plan: Qubes' /32 links, groups 1 (uplink) and 2 (vif). */
function handPlan(netvmOf: Record<string, string>): NetPlan {
  const qid: Record<string, number> = { 'sys-net': 1, 'sys-firewall': 2, work: 3, personal: 4, 'sys-firewall2': 5 };
  const v6 = new Set(['sys-firewall', 'sys-firewall2', 'work']); // work's gateways and sys-firewall speak IPv6
  const ip = (n: string) => `10.137.0.${qid[n]}`;
  const nodes = new Map<string, NetNode>();
  const node = (n: string) =>
    nodes.get(n) ?? (nodes.set(n, { name: n, kind: 'qube', ifaces: [], routes: [], forwarding: n.startsWith('sys-') }), nodes.get(n)!);
  for (const n of Object.keys(qid)) node(n);
  for (const [client, netvm] of Object.entries(netvmOf)) {
    const c = node(client);
    const nv = node(netvm);
    const vif = `vif${qid[client]}.0`;
    const six = v6.has(client) && v6.has(netvm);
    c.ifaces.push({
      name: 'eth0',
      group: c.forwarding ? 1 : 0,
      addrs: [{ addr: ip(client), len: 32 }, ...(six ? [{ addr: V6 + qid[client], len: 128 }] : [])],
      peer: { node: netvm, iface: vif },
    });
    c.routes.push({ dst: `${ip(netvm)}/32`, dev: 'eth0', family: 4 }, { dst: 'default', dev: 'eth0', via: ip(netvm), family: 4 });
    if (six)
      c.routes.push({ dst: `${V6}${qid[netvm]}/128`, dev: 'eth0', family: 6 }, { dst: 'default', dev: 'eth0', via: V6 + qid[netvm], family: 6 });
    nv.ifaces.push({
      name: vif,
      group: 2,
      addrs: [{ addr: ip(netvm), len: 32 }, ...(six ? [{ addr: V6 + qid[netvm], len: 128 }] : [])],
      peer: { node: client, iface: 'eth0' },
    });
    nv.routes.push({ dst: `${ip(client)}/32`, dev: vif, family: 4 });
    if (six) nv.routes.push({ dst: `${V6}${qid[client]}/128`, dev: vif, family: 6 });
  }
  return { nodes: [...nodes.values()], virtualDns: [], upstreamDns: [], uplink: 'none' };
}

const BASE = { 'sys-firewall': 'sys-net', 'sys-firewall2': 'sys-net', work: 'sys-firewall', personal: 'sys-firewall' };
const ALL = ['sys-net', 'sys-firewall', 'sys-firewall2', 'work', 'personal'];

async function ping(be: NetnsBackend, from: string, to: string): Promise<boolean> {
  const r = await runner.run(['ping', '-n', '-q', '-c', '1', '-W', '1', to], { netns: be.ns(from), timeoutMs: 3000 });
  return r.code === 0;
}

async function ipJson<T>(be: NetnsBackend, qube: string, args: string[]): Promise<T> {
  return JSON.parse(await runChecked(runner, ['ip', '-n', be.ns(qube), '-j', ...args])) as T;
}

/** Qubes' postrouting (§5.2): every hop masquerades what leaves through a non-vif interface. */
const MASQUERADE = `table ip qt-nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifgroup 2 accept
    oif lo accept
    masquerade
  }
}
`;

async function up(prefix: string, plan = handPlan(BASE), opts: { sessions?: boolean } = {}): Promise<NetnsBackend> {
  const be = new NetnsBackend({ runner, prefix, sysctls: NO_ICMP_RATELIMIT, ...opts });
  // Loaded before any link exists (BringUpOptions.rules): without NAT, sys-net has no route back.
  await be.bringUp(plan, ALL, { rules: new Map([['sys-firewall', MASQUERADE], ['sys-firewall2', MASQUERADE]]) });
  return be;
}

/** Stop a child we started, by its PID: SIGTERM, and SIGKILL if it has not exited within 2 s; waits at most 5 s. */
async function stop(k: ChildProcess): Promise<void> {
  if (k.pid === undefined || k.exitCode !== null || k.signalCode !== null) return;
  const exited = new Promise<void>((r) => k.once('exit', () => r()));
  k.kill('SIGTERM');
  const timer = setTimeout(() => k.kill('SIGKILL'), 2000);
  // Bounded as QubeProcess.stop is (the header promises every wait is).
  let bound: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((r) => (bound = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  clearTimeout(bound);
}

const FORWARD_DROP_WORK = `table inet qt {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr 10.137.0.3 counter drop comment "work rule 0"
  }
}
`;

const why = kernelUnavailable();
if (why) {
  test('kernel tests', { skip: why }, () => {});
} else {
  test('bring-up: groups, /32 addresses and routes as planned', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      assert.deepEqual(await be.listNamespaces(), [...ALL].sort());
      type Link = { ifname: string; group: string; operstate: string };
      const fw = await ipJson<Link[]>(be, 'sys-firewall', ['link', 'show']);
      const group = (ls: Link[], n: string) => ls.find((l) => l.ifname === n)?.group;
      assert.equal(group(fw, 'eth0'), '1', 'uplink of a netvm is group 1');
      assert.equal(group(fw, 'vif3.0'), '2', 'vifs are group 2');
      assert.equal(group(fw, 'vif4.0'), '2');
      const work = await ipJson<Link[]>(be, 'work', ['link', 'show']);
      assert.equal(group(work, 'eth0'), 'default');
      assert.equal(work.find((l) => l.ifname === 'lo')?.operstate, 'UNKNOWN'); // lo is up
      type R = { dst: string; dev: string; gateway?: string };
      const routes = await ipJson<R[]>(be, 'work', ['route', 'show']);
      assert.deepEqual(
        routes.map((r) => `${r.dst} ${r.gateway ?? '-'} ${r.dev}`).sort(),
        ['10.137.0.2 - eth0', 'default 10.137.0.2 eth0'],
      );
      const fwRoutes = await ipJson<R[]>(be, 'sys-firewall', ['route', 'show']);
      assert.deepEqual(
        fwRoutes.map((r) => `${r.dst} ${r.gateway ?? '-'} ${r.dev}`).sort(),
        ['10.137.0.1 - eth0', '10.137.0.3 - vif3.0', '10.137.0.4 - vif4.0', 'default 10.137.0.1 eth0'],
      );
      type A = { ifname: string; addr_info: { local: string; prefixlen: number; scope: string }[] };
      const addrs = await ipJson<A[]>(be, 'work', ['addr', 'show', 'dev', 'eth0']);
      assert.deepEqual(
        addrs[0]!.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
        ['10.137.0.3/32', `${V6}3/128`],
      );
    });
  });

  test('app pings its gateway and, forwarded through sys-firewall, sys-net (IPv4 and IPv6)', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      assert.ok(await ping(be, 'work', '10.137.0.2'), 'work → gateway');
      assert.ok(await ping(be, 'work', '10.137.0.1'), 'work → sys-net through sys-firewall');
      assert.ok(await ping(be, 'personal', '10.137.0.1'), 'personal → sys-net');
      assert.ok(await ping(be, 'work', `${V6}2`), 'work → gateway over IPv6');
      const fwd = await runChecked(runner, ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.icmp_ratelimit'], { netns: be.ns('sys-firewall') });
      assert.deepEqual(fwd.trim().split('\n'), ['1', '0']);
      const app = await runChecked(runner, ['sysctl', '-n', 'net.ipv4.ip_forward'], { netns: be.ns('work') });
      assert.equal(app.trim(), '0', 'app qubes do not forward');
    });
  });

  test('nft text that drops forwarding stops the ping and its counter moves', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      await be.checkRules(FORWARD_DROP_WORK, 'sys-firewall');
      await be.loadRules('sys-firewall', FORWARD_DROP_WORK);
      assert.equal(await ping(be, 'work', '10.137.0.1'), false, 'forwarded ping is dropped');
      assert.ok(await ping(be, 'work', '10.137.0.2'), 'input to the firewall itself still works');
      assert.ok(await ping(be, 'personal', '10.137.0.1'), 'other qubes are untouched');
      const c = (await be.counters('sys-firewall')).find((x) => x.comment === 'work rule 0');
      assert.ok(c, 'the rule is found by its comment');
      assert.equal(c.family, 'inet');
      assert.equal(c.table, 'qt');
      assert.equal(c.chain, 'forward');
      assert.ok(c.packets >= 1 && c.bytes >= 84, `counter moved: ${JSON.stringify(c)}`);
    });
  });

  test('a rejected ruleset is reported with its line and changes nothing', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      await be.loadRules('sys-firewall', FORWARD_DROP_WORK);
      const bad = 'flush table inet qt\ntable inet qt {\n  chain forward {\n    ip saddr 10.137.0.3 bogus\n  }\n}\n';
      await assert.rejects(be.loadRules('sys-firewall', bad), (e: unknown) => {
        assert.ok(e instanceof NftError);
        assert.equal(e.code, 'QNET5210');
        assert.equal(e.errors[0]?.line, 4);
        assert.equal(e.diagnostic.qube, 'sys-firewall');
        return true;
      });
      await assert.rejects(be.checkRules(bad, 'sys-firewall'), NftError);
      await assert.rejects(be.loadRules('sys-firewall', 'delete table inet nosuch\n'), (e: unknown) => e instanceof NftError && e.code === 'QNET5211');
      assert.equal((await be.counters('sys-firewall')).length, 1, 'the flush in the bad text was not applied');
      assert.equal(await ping(be, 'work', '10.137.0.1'), false);
      await assert.rejects(be.counters('vault'), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5204');
    });
  });

  test('the daemon\'s nft sessions: loads go through them, refusals read as nft -f\'s, and a namespace that goes takes its session along', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix, handPlan(BASE), { sessions: true });
      try {
        await be.loadRules('sys-firewall', FORWARD_DROP_WORK, { keep: true });
        assert.deepEqual(be.sessionNodes, ['sys-firewall']);
        assert.equal(await ping(be, 'work', '10.137.0.1'), false, 'the session loaded the drop');
        // A failed ping alone proves nothing: the drop rule must be what stopped it.
        const c = (await be.counters('sys-firewall')).find((x) => x.comment === 'work rule 0');
        assert.ok(c && c.packets >= 1, `the drop counted the ping: ${JSON.stringify(c)}`);
        await assert.rejects(be.loadRules('sys-firewall', 'add rule inet qt forward bogus\n'), (e: unknown) => e instanceof NftError && e.errors[0]?.line === 1);
        // The netvm's namespace deleted behind qnet's back: the session must not keep it alive.
        assert.ok(await ping(be, 'work', '10.137.0.2'), 'sys-firewall itself answers');
        const pid = sessionPid(be, 'sys-firewall');
        spawnSync('ip', ['netns', 'del', be.ns('sys-firewall')]);
        const { NetnsExecutor } = await import('../../src/backend/netns/netns-executor.js');
        assert.ok(!(await new NetnsExecutor(be, runner).live()).has('sys-firewall'));
        assert.deepEqual(be.sessionNodes, [], 'live() closed the session of the vanished namespace');
        assert.ok(await until(async () => spawnSync('kill', ['-0', String(pid)]).status !== 0, 2000, 50), 'its nft -i is gone');
        // The kernel frees a namespace asynchronously once its last process is gone: bounded polling.
        assert.ok(await until(async () => !(await ping(be, 'work', '10.137.0.2')), 500, 50), 'and with it the namespace and its links: sys-firewall is gone');
        // tearDown closes sessions first.
        await be.loadRules('sys-firewall2', FORWARD_DROP_WORK, { keep: true });
        const pid2 = sessionPid(be, 'sys-firewall2');
        await be.tearDown(['sys-firewall2']);
        assert.deepEqual(be.sessionNodes, []);
        assert.ok(await until(async () => spawnSync('kill', ['-0', String(pid2)]).status !== 0, 2000, 50));
      } finally {
        be.close();
      }
    });
  });

  const socat = spawnSync('sh', ['-c', 'command -v socat']).status === 0;
  test('a TCP connection shows in flows() and deleteFlow() removes exactly it', { skip: socat ? false : 'needs socat (apt-get install socat)' }, async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      // Conntrack runs in a namespace only once a rule uses it.
      await be.loadRules('sys-firewall', 'table inet qt {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n    ct state established,related counter accept\n  }\n}\n');
      const kids: ChildProcess[] = [];
      const start = (qube: string, argv: string[]) => {
        const c = spawn('ip', ['netns', 'exec', be.ns(qube), 'timeout', '10', ...argv], { stdio: ['pipe', 'ignore', 'ignore'] });
        kids.push(c);
        return c;
      };
      try {
        start('sys-net', ['socat', 'TCP-LISTEN:8080,reuseaddr', '-']);
        await new Promise((r) => setTimeout(r, 200));
        let conn: ChildProcess | undefined;
        const established = () =>
          be.flows('sys-firewall', 4).then((fs) => fs.find((f) => f.proto === 'tcp' && f.dport === 8080 && f.state === 'ESTABLISHED'));
        // The listener may need a moment; retry the client a few times (bounded).
        for (let i = 0; i < 5 && !(await established()); i++) {
          if (conn) await stop(conn);
          conn = start('work', ['socat', '-', 'TCP:10.137.0.1:8080']);
          await until(async () => (await established()) !== undefined, 500, 50);
        }
        const flow = await established();
        assert.ok(flow, 'the connection is tracked in sys-firewall');
        assert.equal(flow.src, '10.137.0.3');
        assert.equal(flow.dst, '10.137.0.1');
        assert.equal(flow.reply.sport, 8080);
        assert.equal(typeof flow.sport, 'number');
        assert.ok(flow.flags.includes('ASSURED'));
        assert.equal(await be.deleteFlow('sys-firewall', { ...flow, dport: 9999 }), 0, 'a different port matches nothing');
        assert.equal(await be.deleteFlow('sys-firewall', flow), 1);
        const left = await be.flows('sys-firewall', 4);
        assert.equal(left.filter((f) => f.proto === 'tcp' && f.sport === flow.sport && f.dport === 8080).length, 0);
      } finally {
        // SIGTERM, not SIGKILL: `timeout` passes it on to socat, while a killed `timeout` orphans it.
        await Promise.all(kids.map((k) => stop(k)));
      }
    });
  });

  test('relink moves an app qube to another netvm and traffic follows', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      await be.loadRules('sys-firewall2', 'table inet qt {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n    ip saddr 10.137.0.3 counter comment "via fw2"\n  }\n}\n');
      const plan2 = handPlan({ ...BASE, work: 'sys-firewall2' });
      await be.relink(plan2, 'work');
      type Link = { ifname: string };
      const names = async (q: string) => (await ipJson<Link[]>(be, q, ['link', 'show'])).map((l) => l.ifname);
      assert.ok(!(await names('sys-firewall')).includes('vif3.0'), 'old vif is gone');
      assert.ok((await names('sys-firewall2')).includes('vif3.0'), 'new vif exists');
      assert.ok(await ping(be, 'work', '10.137.0.5'), 'work → new gateway');
      assert.ok(await ping(be, 'work', '10.137.0.1'), 'work → sys-net through sys-firewall2');
      assert.ok(await ping(be, 'work', `${V6}5`), 'IPv6 follows too');
      const c = (await be.counters('sys-firewall2')).find((x) => x.comment === 'via fw2');
      assert.ok(c && c.packets >= 1, 'the packets went through sys-firewall2');
      assert.ok(await ping(be, 'personal', '10.137.0.1'), 'personal still uses sys-firewall');
      await be.relink(handPlan(BASE), 'work');
      assert.ok(await ping(be, 'work', '10.137.0.1'), 'and back');
    });
  });

  test('a netvm brought back up reattaches its running clients; a restarted client gets its link back', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      const plan = handPlan(BASE);
      await be.tearDown(['sys-firewall']);
      assert.ok(!(await be.listNamespaces()).includes('sys-firewall'), 'a dead netvm shows as missing');
      // The kernel removes the dead namespace's veths a few ms after the namespace (bounded wait).
      const gone = async () => !(await runner.run(['ip', '-n', `${prefix}work`, 'link', 'show', 'eth0'])).stdout.includes('eth0');
      for (let i = 0; i < 50 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(await gone(), "work's uplink went with sys-firewall");
      assert.equal(await ping(be, 'work', '10.137.0.1'), false);
      await be.bringUp(plan, ['sys-firewall'], { rules: new Map([['sys-firewall', MASQUERADE]]) });
      assert.ok(await ping(be, 'work', '10.137.0.1'), 'work reattached');
      assert.ok(await ping(be, 'personal', '10.137.0.1'), 'personal reattached');
      // Immediately after a namespace is deleted its veth ends still exist for a few ms.
      for (let i = 0; i < 10; i++) {
        await be.tearDown(['work']);
        await be.bringUp(plan, ['work']);
      }
      assert.ok(await ping(be, 'work', '10.137.0.1'), 'restarted work is linked again');
      await assert.rejects(be.bringUp(plan, ['work']), (e: unknown) => e instanceof NetnsError && e.code === 'QNET5202');
    });
  });

  test('exec runs a program inside the qube and returns its exit code', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      assert.equal(await be.exec('work', ['ping', '-q', '-c', '1', '-W', '1', '10.137.0.1']), 0);
      assert.equal(await be.exec('work', ['sh', '-c', 'ip -o addr show dev eth0 | grep -q 10.137.0.3 && exit 7']), 7);
      assert.equal(await be.exec('work', ['sh', '-c', 'test "$(id -u)" = 65534'], { user: 'nobody' }), 0);
    });
  });

  test("the model's own plan: a world that exists first, then qubes linked to it through two NAT hops", async () => {
    await withNamespaces('qt', async (prefix) => {
      const plan = planNetwork(defaultLayout(), { uplink: 'world' });
      const be = new NetnsBackend({ runner, prefix, sysctls: NO_ICMP_RATELIMIT });
      await be.bringUp(plan, ['world']); // as the daemon does: the world is up before any qube
      const qubes = plan.nodes.map((n) => n.name).filter((n) => n !== 'world');
      await be.bringUp(plan, qubes, { rules: new Map([['sys-net', MASQUERADE], ['sys-firewall', MASQUERADE]]) });
      assert.ok(await ping(be, 'work', '198.51.100.1'), 'work → world through sys-firewall and sys-net');
      assert.ok(await ping(be, 'untrusted', '198.51.100.1'), 'untrusted → world');
      assert.ok(await ping(be, 'sys-net', '2001:db8:ffff::1'), 'sys-net → world over IPv6');
    });
  });

  test('tearDown leaves no namespace behind', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = await up(prefix);
      await be.tearDown(ALL);
      await be.tearDown(['work']); // already gone: not an error
      assert.deepEqual(await be.listNamespaces(), []);
      const list = await runChecked(runner, ['ip', 'netns', 'list']);
      assert.ok(!list.includes(prefix), 'nothing with our prefix is left');
    });
  });

  test('a failed bring-up removes what it created', async () => {
    await withNamespaces('qt', async (prefix) => {
      const be = new NetnsBackend({ runner, prefix });
      const bad = new Map([['sys-net', 'this is not nft\n']]);
      await assert.rejects(be.bringUp(handPlan(BASE), ALL, { rules: bad }), NftError);
      assert.deepEqual(await be.listNamespaces(), []);
    });
  });
}
