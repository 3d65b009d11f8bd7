// FileStore costs with one big qube (1k, 10k, 100k rules) next to the default layout, against
// baselines measured in the same run, so results read as ratios (DESIGN.md: benchmarks).
//   load     a fresh FileStore reads everything (the CLI's case: no cache)
//   load*    the same store again: unchanged files are not parsed twice (the daemon's case)
//   save     replace the big qube's rules (format + atomic write of the whole file)
//   append   a fresh FileStore appends one rule (lock, read, change, write one file)
//   other    a fresh FileStore changes another qube's label: what the big file costs others
//   list     load + formatClientRule for every rule (what `qnet firewall <qube> list` does)
//   *        the same on a warm FileStore (one instance reused, as the daemon does)
//   parse, format: parseFirewallXml / formatFirewallXml alone on the big file: most of load and
//            append is these two (inside an update they run slower, with more garbage around)
// Baselines: readFile + JSON.parse of the same rules as JSON; plain writeFile (no fsync) of the
// same XML bytes; readFile of the XML bytes.
// Run: npx tsx bench/store.bench.ts
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultLayout } from '../src/model/layout.js';
import { unwrap } from '../src/model/result.js';
import type { Rule } from '../src/model/rule.js';
import { formatClientRule } from '../src/model/rule-format.js';
import { FileStore } from '../src/store/file-store.js';
import { formatFirewallXml, parseFirewallXml } from '../src/store/firewall-xml.js';

const SIZES = [1_000, 10_000, 100_000];
const BIG = 'work';

function makeRules(n: number): Rule[] {
  const rules: Rule[] = [];
  for (let i = 0; i < n; i++) {
    const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    if (i % 3 === 0) rules.push({ action: 'accept', proto: 'tcp', dsthost: { type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 }, dstports: { start: 443, end: 443 } });
    else if (i % 3 === 1) rules.push({ action: 'accept', dsthost: { type: 'dsthost', text: `host${i}.example.org` }, comment: `rule ${i}` });
    else rules.push({ action: 'drop', proto: 'udp', dstports: { start: 1000, end: 2000 + (i % 1000) } });
  }
  // The parser's own shape, so the store compares like with like.
  return unwrap(parseFirewallXml(formatFirewallXml(rules))).rules;
}

async function time(runs: number, f: () => Promise<unknown>): Promise<number> {
  await f(); // warm-up: JIT, page cache
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  return ms[Math.floor(ms.length / 2)]!;
}

interface Row {
  rules: number;
  bytes: number;
  parse: number;
  format: number;
  load: number;
  loadWarm: number;
  save: number;
  append: number;
  appendWarm: number;
  other: number;
  otherWarm: number;
  list: number;
  baseReadJson: number;
  baseRead: number;
  baseWrite: number;
}

async function benchSize(n: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-bench-'));
  try {
    const runs = n >= 100_000 ? 5 : n >= 10_000 ? 10 : 30;
    const rules = makeRules(n);
    const variant = rules.map((r, i) => (i === n - 1 ? { ...r, comment: 'changed' } : r));
    await new FileStore(dir).update((m) => {
      Object.assign(m, defaultLayout());
      m.qubes.get(BIG)!.rules = rules;
      m.qubes.get('personal')!.rules = rules.slice(0, 10);
    });
    const file = join(dir, 'appvms', BIG, 'firewall.xml');
    const xml = await readFile(file);
    const jsonFile = join(dir, 'rules.json');
    await writeFile(jsonFile, JSON.stringify(rules));
    const copyFile = join(dir, 'copy.xml');

    const warm = new FileStore(dir);
    let flip = false;
    let label = false;
    const xmlText = xml.toString('utf8');
    const row: Row = {
      rules: n,
      bytes: xml.length,
      parse: await time(runs, async () => parseFirewallXml(xmlText)),
      format: await time(runs, async () => formatFirewallXml(rules)),
      load: await time(runs, () => new FileStore(dir).load()),
      loadWarm: await time(runs, () => warm.load()),
      save: await time(runs, () =>
        new FileStore(dir).update((m) => {
          m.qubes.get(BIG)!.rules = (flip = !flip) ? variant : rules;
        }),
      ),
      append: await time(runs, () => new FileStore(dir).update((m) => void m.qubes.get(BIG)!.rules!.push({ action: 'drop' }))),
      appendWarm: await time(runs, () => warm.update((m) => void m.qubes.get(BIG)!.rules!.push({ action: 'drop' }))),
      other: await time(runs, () =>
        new FileStore(dir).update((m) => {
          m.qubes.get('vault')!.label = (label = !label) ? 'gray' : 'black';
        }),
      ),
      otherWarm: await time(runs, () =>
        warm.update((m) => {
          m.qubes.get('vault')!.label = (label = !label) ? 'gray' : 'black';
        }),
      ),
      list: await time(runs, async () => {
        const m = await new FileStore(dir).load();
        return m.qubes.get(BIG)!.rules!.map(formatClientRule).join('\n');
      }),
      baseReadJson: await time(runs, async () => JSON.parse(await readFile(jsonFile, 'utf8'))),
      baseRead: await time(runs, () => readFile(file)),
      baseWrite: await time(runs, () => writeFile(copyFile, xml)),
    };
    return row;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const n of SIZES) rows.push(await benchSize(n));

const f = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
const header = ['rules', 'MB', 'parse', 'format', 'load', 'load*', 'save', 'append', 'append*', 'other', 'other*', 'list', 'read+JSON', 'write', 'load/JSON', 'append/(JSON+write)'];
const table = rows.map((r) => [
  String(r.rules),
  (r.bytes / 1e6).toFixed(1),
  f(r.parse),
  f(r.format),
  f(r.load),
  f(r.loadWarm),
  f(r.save),
  f(r.append),
  f(r.appendWarm),
  f(r.other),
  f(r.otherWarm),
  f(r.list),
  f(r.baseReadJson),
  f(r.baseWrite),
  x(r.load, r.baseReadJson),
  x(r.append, r.baseReadJson + r.baseWrite),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
console.log('FileStore, median ms (one qube with N rules, plus the default layout)');
console.log(line(header));
for (const t of table) console.log(line(t));
console.log(JSON.stringify({ bench: 'store', node: process.version, unit: 'ms', rows }));
