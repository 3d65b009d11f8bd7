// world-services in-process on loopback (127.0.0.1, free ports): the pages, /ip, and the zone reload.
// The real thing, inside a namespace and spawned as a process, is tested in world.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientAddress, startWorldServices } from './world-services.js';
import { SystemResolver } from './resolver.js';

test('clientAddress: v4-mapped addresses are shown as IPv4', () => {
  assert.equal(clientAddress('::ffff:198.51.100.2'), '198.51.100.2');
  assert.equal(clientAddress('2001:db8:ffff::2'), '2001:db8:ffff::2');
  assert.equal(clientAddress('::ffff:1'), '::ffff:1');
  assert.equal(clientAddress(undefined), '');
});

test('world services on loopback: page, /ip, 404, DNS and reload', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-ws-'));
  const zoneFile = join(dir, 'zone.json');
  const svc = await startWorldServices({
    http: [{ name: 'web.example.com', addresses: ['127.0.0.1'], ports: [0] }],
    dns: { addresses: ['127.0.0.1'], port: 0, zoneFile },
  });
  try {
    const port = (svc.http[0]!.address() as AddressInfo).port;
    const get = async (path: string): Promise<[number, string]> => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
      return [r.status, await r.text()];
    };
    assert.deepEqual(await get('/'), [200, 'qnet world: web.example.com (127.0.0.1)\n']);
    assert.deepEqual(await get('/ip'), [200, '127.0.0.1\n']);
    assert.equal((await get('/nothing'))[0], 404);

    const resolver = new SystemResolver({ servers: [`127.0.0.1:${svc.dns!.port}`], attemptTimeoutMs: 500, tries: 1, timeoutMs: 3000 });
    assert.deepEqual((await resolver.resolveAll(['web.example.com'])).get('web.example.com')?.a, ['203.0.113.10'], 'no zone file yet: the default zone');
    await writeFile(zoneFile, JSON.stringify({ 'web.example.com': { a: ['203.0.113.20'], ttl: 9 } }));
    await svc.reload();
    const after = (await resolver.resolveAll(['web.example.com'])).get('web.example.com');
    assert.deepEqual([after?.a, after?.ttl], [['203.0.113.20'], 9]);
  } finally {
    await svc.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a port that cannot be bound fails the start and closes what was opened', async () => {
  const first = await startWorldServices({ http: [{ name: 'a', addresses: ['127.0.0.1'], ports: [0] }] });
  try {
    const taken = (first.http[0]!.address() as AddressInfo).port;
    await assert.rejects(
      startWorldServices({ http: [{ name: 'b', addresses: ['127.0.0.1'], ports: [0, taken] }] }),
      /EADDRINUSE/,
    );
  } finally {
    await first.close();
  }
});
