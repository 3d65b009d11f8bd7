// analyseWith (the daemon's memo of its last analysis) must give what a full compile gives: after
// rule edits of some qubes (patched in), after a change of anything else (compiled again), and the
// same model (reused). Compared as the engine compares rulesets (no nft operation between them),
// with the same diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffTransaction } from '../ir/diff.js';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { parseApiRule } from '../model/rule-parse.js';
import type { Rule } from '../model/rule.js';
import { cloneModel } from '../store/memory-store.js';
import { analyse, analyseWith } from './analysis.js';

const NOW = 1_800_000_000;
const rule = (s: string): Rule => {
  const r = parseApiRule(s);
  assert.ok(r.ok, s);
  return r.value;
};
const resolutions = new Map([['web.example.com', { name: 'web.example.com', a: ['192.0.2.80'], aaaa: [], ttl: 300 }]]);

function same(a: ReturnType<typeof analyse>, b: ReturnType<typeof analyse>): void {
  assert.deepEqual([...a.rulesets.keys()].sort(), [...b.rulesets.keys()].sort());
  for (const [n, rs] of a.rulesets) assert.equal(diffTransaction(rs, b.rulesets.get(n)!).size, 0, `node ${n} differs`);
  const key = (ds: typeof a.diagnostics) => ds.map((d) => JSON.stringify([d.code, d.qube, d.message])).sort();
  assert.deepEqual(key(a.diagnostics), key(b.diagnostics));
}

test('analyseWith equals a full compile: rule edits patched in, other changes compiled again, the same model reused', () => {
  const m: Model = defaultLayout();
  m.qubes.set('dev', newQube(20, 'dev', 'purple', { rules: [rule('action=accept dsthost=web.example.com proto=tcp dstports=443-443'), rule('action=drop')] }));
  const first = analyseWith(undefined, m, resolutions, NOW);
  same(first.analysis, analyse(m, resolutions, NOW));
  assert.equal(analyseWith(first, cloneModel(m), resolutions, NOW).analysis.rulesets, first.analysis.rulesets, 'the same model: reused');

  const edits: ((x: Model) => void)[] = [
    (x) => (x.qubes.get('work')!.rules = [rule('action=drop proto=tcp dstports=22-22'), rule('action=accept')]),
    (x) => (x.qubes.get('dev')!.rules = null),
    (x) => (x.qubes.get('personal')!.rules = []),
    (x) => (x.qubes.get('dev')!.rules = [rule('action=accept'), rule('action=drop')]), // a rule that can never match: a warning
    (x) => (x.qubes.get('sys-firewall')!.rules = [rule('action=drop proto=icmp'), rule('action=accept')]), // a netvm is a client of sys-net
    (x) => x.qubes.set('late', newQube(30, 'late', 'green')), // not a rule edit: compiled again
    (x) => (x.qubes.get('late')!.rules = [rule('action=drop')]), // a client new since the memo
  ];
  let memo = first;
  let cur = m;
  for (const edit of edits) {
    cur = cloneModel(cur);
    edit(cur);
    const prev = memo.analysis;
    memo = analyseWith(memo, cur, resolutions, NOW);
    same(memo.analysis, analyse(cur, resolutions, NOW));
    // A rule edit of sys-firewall's clients patches sys-firewall alone: sys-net's ruleset is the same object.
    if (edit === edits[0]) assert.equal(memo.analysis.rulesets.get('sys-net'), prev.rulesets.get('sys-net'), 'patched, not compiled again');
  }
});
