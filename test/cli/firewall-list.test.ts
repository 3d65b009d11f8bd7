// Listings of big rule lists are written in chunks as they are made: the bytes must be exactly what
// the one-string forms gave (formatTable, JSON.stringify), whatever the chunking.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bufferIo, type Io } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { formatTable } from '../../src/cli/table.js';
import { unwrap } from '../../src/model/result.js';
import { formatApiRule, formatClientRule, ruleTableRows } from '../../src/model/rule-format.js';
import { parseApiRules } from '../../src/model/rule-parse.js';
import { StateDir } from './helpers.js';

/** Rules of every shape and width, none expired at `now`. */
function ruleLines(n: number, now: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = `10.${(i >> 8) & 255}.${i & 255}.${i % 7}`;
    switch (i % 6) {
      case 0: lines.push(`action=accept dst4=${a}/${8 + (i % 25)} proto=tcp dstports=${i % 65536}`); break;
      case 1: lines.push(`action=drop dsthost=host${i}.example.org comment=rule ${i} of the list`); break;
      case 2: lines.push(`action=accept proto=udp dstports=${i % 1000}-${2000 + i} expire=${now + i * 97}`); break;
      case 3: lines.push(`action=accept proto=icmp icmptype=${i % 256}`); break;
      case 4: lines.push(`action=accept specialtarget=dns dst6=fd00::${(i % 65536).toString(16)}/64`); break;
      default: lines.push('action=drop');
    }
  }
  return lines.join('\n') + '\n';
}

describe('qnet firewall VM list/--raw/get/--json on a big list', () => {
  const s = new StateDir();
  const N = 9_000;
  const rules = unwrap(parseApiRules(ruleLines(N, s.now)));
  before(async () => {
    await s.ok('init');
    await s.ok('firewall work set', ruleLines(N, s.now));
  });
  after(() => s.cleanup());

  /** Run with an Io that keeps each write apart. */
  async function chunks(args: string): Promise<string[]> {
    const b = bufferIo({ now: s.now, env: {} });
    const out: string[] = [];
    const io: Io = { ...b.io, out: (x) => void out.push(x) };
    assert.equal(await main(['--state', s.dir, ...args.split(' ')], io), 0, b.stderr());
    return out;
  }

  test('the table is formatTable(ruleTableRows(…)), its first lines written on their own', async () => {
    const out = await chunks('firewall work');
    assert.equal(out.join(''), formatTable(ruleTableRows(rules, s.now)));
    assert.ok(out.length > 2, `${out.length} writes`);
    assert.ok(out[0]!.split('\n').length <= 66, 'a small first chunk');
  });

  test('get and --raw, line for line', async () => {
    assert.equal((await chunks('firewall work get')).join(''), rules.map((r) => formatApiRule(r) + '\n').join(''));
    assert.equal((await chunks('firewall work --raw')).join(''), rules.map((r) => formatClientRule(r) + '\n').join(''));
    assert.equal((await chunks('firewall work list -o raw')).join(''), rules.map((r) => formatClientRule(r) + '\n').join(''));
  });

  test('--json in JSON.stringify(…, null, 2) layout', async () => {
    const text = (await chunks('firewall work --json')).join('');
    const items = JSON.parse(text) as { no: number; api: string; raw: string }[];
    assert.equal(text, JSON.stringify(items, null, 2) + '\n');
    assert.deepEqual(items.map((x) => x.api), rules.map(formatApiRule));
    assert.deepEqual(items.map((x) => x.no), rules.map((_, i) => i));
  });

  test('an empty list, and a qube without a file', async () => {
    const t = new StateDir();
    try {
      await t.ok('init');
      await t.ok('firewall work set', '');
      assert.equal(await t.ok('firewall work --json'), '[]\n');
      assert.equal(await t.ok('firewall work get'), '');
      assert.equal(await t.ok('firewall work'), 'NO  ACTION  HOST  PROTOCOL  PORT(S)  SPECIAL TARGET  ICMP TYPE  EXPIRE  COMMENT\n');
      assert.equal(await t.ok('firewall personal --json'), JSON.stringify([{ no: 0, action: 'accept', api: 'action=accept', raw: 'action=accept' }], null, 2) + '\n');
      const r = await t.run('firewall nope');
      assert.equal(r.code, 1);
      assert.match(r.err, /no such qube 'nope'/);
      assert.match((await t.run('firewall work -o xml')).err, /unknown format 'xml'/);
    } finally {
      t.cleanup();
    }
  });
});
