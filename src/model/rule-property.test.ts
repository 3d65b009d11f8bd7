// Property tests: parse → format → parse is stable in every form, and no input makes a parser throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseApiRule, parseApiRules, parseRuleProperties, ruleToProperties } from './rule-parse.js';
import { formatApiRule, formatClientRule, formatQdbRule, ruleTableRow, ruleTableRows, ruleTableWidths } from './rule-format.js';
import { parseRuleWords } from './rule-words.js';
import { parseFirewallXml } from '../store/firewall-xml.js';
import { arbApiLine, arbRule } from './rule-arbitraries.test-helpers.js';
import type { Result } from './result.js';
import type { Rule } from './rule.js';

const RUNS = { numRuns: 500 };

function value<T>(r: Result<T>): T {
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return r.value;
}
const without = (r: Rule, ...keys: (keyof Rule)[]): Rule => {
  const c = { ...r };
  for (const k of keys) delete c[k];
  return c;
};
/** The client drops /0 address hosts. */
const clientView = (r: Rule): Rule => (r.dsthost && r.dsthost.type !== 'dsthost' && r.dsthost.prefix === 0 ? without(r, 'dsthost') : r);

test('API form: parse(format(rule)) is the rule, and format is a fixed point', () => {
  fc.assert(
    fc.property(arbRule, (r) => {
      const line = formatApiRule(r);
      assert.deepEqual(value(parseApiRule(line)), r);
      assert.equal(formatApiRule(value(parseApiRule(line))), line);
    }),
    RUNS,
  );
});

test('API form: options in any order give the same rule', () => {
  fc.assert(
    fc.property(arbApiLine, fc.integer(), (line, seed) => {
      const cut = line.indexOf(' comment=');
      const options = (cut < 0 ? line : line.slice(0, cut)).split(' ');
      const comment = cut < 0 ? '' : line.slice(cut);
      const shuffled = options.map((o, i) => [((i + 1) * (seed | 1)) % 9973, o] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
      assert.deepEqual(value(parseApiRule(shuffled.join(' ') + comment)), value(parseApiRule(line)));
    }),
    RUNS,
  );
});

test('QubesDB form: parses back to the rule without expire and comment', () => {
  fc.assert(
    fc.property(arbRule, (r) => {
      const line = formatQdbRule(r);
      assert.ok(!/expire=|comment=/.test(line));
      assert.deepEqual(value(parseApiRule(line)), without(r, 'expire', 'comment'));
    }),
    RUNS,
  );
});

test('client form: dom0 reads it back as the rule (minus /0 hosts), and as qvm-firewall words too', () => {
  fc.assert(
    fc.property(arbRule, (r) => {
      const line = formatClientRule(r);
      assert.deepEqual(value(parseApiRule(line)), clientView(r));
      // the same elements as qvm-firewall words: each key=value one argv word, comment last
      const cut = line.indexOf(' comment=');
      const words = (cut < 0 ? line : line.slice(0, cut)).split(' ');
      if (cut >= 0) words.push(line.slice(cut + 1));
      assert.deepEqual(value(parseRuleWords(words, 0)), clientView(r));
      assert.equal(formatClientRule(value(parseRuleWords(words, 0))), line);
    }),
    RUNS,
  );
});

test('XML properties: parseRuleProperties(ruleToProperties(rule)) is the rule', () => {
  fc.assert(
    fc.property(arbRule, (r) => {
      assert.deepEqual(value(parseRuleProperties(ruleToProperties(r))), r);
    }),
    RUNS,
  );
});

test('the table has 9 columns for every rule', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 5 }), fc.integer({ min: 0, max: 2 ** 40 }), (rs, now) => {
      const rows = ruleTableRows(rs, now);
      assert.equal(rows.length, rs.length + 1);
      for (const row of rows) assert.equal(row.length, 9);
    }),
    { numRuns: 100 },
  );
});

