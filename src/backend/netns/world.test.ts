// The world namespace for real: a client namespace linked to it by a veth (198.51.100.0/24 and
// 2001:db8:ffff::/64, as sys-net's uplink would be) resolves and fetches from it. Everything happens
// in namespaces created here with a unique prefix, removed even on failure; the host namespace gets
// no address and no route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelUnavailable, withNamespaces } from '../../../test/kernel/ns.js';
import { DEFAULT_ZONE } from './dns-server.js';
import { NetnsResolver, nodeScriptArgv } from './resolver.js';
import { NodeRunner, runChecked, type Runner } from './runner.js';
import {
  WORLD_HOSTS,
  createWorld,
  destroyWorld,
  isWorldServicesPid,
  processAlive,
  worldSetupBatch,
  worldUplinkAddresses,
  worldServicesConfig,
  worldFiles,
} from './world.js';

test('the world plan agrees with the default zone and stays in documentation ranges', () => {
  assert.deepEqual(DEFAULT_ZONE['web.example.com']?.a, [WORLD_HOSTS.web.v4]);
  assert.deepEqual(DEFAULT_ZONE['web.example.com']?.aaaa, [WORLD_HOSTS.web.v6]);
  assert.deepEqual(DEFAULT_ZONE['other.example.com']?.a, [WORLD_HOSTS.other.v4]);
  assert.deepEqual(DEFAULT_ZONE['other.example.com']?.aaaa, [WORLD_HOSTS.other.v6]);
  const doc = /^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:)/;
  const all = [...Object.values(WORLD_HOSTS).flatMap((h) => [h.v4, h.v6]), ...Object.values(worldUplinkAddresses).flatMap((u) => [u.world, u.netvm])];
  for (const a of all) assert.match(a, doc);
  assert.match(worldSetupBatch(), /address add 2001:db8::53\/128 dev lo nodad\n/);
  const cfg = worldServicesConfig(worldFiles('/s', 'w'), {});
  assert.deepEqual(cfg.http.map((h) => [h.name, h.addresses, h.ports]), [
    ['web.example.com', ['203.0.113.10', '2001:db8::10'], [80]],
    ['other.example.com', ['203.0.113.20', '2001:db8::20'], [80]],
  ]);
  assert.equal(cfg.exitOnStdinEnd, true, 'attached by default');
  assert.equal(worldServicesConfig(worldFiles('/s', 'w'), { detached: true, stateDir: '/s' }).exitOnStdinEnd, false);
});

test('createWorld refuses a bad name and a detached world without a state dir, before touching anything', async () => {
  const runner: Runner = { run: () => Promise.reject(new Error('no command may run')) };
  await assert.rejects(createWorld(runner, 'bad name'), /not a valid namespace name/);
  await assert.rejects(createWorld(runner, 'world', { detached: true }), /needs a state directory/);
});

