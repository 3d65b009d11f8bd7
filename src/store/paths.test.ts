import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firewallFilePath, lockFilePath, qubeDirPath, qubesFilePath, resolveStateDir, resolveStateDirFor, ROOT_STATE_DIR } from './paths.js';

test('--state wins over QNET_STATE and the defaults, and is made absolute', () => {
  assert.equal(resolveStateDirFor('/srv/q', { QNET_STATE: '/env/q' }, 0), '/srv/q');
  assert.equal(resolveStateDirFor('rel/q', {}, 1000), `${process.cwd()}/rel/q`);
});

test('QNET_STATE comes next; an empty value counts as unset', () => {
  assert.equal(resolveStateDirFor(undefined, { QNET_STATE: '/env/q' }, 0), '/env/q');
  assert.equal(resolveStateDirFor('', { QNET_STATE: '' }, 0), ROOT_STATE_DIR);
});

test('root uses /var/lib/qnet; others XDG_STATE_HOME, then ~/.local/state', () => {
  assert.equal(resolveStateDirFor(undefined, { XDG_STATE_HOME: '/x' }, 0), '/var/lib/qnet');
  assert.equal(resolveStateDirFor(undefined, { XDG_STATE_HOME: '/x', HOME: '/home/u' }, 1000), '/x/qnet');
  assert.equal(resolveStateDirFor(undefined, { HOME: '/home/u' }, 1000), '/home/u/.local/state/qnet');
  // The XDG spec says a relative path there is invalid and must be ignored.
  assert.equal(resolveStateDirFor(undefined, { XDG_STATE_HOME: 'x', HOME: '/home/u' }, 1000), '/home/u/.local/state/qnet');
});

test('resolveStateDir uses the real uid', () => {
  const expected = process.getuid?.() === 0 ? ROOT_STATE_DIR : '/x/qnet';
  assert.equal(resolveStateDir(undefined, { XDG_STATE_HOME: '/x' }), expected);
  assert.equal(resolveStateDir('/f', { XDG_STATE_HOME: '/x' }), '/f');
});

test('layout: qubes.json, .lock, appvms/ for every class but TemplateVM', () => {
  assert.equal(qubesFilePath('/s'), '/s/qubes.json');
  assert.equal(lockFilePath('/s'), '/s/.lock');
  assert.equal(firewallFilePath('/s', 'work', 'AppVM'), '/s/appvms/work/firewall.xml');
  assert.equal(firewallFilePath('/s', 'disp12', 'DispVM'), '/s/appvms/disp12/firewall.xml');
  assert.equal(firewallFilePath('/s', 'std', 'StandaloneVM'), '/s/appvms/std/firewall.xml');
  assert.equal(firewallFilePath('/s', 'fedora-40', 'TemplateVM'), '/s/vm-templates/fedora-40/firewall.xml');
  assert.equal(qubeDirPath('/s', 'fedora-40', 'TemplateVM'), '/s/vm-templates/fedora-40');
});
