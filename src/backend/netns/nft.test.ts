import test from 'node:test';
import assert from 'node:assert/strict';
import { checkRuleset, listCounters, loadRuleset, NftError, parseChainSizes, parseCounters, parseNftErrors } from './nft.js';
import { NetnsError } from './links.js';
import { ScriptedRunner } from './runner.js';

// Captured from nft 1.0.6 (`nft -f -` with a typo on line 4).
const SYNTAX = `/dev/stdin:4:27-31: Error: syntax error, unexpected string
    ip saddr 10.137.0.3 bogus
                        ^^^^^
`;
const NOT_FOUND = `/dev/stdin:1:1-23: Error: Could not process rule: No such file or directory
delete table inet nosuch
^^^^^^^^^^^^^^^^^^^^^^^^
`;

test('nft errors are parsed with line, columns and the offending text', () => {
  assert.deepEqual(parseNftErrors(SYNTAX), [
    { line: 4, col: [27, 31], message: 'syntax error, unexpected string', text: '    ip saddr 10.137.0.3 bogus' },
  ]);
  assert.deepEqual(parseNftErrors('netlink: Error: Could not process rule: Operation not permitted\n'), [
    { line: 0, message: 'Could not process rule: Operation not permitted' },
  ]);
});

test('load is one `nft -f -` in the namespace; failures are classified once', async () => {
  const r = new ScriptedRunner([
    { argv: ['nft', '-f', '-'], netns: 'qn-fw', stdin: 'table inet t {}\n' },
    { argv: ['nft', '-f', '-'], netns: 'qn-fw', result: { code: 1, stderr: SYNTAX } },
    { argv: ['nft', '-f', '-'], netns: 'qn-fw', result: { code: 1, stderr: NOT_FOUND } },
    { argv: ['nft', '-f', '-'], netns: 'qn-gone', result: { code: 1, stderr: 'Cannot open network namespace "qn-gone": No such file or directory\n' } },
  ]);
  await loadRuleset(r, 'qn-fw', 'table inet t {}\n', 'fw');
  await assert.rejects(loadRuleset(r, 'qn-fw', 'x', 'fw'), (e: unknown) => {
    assert.ok(e instanceof NftError);
    assert.equal(e.code, 'QNET5210');
    assert.equal(e.diagnostic.qube, 'fw');
    assert.match(e.message, /line 4: syntax error.*bogus/);
    return true;
  });
  await assert.rejects(loadRuleset(r, 'qn-fw', 'x'), (e: unknown) => e instanceof NftError && e.code === 'QNET5211');
  await assert.rejects(loadRuleset(r, 'qn-gone', 'x', 'gone'), (e: unknown) => e instanceof NetnsError && !(e instanceof NftError) && e.code === 'QNET5204');
  r.assertDone();
});

test('check is `nft -c -f -`, in a namespace only when asked', async () => {
  const r = new ScriptedRunner([
    { argv: ['nft', '-c', '-f', '-'], stdin: 'a' },
    { argv: ['nft', '-c', '-f', '-'], netns: 'qn-fw', stdin: 'b' },
  ]);
  await checkRuleset(r, 'a');
  await checkRuleset(r, 'b', 'qn-fw');
  r.assertDone();
});

// Trimmed from `nft -j list ruleset` (nft 1.0.6).
const JSON_RULESET = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'qubes-firewall', handle: 1 } },
    { chain: { family: 'inet', table: 'qubes-firewall', name: 'qbs-work', handle: 2 } },
    {
      rule: {
        family: 'inet', table: 'qubes-firewall', chain: 'qbs-work', handle: 5, comment: 'work rule 3',
        expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 443 } }, { counter: { packets: 12, bytes: 720 } }, { accept: null }],
      },
    },
    { rule: { family: 'ip', table: 'qubes', chain: 'forward', handle: 7, expr: [{ counter: { packets: 0, bytes: 0 } }, { drop: null }] } },
    { rule: { family: 'ip', table: 'qubes', chain: 'forward', handle: 8, expr: [{ accept: null }] } },
    { rule: { family: 'ip', table: 'qubes', chain: 'forward', handle: 9, expr: [{ counter: 'named' }, { accept: null }] } },
  ],
});

test('counters: every rule with an inline counter, with its comment', async () => {
  assert.deepEqual(parseCounters(JSON_RULESET), [
    { family: 'inet', table: 'qubes-firewall', chain: 'qbs-work', handle: 5, packets: 12, bytes: 720, comment: 'work rule 3' },
    { family: 'ip', table: 'qubes', chain: 'forward', handle: 7, packets: 0, bytes: 0 },
  ]);
  const r = new ScriptedRunner([{ argv: ['nft', '-j', 'list', 'ruleset'], netns: 'qn-fw', result: { stdout: JSON_RULESET } }]);
  assert.equal((await listCounters(r, 'qn-fw')).length, 2);
});

test('parseChainSizes counts rules per chain, empty chains included', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'ip', name: 'qubes', handle: 1 } },
      { chain: { family: 'ip', table: 'qubes', name: 'custom-forward', handle: 2 } },
      { chain: { family: 'ip', table: 'qubes', name: 'forward', handle: 3, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
      { rule: { family: 'ip', table: 'qubes', chain: 'forward', handle: 4, expr: [{ jump: { target: 'custom-forward' } }] } },
      { rule: { family: 'ip', table: 'qubes', chain: 'forward', handle: 5, expr: [{ accept: null }] } },
      { set: { family: 'ip', table: 'qubes', name: 's', type: 'ipv4_addr', handle: 6 } },
    ],
  });
  assert.deepEqual([...parseChainSizes(json)], [
    ['ip qubes custom-forward', 0],
    ['ip qubes forward', 2],
  ]);
});
