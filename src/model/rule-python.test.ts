import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSignedSeconds, pyInt, pySplitLines, pyStrip } from './rule-python.js';

test('pyInt reads what Python int(str) reads', () => {
  const yes: [string, number][] = [['80', 80], ['+80', 80], [' 80\t', 80], ['0080', 80], ['1_000', 1000], ['-5', -5], ['\x1c7\x1f', 7], ['0', 0]];
  for (const [s, n] of yes) assert.equal(pyInt(s), n, JSON.stringify(s));
  for (const s of ['', ' ', '+', '8 0', '1__0', '_1', '1_', '0x10', '1e3', '1.0', '++1', '٨', '\ufeff1', '9999999999999999']) {
    assert.equal(pyInt(s), undefined, JSON.stringify(s));
  }
});

test('pyStrip and pySplitLines follow str.strip / str.splitlines', () => {
  assert.equal(pyStrip(' \t\x0b a b \r\n\x1c'), 'a b');
  assert.deepEqual(pySplitLines(''), []);
  assert.deepEqual(pySplitLines('a\n'), ['a']);
  assert.deepEqual(pySplitLines('a\n\nb'), ['a', '', 'b']);
  assert.deepEqual(pySplitLines('a\r\nb\rc\x0bd\u2028e'), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(pySplitLines('\n'), ['']);
});

test("formatSignedSeconds is Python's '{:+.0f}s'", () => {
  const cases: [number, string][] = [[3600, '+3600s'], [-120, '-120s'], [0, '+0s'], [-0, '-0s'], [0.5, '+0s'], [1.5, '+2s'], [2.5, '+2s'], [-0.4, '-0s'], [-2.5, '-2s'], [-3.5, '-4s'], [3599.7, '+3600s']];
  for (const [x, s] of cases) assert.equal(formatSignedSeconds(x), s, String(x));
});
