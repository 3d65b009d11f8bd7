// The ops behind the firewall editor, on a state directory (no daemon, no kernel): firewall.view's
// rows, shadows, names and implicit rows, its limit and version; firewall.move and firewall.replace;
// the `expect` guard of every edit by number (QNET1905), and QNET1906 when an edit makes a rule
// that never matches.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OfflineHost } from '../../src/ops/offline-host.js';
import { invoke } from '../../src/ops/registry.js';
import { QnetError } from '../../src/model/result.js';
import * as v from 'valibot';
import { FirewallViewSchema, type FirewallView } from '../../src/ops/views.js';

async function withHost(fn: (call: (op: string, input: object) => Promise<{ value: unknown; warnings: { code: string; message: string }[] }>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-fw-ops-'));
  try {
    const host = new OfflineHost({ stateDir: dir, env: {}, now: () => 1_800_000_000 });
    const call = (op: string, input: object) => invoke(host, op, input) as never;
    await call('qubes.init', {});
    await fn(call);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const refused = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof QnetError, String(e));
  assert.equal(e.diag.code, code, e.diag.message);
  if (re) assert.match(e.diag.message, re);
  return true;
};

const RULES = ['action=accept specialtarget=dns', 'action=accept dsthost=web.example.com proto=tcp dstports=80-80', 'action=accept proto=tcp', 'action=drop expire=1900000000 proto=tcp dstports=443-443', 'action=drop dsthost=nosuch.example'];

test('firewall.view: rows with their shadow, names with their answers, implicit rows, limit and version', async () => {
  await withHost(async (call) => {
    await call('firewall.set', { qube: 'work', text: RULES.join('\n') });
    const cold = (await call('firewall.view', { qube: 'work', limit: 2 })).value as FirewallView;
    assert.equal(cold.version, '', 'a first screen does not hash the whole list');
    const view = (await call('firewall.view', { qube: 'work' })).value as FirewallView;
    assert.deepEqual(v.parse(FirewallViewSchema, view), view, 'the value is what the op says it gives');
    assert.deepEqual(v.parse(FirewallViewSchema, cold), cold);
    assert.deepEqual(cold.rules, view.rules.slice(0, 2));
    assert.equal(view.netvm, 'sys-firewall');
    assert.deepEqual(view.rules.map((r) => r.api), RULES);
    assert.deepEqual(view.rules.map((r) => r.shadowedBy), [undefined, undefined, undefined, 2, undefined]);
    assert.equal(view.shadowed, 1);
    assert.deepEqual(view.rules.map((r) => r.dsttype), [undefined, 'dsthost', undefined, undefined, 'dsthost']);
    const web = view.names.find((n) => n.name === 'web.example.com')!;
    assert.deepEqual(web.a, ['203.0.113.10']);
    assert.equal(typeof web.ttl, 'number');
    assert.equal(view.names.find((n) => n.name === 'nosuch.example')!.error, 'NXDOMAIN');
    assert.deepEqual(view.implicit.map((x) => `${x.place}:${x.part}`), ['before:antispoof', 'before:dns-dnat', 'before:icmp-from-clients', 'before:refuse-clients', 'before:replies', 'after:policy', 'after:no-new-flows-to-clients']);
    const first = (await call('firewall.view', { qube: 'work', limit: 2 })).value as FirewallView;
    assert.equal(first.count, 5);
    assert.deepEqual(first.rules, view.rules.slice(0, 2));
    assert.equal(first.version, view.version, 'after a whole view, its rows and version are reused');
    await call('firewall.move', { qube: 'work', from: 3, to: 2 });
    const after = (await call('firewall.view', { qube: 'work' })).value as FirewallView;
    assert.notEqual(after.version, view.version, 'the version follows the list');
    assert.equal(after.shadowed, 0);
    // A change elsewhere keeps the view (the same rules).
    await call('firewall.add', { qube: 'personal', rule: 'action=drop' });
    assert.deepEqual((await call('firewall.view', { qube: 'work' })).value, after);
  });
});

test('firewall.move and firewall.replace, and the expect guard of every edit by number', async () => {
  await withHost(async (call) => {
    await call('firewall.set', { qube: 'work', text: 'action=accept proto=icmp\naction=accept proto=tcp\naction=drop\n' });
    const lines = async () => (await call('firewall.get', { qube: 'work' })).value as string[];
    await call('firewall.move', { qube: 'work', from: 2, to: 0, expect: 'action=drop' });
    assert.deepEqual(await lines(), ['action=drop', 'action=accept proto=icmp', 'action=accept proto=tcp']);
    await call('firewall.move', { qube: 'work', from: 0, to: 2 });
    assert.deepEqual(await lines(), ['action=accept proto=icmp', 'action=accept proto=tcp', 'action=drop']);
    await assert.rejects(call('firewall.move', { qube: 'work', from: 0, to: 3 }), refused('QNET1902'));
    // Stale: rule 1 is not what the editor read.
    const stale = /rule 1 is now 'action=accept proto=tcp', not 'action=accept proto=udp'/;
    await assert.rejects(call('firewall.move', { qube: 'work', from: 1, to: 0, expect: 'action=accept proto=udp' }), refused('QNET1905', stale));
    await assert.rejects(call('firewall.del', { qube: 'work', ruleNo: 1, expect: 'action=accept proto=udp' }), refused('QNET1905', stale));
    await assert.rejects(call('firewall.replace', { qube: 'work', ruleNo: 1, rule: 'action=drop', expect: 'action=accept proto=udp' }), refused('QNET1905', stale));
    await assert.rejects(call('firewall.add', { qube: 'work', rule: 'action=drop', before: 1, expect: 'action=accept proto=udp' }), refused('QNET1905', stale));
    await assert.rejects(call('firewall.del', { qube: 'work', ruleNo: 7, expect: 'action=drop' }), refused('QNET1905', /there is no rule 7 any more/));
    // The guard compares rules, not spellings.
    await call('firewall.replace', { qube: 'work', ruleNo: 1, rule: 'action=accept proto=udp dstports=53', expect: 'proto=tcp action=accept' });
    assert.deepEqual(await lines(), ['action=accept proto=icmp', 'action=accept proto=udp dstports=53-53', 'action=drop']);
    await assert.rejects(call('firewall.replace', { qube: 'work', ruleNo: 1, rule: 'action=maybe' }), refused('QNET1005'));
    // An edit that makes a rule never match says so.
    const w = await call('firewall.add', { qube: 'work', rule: 'action=drop proto=icmp icmptype=8', before: 1 });
    assert.deepEqual(w.warnings.map((x) => [x.code, x.message]), [['QNET1906', 'rule 1 never matches: rule 0 covers it']]);
    const mv = await call('firewall.move', { qube: 'work', from: 0, to: 3 });
    assert.deepEqual(mv.warnings.map((x) => [x.code, x.message]), [['QNET1906', 'rule 3 never matches: rule 2 covers it']]);
    assert.deepEqual(await lines(), ['action=drop proto=icmp icmptype=8', 'action=accept proto=udp dstports=53-53', 'action=drop', 'action=accept proto=icmp']);
  });
});
