// NftSession against a real kernel, in a scratch namespace: transactions load (atomically), nft's
// refusal comes back as its error text, a dead process fails the next load, and closing the session
// ends the process that held the namespace.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelUnavailable, withScratchNs } from '../../../test/cases/compile/kernel.js';
import { nftRefusal, NftError } from './nft.js';
import { NetnsBackend } from './netns-backend.js';
import { NodeRunner, setToolPathForTest, TOOL_PATH } from './runner.js';
import { randomBytes } from 'node:crypto';
import { NftSession, SessionError } from './nft-session.js';
import { warmCommand } from './netns-executor.js';

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

test('nft session: many loads add no listeners to its streams (no leak, no MaxListenersExceededWarning)', { skip: skip ?? false }, async () => {
  await withSession(async (s) => {
    await s.load('add table ip t\n');
    const child = (s as unknown as { child: import('node:child_process').ChildProcess }).child;
    const count = () => [child.stdin, child.stdout, child.stderr].reduce((n, h) => n + (h ? h.listenerCount('connect') : 0), 0);
    const before = count();
    for (let i = 0; i < 25; i++) await s.load(`add chain ip t c${i}\n`);
    assert.equal(count(), before, 'connect listeners after 25 loads');
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
  const path = TOOL_PATH;
  try {
    const gone = new NftSession('/run/netns/qnet-no-such-namespace', dir, 'gone');
    await assert.rejects(gone.load('add table ip t\n'), /nft -i exited/);
    assert.equal(gone.started, false);
    assert.equal(gone.refused, false, 'nothing answered: not a refusal');
    // An nft that answers every line with something else: the mark never comes.
    writeFileSync(join(dir, 'nft'), '#!/bin/sh\nwhile read l; do echo "nft v0.0 (other)"; done\n', { mode: 0o755 });
    setToolPathForTest(`${dir}:${path}`);
    await withScratchNs(async (ns) => {
      const other = new NftSession(`/run/netns/${ns}`, dir, ns);
      setToolPathForTest();
      const t = Date.now();
      await assert.rejects(other.load('add table ip t\n'), /did not answer as expected|did not answer within/);
      assert.ok(Date.now() - t < 5000, 'refused within the start timeout');
      assert.equal(other.started, false);
      assert.equal(other.refused, true, 'it answered, but not with the mark');
      other.close();
    });
  } finally {
    setToolPathForTest();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * How many times nft -i (pid) asks for the dump of every set in its namespace (NFT_MSG_GETSET, type
 * 0xa0a) while `fn` runs, counted by strace: what a cold cache costs each transaction.
 */
async function setDumps(pid: number, fn: () => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-strace-'));
  const out = join(dir, 'trace');
  const tracer = spawn('strace', ['-qq', '-e', 'trace=sendto', '-X', 'verbose', '-s', '64', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  try {
    // Attached once the kernel names a tracer for nft.
    for (let i = 0; i < 200 && !/TracerPid:\s*[1-9]/.test(readFileSync(`/proc/${pid}/status`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
    await fn();
    tracer.kill('SIGINT');
    await new Promise((r) => tracer.once('exit', r));
    // Attached to a running process strace may not know the socket's protocol: then the type is a number.
    return (readFileSync(out, 'utf8').match(/NFT_MSG_GETSET\b|nlmsg_type=0xa0a\b/g) ?? []).length;
  } finally {
    tracer.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const noStrace = skip ?? (spawnSync('strace', ['-V']).status === 0 ? undefined : 'strace is not installed (quickstart test installs it)');

test('nft session: after a load it warms nft\'s cache, committing nothing, so the next load dumps no sets', { skip: noStrace ?? false }, async () => {
  await withSession(async (s, ns) => {
    await s.load('add table ip t\nadd chain ip t c\nadd set ip t s { type ipv4_addr; }\n', { warm: 'add table ip t { }' });
    for (let i = 0; i < 300 && s.warmed < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.warmed, 1, 'the warm-up ran after the load');
    const before = list(ns);
    // Warm: the cache holds the generation the last load left, so nft dumps nothing.
    assert.equal(await setDumps(s.pid!, () => s.load('add rule ip t c ip daddr @s accept\n')), 0, 'no set dump after a warm-up');
    assert.match(list(ns), /ip daddr @s accept/);
    assert.notEqual(list(ns), before);
    // Cold (that load had no warm-up and committed): the dump is back. The count can tell.
    assert.ok((await setDumps(s.pid!, () => s.load('add rule ip t c ip daddr @s drop\n'))) >= 1, 'a cold cache dumps the sets');
    // A warm-up commits nothing: the ruleset is as the load left it, and the table was not recreated.
    await s.load('add rule ip t c counter\n', { warm: 'add table ip t { }' });
    for (let i = 0; i < 300 && s.warmed < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.warmed, 2);
    assert.match(list(ns), /ip daddr @s drop\n\s*counter packets 0 bytes 0/);
  });
});

test('nft session: after element commands it warms with an element that is there, so the next element command dumps no sets', { skip: noStrace ?? false }, async () => {
  await withSession(async (s, ns) => {
    await s.load('add table ip t\nadd set ip t s { type ipv4_addr; elements = { 192.0.2.1 } }\nadd set ip t r { type ipv4_addr; flags interval; elements = { 192.0.2.0/28 } }\n');
    const warm = warmCommand({ tables: [{ family: 'ip', name: 't', chains: [], sets: [
      { kind: 'set', name: 'r', keyType: ['ipv4_addr'], interval: true, elements: [{ key: { kind: 'addr', addr: '192.0.2.0', len: 28 } }] },
      { kind: 'set', name: 's', keyType: ['ipv4_addr'], interval: false, elements: [{ key: { kind: 'addr', addr: '192.0.2.1' } }] },
    ] }] }, true);
    assert.equal(warm, 'add element ip t s { 192.0.2.1 }', 'an element of the plain set, not the interval one');
    await s.load('add element ip t s { 192.0.2.2 }\n', { warm: warm! });
    for (let i = 0; i < 300 && s.warmed < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.warmed, 1);
    assert.equal(await setDumps(s.pid!, () => s.load('add element ip t s { 192.0.2.3 }\n')), 0, 'no set dump after the element warm-up');
    assert.ok((await setDumps(s.pid!, () => s.load('add element ip t s { 192.0.2.4 }\n'))) >= 1, 'cold: dumped');
    assert.match(list(ns), /elements = \{ 192\.0\.2\.1, 192\.0\.2\.2,\s*192\.0\.2\.3, 192\.0\.2\.4 \}/);
  });
});

test('nft session: no warm-up runs in front of a waiting load, and a table name is checked', { skip: skip ?? false }, async () => {
  await withSession(async (s) => {
    await s.load('add table ip t\n');
    const a = s.load('add chain ip t a\n', { warm: 'add table ip t { }' });
    const b = s.load('add chain ip t b\n', { warm: 'add table ip t { }' });
    await Promise.all([a, b]);
    for (let i = 0; i < 300 && s.warmed < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.warmed, 1, 'only after the last of the two');
    assert.throws(() => s.load('add chain ip t c\n', { warm: 'add table ip t { }\nflush ruleset' }), /not a command to warm/);
    assert.throws(() => s.load('add chain ip t c\n', { warm: 'flush ruleset' }), /not a command to warm/);
  });
});

/**
 * A backend with sessions on, over one scratch namespace `<prefix>fw`, and a directory for fake
 * programs. `withFake(name, script, fn)` puts one on the tools' PATH only while fn starts the session (spawn
 * reads PATH then), so nft -f afterwards is the real one.
 */
async function withBackend(
  fn: (be: NetnsBackend, ns: string, withFake: (prog: string, script: string, start: () => Promise<void>) => Promise<void>, prefix: string) => Promise<void>,
  opts: { spareSessions?: number } = {},
): Promise<void> {
  const prefix = `qnst-${randomBytes(4).toString('hex')}-`;
  const ns = `${prefix}fw`;
  const dir = mkdtempSync(join(tmpdir(), 'qnet-nft-test-'));
  const path = TOOL_PATH;
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
  const be = new NetnsBackend({ runner: new NodeRunner(), prefix, sessions: true, ...opts });
  const withFake = async (prog: string, script: string, start: () => Promise<void>) => {
    writeFileSync(join(dir, prog), script, { mode: 0o755 });
    setToolPathForTest(`${dir}:${path}`);
    let run: Promise<void>;
    try {
      run = start();
    } finally {
      setToolPathForTest();
    }
    await run;
  };
  try {
    await fn(be, ns, withFake, prefix);
  } finally {
    setToolPathForTest();
    be.close();
    spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['netns', 'del', `${prefix}app`]);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('loadRules: a session that cannot start falls back to nft -f, and sessions stay on', { skip: skip ?? false }, async () => {
  await withBackend(async (be, ns, withFake) => {
    // nsenter runs `sh -c 'exec nft -i'`: an sh that exits at once, silently, is a start that failed.
    await withFake('sh', '#!/bin/sh\nexit 1\n', () => be.loadRules('fw', 'add table ip t\n', { keep: true }));
    assert.match(list(ns), /table ip t/, 'the rules loaded with nft -f');
    assert.deepEqual(be.sessionNodes, [], 'the broken session is gone');
    await be.loadRules('fw', 'add table ip u\n', { keep: true });
    assert.match(list(ns), /table ip u/);
    assert.deepEqual(be.sessionNodes, ['fw'], 'the next load opens a session again');
  });
});

test('loadRules: an nft that answers otherwise falls back to nft -f, and sessions end for good', { skip: skip ?? false }, async () => {
  await withBackend(async (be, ns, withFake) => {
    // Something else, then the mark: answered, but not as a usable nft -i would.
    const other = '#!/bin/sh\nwhile read l; do echo "nft v0.0 (other)"; echo "meta expression, datatype integer (integer), 32 bits"; done\n';
    await withFake('nft', other, () => be.loadRules('fw', 'add table ip t\n', { keep: true }));
    assert.match(list(ns), /table ip t/, 'the rules loaded with nft -f');
    await be.loadRules('fw', 'add table ip u\n', { keep: true });
    assert.match(list(ns), /table ip u/);
    assert.deepEqual(be.sessionNodes, [], 'no session is opened again');
  });
});

test("loadRules keep 'next': this load by nft -f, then shortly after a session made ready (warm) for the next; the least recently used such closes first", { skip: skip ?? false }, async () => {
  await withBackend(
    async (be, ns, _fake, prefix) => {
      const add = spawnSync('ip', ['netns', 'add', `${prefix}app`], { encoding: 'utf8' });
      assert.equal(add.status, 0, add.stderr);
      const nodes = async (want: string[]) => {
        for (let i = 0; i < 200 && JSON.stringify(be.sessionNodes.sort()) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 10));
        return be.sessionNodes.sort();
      };
      await be.loadRules('fw', 'add table ip t\n', { keep: 'next', warm: 'add table ip t { }' });
      assert.match(list(ns), /table ip t/, 'loaded');
      assert.deepEqual(be.sessionNodes, [], 'by nft -f: no session started in front of it or right after (a fork blocks the event loop)');
      assert.deepEqual(await nodes(['fw']), ['fw'], 'a session for the next load, shortly after');
      const s = (be as unknown as { sessions: Map<string, { session: NftSession }> }).sessions.get('fw')!.session;
      for (let i = 0; i < 300 && s.warmed < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.warmed, 1, 'and warmed');
      await be.loadRules('fw', 'add chain ip t c\n', { keep: 'next' });
      assert.match(list(ns), /chain c/, 'the next load went through it');
      assert.equal((be as unknown as { sessions: Map<string, { session: NftSession }> }).sessions.get('fw')!.session, s, 'the same session');
      await be.loadRules('app', 'add table ip u\n', { keep: 'next' });
      assert.deepEqual(await nodes(['app']), ['app'], 'one spare session allowed: fw, used least recently, was closed');
      await be.loadRules('fw', 'add table ip v\n', { keep: true });
      assert.deepEqual(be.sessionNodes.sort(), ['app', 'fw'], 'a kept session (a netvm\'s) is not a spare one');
    },
    { spareSessions: 1 },
  );
});

test('warmCommand: the firewall table first, an element of a plain set after element commands, never a table with a comment', () => {
  const set = { kind: 'set' as const, name: 's', keyType: ['ipv4_addr' as const], interval: false, elements: [{ key: { kind: 'addr' as const, addr: '192.0.2.1' } }] };
  const t = (name: string, comment?: string) => ({ family: 'ip' as const, name, chains: [], sets: [set], ...(comment !== undefined ? { comment } : {}) });
  assert.equal(warmCommand({ tables: [t('qubes'), t('qubes-firewall')] }, false), 'add table ip qubes-firewall { }');
  assert.equal(warmCommand({ tables: [t('qubes'), t('qubes-firewall')] }, true), 'add element ip qubes s { 192.0.2.1 }');
  assert.equal(warmCommand({ tables: [t('qubes-firewall', 'mine'), t('qubes')] }, false), 'add table ip qubes { }');
  assert.equal(warmCommand({ tables: [t('qubes', 'mine')] }, false), undefined);
  assert.equal(warmCommand({ tables: [] }, true), undefined);
});