test('the table widths pass agrees with the longest cell of every column, and rows are ruleTableRow', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 12 }), fc.integer({ min: 0, max: 2 ** 40 }), (rs, now) => {
      const rows = ruleTableRows(rs, now);
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
      assert.deepEqual(ruleTableWidths(rs, now), widths);
      rs.forEach((r, i) => assert.deepEqual(ruleTableRow(r, i, now), rows[i + 1]));
    }),
    { numRuns: 300 },
  );
  // rule numbers get wider at 10, 100, …
  const many = Array.from({ length: 101 }, () => ({ action: 'drop' }) as Rule);
  assert.equal(ruleTableWidths(many, 0)[0], 3);
  assert.equal(ruleTableWidths(many.slice(0, 100), 0)[0], 2);
});

const KEYS = ['action', 'proto', 'dsthost', 'dst4', 'dst6', 'dstname', 'dstports', 'icmptype', 'specialtarget', 'expire', 'comment', 'foo', ''];
const VALUES = ['accept', 'drop', 'tcp', 'udp', 'icmp', 'dns', '1.2.3.4', '::1', '0.0.0.0/0', 'x.org', '443', '1-1024', '65536', '8', '', '=', '+3600', 'a b', '1.2.3', '-'];
const arbToken = fc.oneof(
  fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES)).map(([k, v]) => `${k}=${v}`),
  fc.constantFrom(...VALUES),
  fc.string({ maxLength: 12 }),
);
const arbSoup = fc.array(arbToken, { maxLength: 10 });
const arbJunk = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }), arbSoup.map((t) => t.join(' ')), arbSoup.map((t) => t.join('  ')));

/** A Result, never an exception; an error is a diagnostic with a code and a message. */
function isResult(r: Result<unknown>): boolean {
  return r.ok ? r.value !== undefined : /^QNET1\d{3}$/.test(r.error.code) && r.error.message.length > 0;
}

test('random junk and token soups never throw: API lines, payloads, words, properties', () => {
  fc.assert(
    fc.property(arbJunk, arbSoup, fc.array(fc.tuple(fc.constantFrom(...KEYS, 'dsthost'), fc.oneof(fc.constantFrom(...VALUES), fc.string())), { maxLength: 6 }), (junk, soup, props) => {
      assert.ok(isResult(parseApiRule(junk)));
      assert.ok(isResult(parseApiRules(junk)));
      assert.ok(isResult(parseRuleWords(soup, 1_700_000_000)));
      assert.ok(isResult(parseRuleWords(junk.split(' '), 1_700_000_000)));
      assert.ok(isResult(parseRuleProperties(props)));
    }),
    { numRuns: 2000 },
  );
});

test('whatever parses, formats in every form and parses again to the same rule', () => {
  fc.assert(
    fc.property(arbSoup, (soup) => {
      const api = parseApiRule(soup.join(' '));
      if (api.ok) assert.deepEqual(value(parseApiRule(formatApiRule(api.value))), api.value);
      const words = parseRuleWords(soup, 1_700_000_000);
      if (words.ok) assert.deepEqual(value(parseApiRule(formatClientRule(words.value))), words.value);
    }),
    { numRuns: 2000 },
  );
});

test('random XML-ish text never throws', () => {
  const pieces = fc.constantFrom('<firewall version="2">', '<rules>', '</rules>', '<rule>', '</rule>', '<properties>', '</properties>', '<property name="action">', '</property>', 'accept', '<!--', '-->', '<![CDATA[', ']]>', '&amp;', '&#0;', '&', '<', '>', '"', "'", '<?xml version="1.0"?>', '</firewall>', '\n', '<QubesFirewallRules policy="deny">', '<rule address="1.2.3.4" netmask="0"/>');
  fc.assert(
    fc.property(fc.oneof(fc.array(pieces, { maxLength: 30 }).map((p) => p.join('')), fc.string({ maxLength: 80 })), (text) => {
      assert.ok(isResult(parseFirewallXml(text)));
    }),
    { numRuns: 3000 },
  );
});
