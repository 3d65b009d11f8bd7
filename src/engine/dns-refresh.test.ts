import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { StaticResolver } from '../compile/dns.js';
import { defaultLayout } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { DnsAnswers } from './dns-refresh.js';

const NOW = 2_000_000_000;

function modelNaming(...names: string[]): Model {
  const m = defaultLayout();
  m.qubes.get('work')!.rules = names.map((text) => ({ action: 'accept' as const, dsthost: { type: 'dsthost' as const, text } }));
  return m;
}

/** A resolver that counts what it was asked. */
function counting(table: ConstructorParameters<typeof StaticResolver>[0]) {
  const asked: string[] = [];
  const inner = new StaticResolver(table);
  return { asked, resolveAll: (names: readonly string[]) => (asked.push(...names), inner.resolveAll(names)) };
}

async function scratchFile(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-dns-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'run', 'dns.json');
}

test('answers kept in the run dir are reused by the next engine while their TTL lasts, then asked again', async (t) => {
  const file = await scratchFile(t);
  const table = { 'a.example': { a: ['192.0.2.7'], ttl: 300 }, 'b.example': { aaaa: ['2001:db8::7'], ttl: 30 } };
  const model = modelNaming('a.example', 'b.example');
  const first = counting(table);
  await new DnsAnswers(first, () => {}, file).resolve(model, NOW);
  assert.deepEqual(first.asked.sort(), ['a.example', 'b.example']);

  const second = counting({ 'a.example': { a: ['198.51.100.1'] }, 'b.example': { aaaa: ['2001:db8::8'] } });
  const dns = new DnsAnswers(second, () => {}, file);
  assert.equal((await dns.resolve(model, NOW + 10)).size, 0);
  assert.deepEqual(second.asked, []);
  assert.deepEqual(dns.resolutions.get('a.example')?.a, ['192.0.2.7']);
  assert.equal(dns.nextRefresh(NOW + 10), 20);

  // b's TTL ran out: asked again (and only b); a is still the kept answer.
  const third = counting({ 'b.example': { aaaa: ['2001:db8::9'] } });
  const later = new DnsAnswers(third, () => {}, file);
  assert.deepEqual([...(await later.resolve(model, NOW + 31))], ['b.example']);
  assert.deepEqual(third.asked, ['b.example']);
  assert.deepEqual(later.resolutions.get('b.example')?.aaaa, ['2001:db8::9']);
  assert.match(await readFile(file, 'utf8'), /2001:db8::9/);
});

test('a kept-answers file that is not ours is ignored as a whole or entry by entry, never trusted', async (t) => {
  const file = await scratchFile(t);
  const model = modelNaming('a.example', 'b.example');
  const table = { 'a.example': { a: ['192.0.2.7'] }, 'b.example': { a: ['192.0.2.8'] } };
  await new DnsAnswers(counting(table), () => {}, file).resolve(model, NOW);
  const kept = JSON.parse(await readFile(file, 'utf8')) as { answers: Record<string, unknown>[] };
  kept.answers[0]!['a'] = ['192.0.2.7; flush ruleset'];
  await writeFile(file, JSON.stringify(kept));
  const r = counting(table);
  await new DnsAnswers(r, () => {}, file).resolve(model, NOW + 1);
  assert.deepEqual(r.asked, ['a.example']);

  for (const junk of ['not json', '{"answers": 3}', '[]', '']) {
    await writeFile(file, junk);
    const again = counting(table);
    await new DnsAnswers(again, () => {}, file).resolve(model, NOW + 2);
    assert.deepEqual(again.asked.sort(), ['a.example', 'b.example'], junk);
  }
});
