// Resolver logic with fakes, and SystemResolver against the world DNS server on loopback (127.0.0.1
// only: nothing leaves this machine). The in-namespace path is exercised in world.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { RecordWithTtl } from 'node:dns';
import { DnsServer } from './dns-server.js';
import { ScriptedRunner } from './runner.js';
import {
  NetnsResolver,
  SystemResolver,
  isValidDnsName,
  nodeScriptArgv,
  queryNames,
  toResolution,
  type DnsClient,
  type RawAnswer,
} from './resolver.js';

const rec = (address: string, ttl: number) => ({ records: [{ address, ttl }] });

test('toResolution: families are independent; errors only when no address at all', () => {
  const both: RawAnswer = { name: 'x', a: { records: [{ address: '203.0.113.20', ttl: 90 }, { address: '203.0.113.10', ttl: 60 }, { address: '203.0.113.10', ttl: 60 }] }, aaaa: rec('2001:db8::10', 120) };
  assert.deepEqual(toResolution(both), { name: 'x', a: ['203.0.113.10', '203.0.113.20'], aaaa: ['2001:db8::10'], ttl: 60 });
  assert.deepEqual(toResolution({ name: 'v4', a: rec('203.0.113.10', 60), aaaa: { code: 'ENODATA' } }), { name: 'v4', a: ['203.0.113.10'], aaaa: [], ttl: 60 }, 'no AAAA is not an error');
  assert.deepEqual(toResolution({ name: 'n', a: { code: 'ENOTFOUND' }, aaaa: { code: 'ENOTFOUND' } }), { name: 'n', a: [], aaaa: [], ttl: 30, error: 'NXDOMAIN' });
  assert.equal(toResolution({ name: 'e', a: { code: 'ENODATA' }, aaaa: { code: 'ENODATA' } }).error, 'no A or AAAA records');
  assert.equal(toResolution({ name: 't', a: { code: 'ETIMEOUT' }, aaaa: { code: 'ENODATA' } }).error, 'timeout');
  assert.equal(toResolution({ name: 'b', a: { code: 'EBADNAME' }, aaaa: { code: 'EBADNAME' } }).error, 'invalid DNS name');
  // A answered, AAAA timed out: keep the A records and come back soon for the AAAA.
  assert.deepEqual(toResolution({ name: 'h', a: rec('203.0.113.10', 600), aaaa: { code: 'ETIMEOUT' } }), { name: 'h', a: ['203.0.113.10'], aaaa: [], ttl: 5 });
  assert.equal(toResolution({ name: 'z', a: rec('203.0.113.10', 0), aaaa: { code: 'ENODATA' } }).ttl, 5, 'TTL floor');
  assert.equal(toResolution({ name: 'c', a: rec('203.0.113.10', 10 ** 7), aaaa: { code: 'ENODATA' } }).ttl, 86_400, 'TTL ceiling');
  assert.equal(toResolution({ name: 'p', a: rec('203.0.113.10', 1), aaaa: { code: 'ENODATA' } }, { ttlFloor: 2, ttlCeiling: 10, errorTtl: 3 }).ttl, 2);
});

test('queryNames: absolute names, no query for an invalid one, results in input order', async () => {
  const asked: string[] = [];
  const fake: DnsClient = {
    async resolve4(h) {
      asked.push(`A ${h}`);
      if (h === 'slow.example.') await new Promise((r) => setTimeout(r, 20));
      return [{ address: '203.0.113.10', ttl: 60 }] satisfies RecordWithTtl[];
    },
    async resolve6(h) {
      asked.push(`AAAA ${h}`);
      throw Object.assign(new Error('queryAaaa ENODATA'), { code: 'ENODATA' });
    },
  };
  const out = await queryNames(fake, ['slow.example', 'fast.example.', 'bad name'], 2);
  assert.deepEqual(out.map((r) => r.name), ['slow.example', 'fast.example.', 'bad name']);
  assert.deepEqual(out[0], { name: 'slow.example', a: rec('203.0.113.10', 60), aaaa: { code: 'ENODATA' } });
  assert.deepEqual(out[2], { name: 'bad name', a: { code: 'EBADNAME' }, aaaa: { code: 'EBADNAME' } });
  assert.deepEqual(asked.sort(), ['A fast.example.', 'A slow.example.', 'AAAA fast.example.', 'AAAA slow.example.']);
});