const why = kernelUnavailable();
if (why) {
  test('kernel tests', { skip: why }, () => {});
} else {
  const runner = new NodeRunner();
  const uplink = worldUplinkAddresses;

  /** A client namespace linked to the world the way sys-net would be. The veth is created inside the
   *  world namespace with its peer moved straight into the client: it never exists in the host's. */
  async function linkClient(worldNs: string, client: string): Promise<void> {
    await runChecked(runner, ['ip', 'netns', 'add', client]);
    await runChecked(runner, ['ip', '-n', worldNs, '-batch', '-'], {
      stdin: [
        `link add up0 type veth peer name eth0 netns ${client}`,
        `address add ${uplink.v4.world}/${uplink.v4.len} dev up0`,
        `address add ${uplink.v6.world}/${uplink.v6.len} dev up0 nodad`,
        'link set up0 up',
        '',
      ].join('\n'),
    });
    await runChecked(runner, ['ip', '-n', client, '-batch', '-'], {
      stdin: [
        'link set lo up',
        `address add ${uplink.v4.netvm}/${uplink.v4.len} dev eth0`,
        `address add ${uplink.v6.netvm}/${uplink.v6.len} dev eth0 nodad`,
        'link set eth0 up',
        `route add default via ${uplink.v4.world}`,
        `route add default via ${uplink.v6.world}`,
        '',
      ].join('\n'),
    });
  }

  /** One bounded HTTP GET from inside a namespace, by a short-lived node process. */
  async function fetchIn(ns: string, url: string): Promise<string> {
    const code = `const r = await fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }); process.stdout.write(r.status + ' ' + (await r.text()));`;
    return runChecked(runner, [process.execPath, '--input-type=module', '-e', code], { netns: ns, timeoutMs: 10_000 });
  }

  const namespaces = (): string[] => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '');

  test('world: DNS, HTTP and a zone change seen from a linked namespace; destroy leaves nothing', async () => {
    await withNamespaces('qw', async (prefix) => {
      const worldNs = `${prefix}world`;
      const client = `${prefix}cli`;
      const world = await createWorld(runner, worldNs);
      let destroyed = false;
      try {
        assert.ok(isWorldServicesPid(world.pid), 'the PID is the world-services node process itself');
        await linkClient(worldNs, client);

        const resolver = new NetnsResolver(runner, client, { servers: [WORLD_HOSTS.dns.v4], timeoutMs: 5000, attemptTimeoutMs: 1000 });
        const names = ['web.example.com', 'v4only.example.com', 'multi.example.com', 'nope.example.com'];
        const out = await resolver.resolveAll(names);
        assert.deepEqual(out.get('web.example.com'), { name: 'web.example.com', a: ['203.0.113.10'], aaaa: ['2001:db8::10'], ttl: 60 });
        assert.deepEqual(out.get('v4only.example.com'), { name: 'v4only.example.com', a: ['203.0.113.10'], aaaa: [], ttl: 60 });
        assert.deepEqual(out.get('multi.example.com')?.a, ['203.0.113.10', '203.0.113.20']);
        assert.equal(out.get('nope.example.com')?.error, 'NXDOMAIN');

        // The DNS server over IPv6 too.
        const v6 = new NetnsResolver(runner, client, { servers: [`[${WORLD_HOSTS.dns.v6}]:53`], timeoutMs: 5000, attemptTimeoutMs: 1000 });
        assert.deepEqual((await v6.resolveAll(['other.example.com'])).get('other.example.com')?.aaaa, ['2001:db8::20']);

        assert.equal(await fetchIn(client, `http://${WORLD_HOSTS.web.v4}/`), '200 qnet world: web.example.com (203.0.113.10)\n');
        assert.equal(await fetchIn(client, `http://${WORLD_HOSTS.web.v4}/ip`), `200 ${uplink.v4.netvm}\n`);
        assert.equal(await fetchIn(client, `http://[${WORLD_HOSTS.other.v6}]/`), '200 qnet world: other.example.com (2001:db8::20)\n');
        assert.equal(await fetchIn(client, `http://[${WORLD_HOSTS.web.v6}]/ip`), `200 ${uplink.v6.netvm}\n`);

        await world.setZone({ ...DEFAULT_ZONE, 'web.example.com': { a: ['203.0.113.20'], ttl: 30 } });
        assert.deepEqual((await resolver.resolveAll(['web.example.com'])).get('web.example.com'), { name: 'web.example.com', a: ['203.0.113.20'], aaaa: [], ttl: 30 });

        await assert.rejects(world.setZone({ 'web.example.com': { a: ['not-an-address'] } }), /zone not loaded, the old one stays: .*IPv4/);
        assert.deepEqual((await resolver.resolveAll(['web.example.com'])).get('web.example.com')?.a, ['203.0.113.20']);

        destroyed = true;
        await world.destroy();
        assert.ok(!processAlive(world.pid), `world-services pid ${world.pid} is gone`);
        assert.ok(!namespaces().includes(worldNs), 'the world namespace is gone');
        assert.ok(!existsSync(world.stateDir), 'the private state dir is gone');
      } finally {
        if (!destroyed) await world.destroy();
      }
    });
  });

  test('a detached world is found and stopped by its PID file, like `qnet demo --down`', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'qnet-world-test-'));
    try {
      await withNamespaces('qd', async (prefix) => {
        const ns = `${prefix}world`;
        const world = await createWorld(runner, ns, { stateDir, detached: true });
        try {
          assert.equal((await readFile(world.files.pid, 'utf8')).trim(), String(world.pid));
          // Detached: its own session and process group, so the caller's Ctrl-C does not reach it.
          const stat = readFileSync(`/proc/${world.pid}/stat`, 'utf8');
          const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          assert.deepEqual([pgrp, session], [String(world.pid), String(world.pid)]);
          await assert.rejects(createWorld(runner, ns, { stateDir }), /already exists/);
          assert.ok(namespaces().includes(ns), 'a refused second world leaves the first alone');
          assert.ok(isWorldServicesPid(world.pid));

          await destroyWorld(runner, ns, { stateDir });
          assert.ok(!processAlive(world.pid), `world-services pid ${world.pid} is gone`);
          assert.ok(!namespaces().includes(ns));
          assert.ok(!existsSync(world.files.pid), 'PID file removed');
          await destroyWorld(runner, ns, { stateDir }); // idempotent
        } finally {
          // Only if the test failed before destroyWorld: stop exactly the process we started.
          if (processAlive(world.pid) && isWorldServicesPid(world.pid)) process.kill(world.pid, 'SIGKILL');
        }
      });
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  test('an attached world ends with the process that created it', async () => {
    await withNamespaces('qa', async (prefix) => {
      const ns = `${prefix}world`;
      // A separate node process creates the world, prints its PID and exits without destroying it.
      const worldModule = new URL(`./world${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;
      const runnerModule = new URL(`./runner${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;
      const loader = nodeScriptArgv('world').slice(1, -1); // the tsx loader under tsx, nothing from dist
      const code = `const { createWorld } = await import(${JSON.stringify(worldModule)});
        const { NodeRunner } = await import(${JSON.stringify(runnerModule)});
        const w = await createWorld(new NodeRunner(), ${JSON.stringify(ns)});
        process.stdout.write(w.pid + ' ' + w.stateDir);`;
      const out = await runChecked(runner, [process.execPath, ...loader, '--input-type=module', '-e', code], { timeoutMs: 30_000 });
      const [pidText, stateDir] = out.trim().split(' ');
      const pid = Number(pidText);
      if (stateDir?.startsWith(join(tmpdir(), 'qnet-world-'))) await rm(stateDir, { recursive: true, force: true });
      assert.ok(pid > 0, `got a PID: ${out}`);
      const deadline = Date.now() + 5000;
      while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(!processAlive(pid), `world-services ${pid} exited when its creator did`);
      await destroyWorld(runner, ns);
      assert.ok(!namespaces().includes(ns));
    });
  });

  test('a failed start cleans up: no namespace, no process, and the error shows why', async () => {
    await withNamespaces('qf', async (prefix) => {
      const ns = `${prefix}world`;
      // Port 0 is not a valid HTTP port in the services' config check, so they exit at once.
      await assert.rejects(createWorld(runner, ns, { httpPorts: [0], readyTimeoutMs: 10_000 }), /world-services exited .*bad address or port/);
      assert.ok(!namespaces().includes(ns));
    });
  });
}
