// NftSession against a real kernel, in a scratch namespace: transactions load (atomically), nft's
// refusal comes back as its error text, a dead process fails the next load, and closing the session
// ends the process that held the namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelUnavailable, withScratchNs } from '../../../test/cases/compile/kernel.js';
import { nftRefusal, NftError } from './nft.js';
import { NftSession, SessionError } from './nft-session.js';

const skip = kernelUnavailable();
const list = (ns: string) => spawnSync('nsenter', [`--net=/run/netns/${ns}`, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout;
const alive = (pid: number | undefined) => pid !== undefined && spawnSync('kill', ['-0', String(pid)]).status === 0;

async function withSession(fn: (s: NftSession, ns: string, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-nft-test-'));
  try {
    await withScratchNs(async (ns) => {
      const s = new NftSession(`/run/netns/${ns}`, dir, ns);
      try {
        await fn(s, ns, dir);
      } finally {
        s.close();
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('nft session: transactions load one after another; a refused one changes nothing and says why', { skip: skip ?? false }, async () => {
  await withSession(async (s, ns, dir) => {
    await s.load('add table ip t\nadd chain ip t c\nadd rule ip t c ip daddr 192.0.2.1 accept\n');
    await s.load('insert rule ip t c ip daddr 192.0.2.2 drop\n');
    assert.match(list(ns), /ip daddr 192\.0\.2\.2 drop\n\s*ip daddr 192\.0\.2\.1 accept/);
    // Two good commands and a bad one: nothing of it is applied.
    const bad = 'add rule ip t c ip daddr 192.0.2.3 accept\nadd rule ip t c ip daddr 192.0.2.4 acceptt\n';
    const e = await s.load(bad).then(
      () => assert.fail('refused'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof SessionError);
    assert.match(e.output, /:2:\d+-\d+: Error: syntax error/);
    const err = nftRefusal(e.output, ns);
    assert.ok(err instanceof NftError);
    assert.equal(err.errors[0]?.line, 2, 'the line in the transaction, as nft -f reports it');
    assert.doesNotMatch(list(ns), /192\.0\.2\.3/, 'atomic: the good line before the bad one is not applied');
    await s.load('add rule ip t c ip daddr 192.0.2.5 accept\n');
    assert.match(list(ns), /192\.0\.2\.5/, 'the session carries on after a refusal');
    assert.deepEqual(readdirSync(dir), [], 'no transaction file is left');
  });
});

test('nft session: a dead process fails the next load; close() ends the process', { skip: skip ?? false }, async () => {
  await withSession(async (s) => {
    await s.load('add table ip t\n');
    const pid = s.pid;
    assert.ok(alive(pid));
    process.kill(pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.alive, false);
    await assert.rejects(s.load('add table ip u\n'), /nft -i exited/);
  });
  await withSession(async (s) => {
    await s.load('add table ip t\n');
    const pid = s.pid;
    s.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alive(pid), false, 'no nft -i is left in the namespace');
  });
});

test('nft session: one that cannot start, or an nft that answers otherwise, is refused before any load', { skip: skip ?? false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-nft-test-'));
  const path = process.env['PATH'];
  try {
    const gone = new NftSession('/run/netns/qnet-no-such-namespace', dir, 'gone');
    await assert.rejects(gone.load('add table ip t\n'), /nft -i exited/);
    assert.equal(gone.started, false);
    // An nft that answers every line with something else: the mark never comes.
    writeFileSync(join(dir, 'nft'), '#!/bin/sh\nwhile read l; do echo "nft v0.0 (other)"; done\n', { mode: 0o755 });
    process.env['PATH'] = `${dir}:${path}`;
    await withScratchNs(async (ns) => {
      const other = new NftSession(`/run/netns/${ns}`, dir, ns);
      process.env['PATH'] = path;
      const t = Date.now();
      await assert.rejects(other.load('add table ip t\n'), /did not answer as expected|did not answer within/);
      assert.ok(Date.now() - t < 5000, 'refused within the start timeout');
      assert.equal(other.started, false);
      other.close();
    });
  } finally {
    process.env['PATH'] = path;
    rmSync(dir, { recursive: true, force: true });
  }
});