test('isValidDnsName', () => {
  for (const ok of ['web.example.com', 'web.example.com.', 'a', '_srv.x-y.example', 'x'.repeat(63) + '.com']) assert.ok(isValidDnsName(ok), ok);
  for (const bad of ['', '.', '-a.com', 'a-.com', 'a..com', 'a b', 'x'.repeat(64) + '.com', `${'a.'.repeat(127)}ab`, '203.0.113.1/24'])
    assert.ok(!isValidDnsName(bad), bad);
});

test('nodeScriptArgv: .js runs as is; .ts gets the tsx loader by absolute URL', () => {
  const js = nodeScriptArgv('resolve-main', 'file:///opt/qnet/dist/src/backend/netns/resolver.js');
  assert.deepEqual(js, [process.execPath, '/opt/qnet/dist/src/backend/netns/resolve-main.js']);
  const ts = nodeScriptArgv('resolve-main', 'file:///w/src/backend/netns/resolver.ts');
  assert.equal(ts[1], '--import');
  assert.match(ts[2] ?? '', /^file:\/\/.*\/tsx\//);
  assert.equal(ts[3], '/w/src/backend/netns/resolve-main.ts');
});

test('NetnsResolver: one process per batch in the namespace; its answers go through toResolution', async () => {
  const answers: RawAnswer[] = [
    { name: 'web.example.com', a: rec('203.0.113.10', 60), aaaa: rec('2001:db8::10', 60) },
    { name: 'nope.example.com', a: { code: 'ENOTFOUND' }, aaaa: { code: 'ENOTFOUND' } },
  ];
  const runner = new ScriptedRunner([
    {
      argv: NetnsResolver.command(),
      netns: 'sys-net',
      stdin: (s) => {
        const req = JSON.parse(s) as { names: string[]; servers: string[] };
        return req.names.join() === 'web.example.com,nope.example.com' && req.servers.join() === '192.0.2.53';
      },
      result: { stdout: JSON.stringify({ answers }) },
    },
  ]);
  const r = new NetnsResolver(runner, 'sys-net', { servers: ['192.0.2.53'] });
  const out = await r.resolveAll(['web.example.com', 'nope.example.com', 'web.example.com']);
  runner.assertDone();
  assert.deepEqual(out.get('web.example.com'), { name: 'web.example.com', a: ['203.0.113.10'], aaaa: ['2001:db8::10'], ttl: 60 });
  assert.equal(out.get('nope.example.com')?.error, 'NXDOMAIN');
  assert.deepEqual(await new NetnsResolver(new ScriptedRunner([]), 'sys-net').resolveAll([]), new Map(), 'no names, no process');
});

test('NetnsResolver with a session asks it, no process; a session that fails costs the batch a process, not its answers', async () => {
  const answers: RawAnswer[] = [{ name: 'web.example.com', a: rec('203.0.113.10', 60), aaaa: { code: 'ENODATA' } }];
  const asked: unknown[] = [];
  const session = { ask: async (req: unknown) => (asked.push(req), { answers }) };
  const none = new ScriptedRunner([]);
  const out = await new NetnsResolver(none, 'sys-net', { servers: ['192.0.2.53'] }, session).resolveAll(['web.example.com']);
  none.assertDone();
  assert.deepEqual(out.get('web.example.com'), { name: 'web.example.com', a: ['203.0.113.10'], aaaa: [], ttl: 60 });
  assert.deepEqual((asked[0] as { names: string[]; servers: string[] }).names, ['web.example.com']);
  const broken = { ask: () => Promise.reject(new Error('resolver exited (SIGKILL)')) };
  const runner = new ScriptedRunner([{ argv: NetnsResolver.command(), netns: 'sys-net', result: { stdout: JSON.stringify({ answers }) } }]);
  const again = await new NetnsResolver(runner, 'sys-net', {}, broken).resolveAll(['web.example.com']);
  runner.assertDone();
  assert.deepEqual(again.get('web.example.com')?.a, ['203.0.113.10']);
  // What the session answers is checked as a child's output is: its refusal fails the batch, readably.
  const refusing = { ask: async () => ({ error: 'request: names must be a list of strings' }) };
  const refused = await new NetnsResolver(new ScriptedRunner([]), 'sys-net', {}, refusing).resolveAll(['web.example.com']);
  assert.match(refused.get('web.example.com')?.error ?? '', /resolver in sys-net failed: request: names/);
  const garbled = { ask: async () => ({ answers: [{ name: 'web.example.com' }] }) };
  assert.match((await new NetnsResolver(new ScriptedRunner([]), 'sys-net', {}, garbled).resolveAll(['web.example.com'])).get('web.example.com')?.error ?? '', /unexpected output/);
});

test('NetnsResolver never rejects: a failed or garbled child fails every name, readably', async () => {
  const cases: { result: { code?: number; stdout?: string; stderr?: string }; error: RegExp }[] = [
    { result: { code: 1, stderr: 'Cannot open network namespace "sys-net": No such file or directory\n' }, error: /resolver in sys-net failed \(exit 1\): Cannot open network namespace/ },
    { result: { stdout: 'not json' }, error: /resolver in sys-net: .*JSON/ },
    { result: { stdout: JSON.stringify({ answers: [{ name: 'a.example' }] }) }, error: /unexpected output/ },
  ];
  for (const c of cases) {
    const runner = new ScriptedRunner([{ argv: NetnsResolver.command(), netns: 'sys-net', result: c.result }]);
    const out = await new NetnsResolver(runner, 'sys-net').resolveAll(['a.example', 'b.example']);
    assert.equal(out.size, 2);
    for (const res of out.values()) {
      assert.match(res.error ?? '', c.error);
      assert.equal(res.ttl, 30);
    }
  }
});

test('SystemResolver against the world DNS server on loopback', async () => {
  const server = await DnsServer.start({ addresses: ['127.0.0.1'], port: 0 });
  server.setZone({ ...server.zone, 'zero.example.com': { a: ['203.0.113.30'], ttl: 0 } });
  try {
    const r = new SystemResolver({ servers: [`127.0.0.1:${server.port}`], attemptTimeoutMs: 500, tries: 1, timeoutMs: 3000 });
    const out = await r.resolveAll(['web.example.com', 'v4only.example.com', 'multi.example.com', 'nope.example.com', 'zero.example.com', 'bad name']);
    assert.deepEqual(out.get('web.example.com'), { name: 'web.example.com', a: ['203.0.113.10'], aaaa: ['2001:db8::10'], ttl: 60 });
    assert.deepEqual(out.get('v4only.example.com'), { name: 'v4only.example.com', a: ['203.0.113.10'], aaaa: [], ttl: 60 });
    assert.deepEqual(out.get('multi.example.com')?.a, ['203.0.113.10', '203.0.113.20']);
    assert.equal(out.get('nope.example.com')?.error, 'NXDOMAIN');
    assert.equal(out.get('zero.example.com')?.ttl, 5);
    assert.equal(out.get('bad name')?.error, 'invalid DNS name');
  } finally {
    await server.close();
  }
});

test('SystemResolver: a server that never answers is a timeout, within the bound', async () => {
  // A loopback UDP socket that swallows queries.
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
  try {
    const started = Date.now();
    const r = new SystemResolver({ servers: [`127.0.0.1:${sink.address().port}`], attemptTimeoutMs: 200, tries: 1, timeoutMs: 1000 });
    const out = await r.resolveAll(['web.example.com']);
    assert.equal(out.get('web.example.com')?.error, 'timeout');
    assert.ok(Date.now() - started < 3000, 'bounded');
  } finally {
    sink.close();
  }
});
