import test from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeRunner, TOOL_PATH, toolPath } from './runner.js';
import { NodeInteractiveRunner } from './exec.js';

/** A hostile directory first in $PATH with an `ip` that leaves a mark: it must never run. */
async function withHostilePath(fn: (mark: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-path-'));
  const mark = join(dir, 'ran');
  for (const tool of ['ip', 'nft', 'sh', 'runuser'])
    await writeFile(join(dir, tool), `#!/bin/sh\ntouch ${mark}\n`, { mode: 0o755 });
  await chmod(dir, 0o755);
  const orig = process.env.PATH;
  process.env.PATH = `${dir}:${orig ?? ''}`;
  try {
    await fn(mark);
  } finally {
    process.env.PATH = orig;
    await rm(dir, { recursive: true, force: true });
  }
}

test('tools run with the fixed PATH, never the caller’s', async () => {
  await withHostilePath(async (mark) => {
    const r = await new NodeRunner().run(['sh', '-c', 'echo "$PATH"']);
    assert.equal(r.stdout.trim(), TOOL_PATH);
    assert.equal(existsSync(mark), false, 'the sh in the caller’s PATH ran');
    // ip may be missing on a bare machine: then the spawn fails (127), still without running the fake.
    await new NodeRunner().run(['ip', '-V']);
    assert.equal(existsSync(mark), false, 'the ip in the caller’s PATH ran');
  });
});

test('toolPath: absolute within TOOL_PATH; an unknown tool fails rather than falling back to $PATH', async () => {
  const sh = toolPath('sh');
  assert.ok(TOOL_PATH.split(':').some((d) => sh === `${d}/sh`), sh);
  assert.equal(toolPath('qnet-no-such-tool'), '/usr/sbin/qnet-no-such-tool');
  assert.equal(toolPath('/bin/true'), '/bin/true');
  await withHostilePath(async (mark) => {
    const orig = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      // The interactive runner keeps the caller's environment for the user's program, so the tool
      // itself must be named absolutely: this is what execArgv does.
      assert.equal(await new NodeInteractiveRunner().runInteractive([toolPath('sh'), '-c', 'exit 0']), 0);
    } finally {
      process.stderr.write = orig;
    }
    assert.equal(existsSync(mark), false);
  });
});
