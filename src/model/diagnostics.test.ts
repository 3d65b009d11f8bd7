// The catalogue is the one place codes live: every code qnet can emit is in it, every entry is used,
// no two codes share a summary, and retired codes stay retired.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { diag, DIAGNOSTICS, isCode, listDiagnostics, RETIRED, warning } from './diagnostics.js';
import { RuleCode } from './rule-codes.js';

const HERE = fileURLToPath(import.meta.url);
/** dist/src: what actually runs, tests included (a test asserting a code nobody emits is wrong too). */
const SRC = dirname(dirname(HERE));

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
  );
}

/** Code literals ('QNET1234', "…", `…`) and mentions (comments, regexes) per file, this file excluded. */
function scan(): { literals: Map<string, string[]>; mentions: Map<string, string[]> } {
  const literals = new Map<string, string[]>();
  const mentions = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, code: string, file: string) => m.set(code, [...(m.get(code) ?? []), file]);
  const files = jsFiles(SRC).filter((f) => f !== HERE);
  assert.ok(files.length > 50, `found only ${files.length} compiled files under ${SRC}`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(['"`])(QNET\d{4})\1/g)) add(literals, m[2]!, f);
    for (const m of text.matchAll(/\bQNET\d{4}\b/g)) add(mentions, m[0], f);
  }
  return { literals, mentions };
}

test('every code literal in the compiled source is in the catalogue', () => {
  const { literals } = scan();
  assert.ok(literals.size > 50, 'the scan finds the codes (it is not vacuous)');
  const unknown = [...literals].filter(([c]) => !isCode(c)).map(([c, fs]) => `${c} in ${fs.join(', ')}`);
  assert.deepEqual(unknown, []);
});

test('every mention of a code (comments, regexes) is a catalogued or a retired code', () => {
  const { mentions } = scan();
  const unknown = [...mentions].filter(([c]) => !isCode(c) && !Object.hasOwn(RETIRED, c)).map(([c, fs]) => `${c} in ${fs.join(', ')}`);
  assert.deepEqual(unknown, []);
});

test('every catalogued code is used somewhere, and no retired code is', () => {
  const { literals } = scan();
  const catalogue = join(SRC, 'model/diagnostics.js');
  const used = new Set([...literals].filter(([, fs]) => fs.some((f) => f !== catalogue)).map(([c]) => c));
  assert.deepEqual(Object.keys(DIAGNOSTICS).filter((c) => !used.has(c)), [], 'catalogued but never emitted');
  assert.deepEqual([...used].filter((c) => Object.hasOwn(RETIRED, c)), [], 'retired but used');
});

test('codes are well-formed, summaries unique, and retired codes are not reused', () => {
  const seen = new Map<string, string>();
  for (const [code, e] of Object.entries(DIAGNOSTICS)) {
    assert.match(code, /^QNET[1-9][0-9]{3}$/);
    assert.ok(e.severity === 'error' || e.severity === 'warning', code);
    assert.ok(e.summary.length > 0 && !e.summary.endsWith('.'), code);
    const other = seen.get(e.summary.toLowerCase());
    assert.equal(other, undefined, `${code} and ${other} share the summary '${e.summary}'`);
    seen.set(e.summary.toLowerCase(), code);
    assert.ok(!Object.hasOwn(RETIRED, code), `${code} is retired`);
  }
  for (const code of Object.keys(RETIRED)) assert.match(code, /^QNET[1-9][0-9]{3}$/);
  const listed = listDiagnostics();
  assert.equal(listed.length, Object.keys(DIAGNOSTICS).length);
  assert.deepEqual(listed[0], { code: 'QNET1001', ...DIAGNOSTICS.QNET1001 });
});

test('the rule codes are catalogue codes', () => {
  for (const [name, code] of Object.entries(RuleCode)) assert.ok(isCode(code), `${name} = ${code}`);
});

test('one fact, one code: a name that did not resolve is QNET4001 and nothing else', () => {
  assert.match(DIAGNOSTICS.QNET4001.summary, /did not resolve/);
  const others = Object.entries(DIAGNOSTICS).filter(([c, e]) => c !== 'QNET4001' && /resolve/.test(e.summary));
  assert.deepEqual(others, []);
});

test('diag takes its severity from the catalogue; warning always warns', () => {
  assert.equal(diag('QNET1003', 'x').severity, 'error');
  assert.equal(diag('QNET1901', 'x').severity, 'warning');
  assert.equal(warning('QNET4001', 'x', { qube: 'work' }).qube, 'work');
  // Compile-time only (never called): a code outside the catalogue is a type error.
  void (() => {
    // @ts-expect-error QNET4101 is retired
    diag('QNET4101', 'x');
    // @ts-expect-error nor does a string that merely looks like a code pass
    warning('QNET1003' as string, 'x');
  });
});
