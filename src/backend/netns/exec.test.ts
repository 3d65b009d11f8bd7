import test from 'node:test';
import assert from 'node:assert/strict';
import { execArgv, NodeInteractiveRunner } from './exec.js';
import { NetnsError } from './links.js';
import { toolPath } from './runner.js';

test('exec argv: ip netns exec NS [runuser -u U --] CMD…, never a shell', () => {
  assert.deepEqual(execArgv('qn-work', ['curl', '-s', 'http://192.0.2.1/']), [toolPath('ip'), 'netns', 'exec', 'qn-work', 'curl', '-s', 'http://192.0.2.1/']);
  assert.deepEqual(execArgv('qn-work', ['id'], 'user'), [toolPath('ip'), 'netns', 'exec', 'qn-work', toolPath('runuser'), '-u', 'user', '--', 'id']);
  assert.throws(() => execArgv('qn-work', []), NetnsError);
  assert.throws(() => execArgv('qn-work', ['id'], '-root'), NetnsError);
  assert.throws(() => execArgv('qn-work', ['id'], 'a b'), NetnsError);
});

test('the interactive runner returns exit codes, 127 for a missing program, 128+n for a signal', async () => {
  const r = new NodeInteractiveRunner();
  assert.equal(await r.runInteractive(['sh', '-c', 'exit 3']), 3);
  assert.equal(await r.runInteractive(['sh', '-c', 'kill -TERM $$']), 143);
  const origWrite = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    assert.equal(await r.runInteractive(['/nonexistent/qnet-test-binary']), 127);
  } finally {
    process.stderr.write = origWrite;
  }
});
