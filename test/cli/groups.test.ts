// The CLI loads only the command group a word needs (main.ts): its word → group index must name
// every command each group registers, or a command would be missing when invoked by its word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bufferIo } from '../../src/cli/io.js';
import { COMMAND_GROUPS, groupsFor, registeredCommands } from '../../src/cli/main.js';

test('COMMAND_GROUPS names exactly the commands each group registers', async () => {
  const byGroup = await registeredCommands(bufferIo().io);
  const registered = Object.entries(byGroup).flatMap(([g, words]) => words.map((w) => [w, g] as const));
  assert.deepEqual(Object.fromEntries(registered), { ...COMMAND_GROUPS });
});

test('the command word is found after global options; help and unknown words load every group', () => {
  assert.deepEqual(groupsFor(['--state', '/x', '--dry-run', 'firewall', 'work', 'add', 'accept']), ['firewall']);
  assert.deepEqual(groupsFor(['-v', 'ls', '-n']), ['ls']);
  assert.ok(groupsFor(['--help']).length > 5);
  assert.ok(groupsFor(['nosuch']).length > 5);
  assert.ok(groupsFor(['diff', 'firewall', 'work', 'reset']).length > 5);
});
