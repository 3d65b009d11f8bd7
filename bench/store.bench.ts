// FileStore and `qnet firewall` costs with one big qube (1k, 10k, 100k rules) next to the default
// layout, against baselines measured in the same run, so results read as ratios (DESIGN.md: benchmarks).
//   parse, format  parseFirewallXml / formatFirewallXml alone on the big file
//   load       a fresh FileStore reads everything (the CLI's case: no cache); load* the same store again
//   loadQube   a fresh FileStore reads qubes.json and the big qube's file only
//   save       replace the big qube's rules (format + atomic write of the whole file)
//   append     a fresh FileStore appends one rule (lock, read, change, write one file); append* warm
//   other      a fresh FileStore changes another qube's label: what the big file costs others
//   cli add    `qnet firewall work add accept proto=tcp dstports=443` through main() in this process
//   proc add   the same as a fresh process: `node bin/qnet.js --state DIR firewall work add …`
//   list 1st / list    `qnet firewall work` (the table) through main(): time to the first write, and total
//   proc 1st / proc    the same as a fresh process: time to the first byte on stdout, and to exit
// Baselines, same data, same run:
//   JSON       readFile + JSON.parse of the same rules as JSON (what "loading the data" costs at least)
//   write      plain writeFile (no fsync) of the same XML bytes
//   node       a fresh `node` that reads the XML and the JSON file, JSON.parses, writes the XML to a
//              copy and to stdout: the floor for a fresh-process command over this data (startup included)
// Run: npm run build && npx tsx bench/store.bench.ts   (the proc columns need dist/; skipped without)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { bufferIo, type Io } from '../src/cli/io.js';
import { main } from '../src/cli/main.js';
import { defaultLayout } from '../src/model/layout.js';
import { unwrap } from '../src/model/result.js';
import type { Rule } from '../src/model/rule.js';
import { FileStore } from '../src/store/file-store.js';
import { formatFirewallXml, parseFirewallXml } from '../src/store/firewall-xml.js';

const SIZES = (process.env['QNET_BENCH_SIZES'] ?? '1000,10000,100000').split(',').map(Number);
const BIG = 'work';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'qnet.js');
const HAVE_DIST = existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'));
const ADD = ['firewall', BIG, 'add', 'accept', 'proto=tcp', 'dstports=443'];
const loadStart = loadavg();

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
  const [ms] = await times(runs, async (): Promise<[number]> => {
    const t0 = performance.now();
    await f();
    return [performance.now() - t0];
  });
  return ms;
}

/** Medians of what `f` measures (each run returns one or more durations). */
async function times<T extends number[]>(runs: number, f: () => Promise<T>): Promise<T> {
  await f(); // warm-up: JIT, page cache
  const all: T[] = [];
  for (let i = 0; i < runs; i++) all.push(await f());
  return all[0]!.map((_, k) => {
    const col = all.map((r) => r[k]!).sort((x, y) => x - y);
    return col[Math.floor(col.length / 2)]!;
  }) as T;
}

/** main() with an Io that notes the time of the first write to stdout. */
async function cliInProcess(dir: string, args: string[]): Promise<[number, number]> {
  const b = bufferIo();
  let first = -1;
  const t0 = performance.now();
  const io: Io = { ...b.io, out: (s) => void (first < 0 && (first = performance.now()), b.io.out(s)) };
  const code = await main(['--state', dir, ...args], io);
  const total = performance.now() - t0;
  if (code !== 0) throw new Error(`qnet ${args.join(' ')}: ${code}: ${b.stderr()}`);
  return [(first < 0 ? performance.now() : first) - t0, total];
}

/** A fresh process: time to its first byte on stdout, and to its exit. */
function proc(argv: string[]): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = -1;
    let err = '';
    const p = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', () => void (first < 0 && (first = performance.now())));
    p.stderr.on('data', (d: Buffer) => void (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const total = performance.now() - t0;
      if (code !== 0) reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`));
      else resolve([(first < 0 ? total : first - t0), total]);
    });
  });
}

interface Row {
  rules: number;
  bytes: number;
  parse: number;
  format: number;
  load: number;
  loadWarm: number;
  loadQube: number;
  save: number;
  append: number;
  appendWarm: number;
  other: number;
  cliAdd: number;
  procAdd: number;
  listFirst: number;
  list: number;
  procListFirst: number;
  procList: number;
  baseJson: number;
  baseWrite: number;
  baseNodeFirst: number;
  baseNode: number;
  procStartup: number;
}

async function benchSize(n: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-bench-'));
  try {
    const runs = n >= 100_000 ? 5 : n >= 10_000 ? 9 : 21;
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
    const nodeBaseline = `const fs=require('fs');const x=fs.readFileSync(${JSON.stringify(file)});JSON.parse(fs.readFileSync(${JSON.stringify(jsonFile)},'utf8'));fs.writeFileSync(${JSON.stringify(copyFile)},x);process.stdout.write(x)`;
    const parse = await time(runs, async () => parseFirewallXml(xmlText));
    const format = await time(runs, async () => formatFirewallXml(rules));
    const load = await time(runs, () => new FileStore(dir).load());
    const loadWarm = await time(runs, () => warm.load());
    const loadQube = await time(runs, async () => new FileStore(dir).loadQube?.(BIG));
    const save = await time(runs, () =>
      new FileStore(dir).update((m) => {
        m.qubes.get(BIG)!.rules = (flip = !flip) ? variant : rules;
      }),
    );
    // From here on the list grows by one rule per run: negligible next to n.
    const append = await time(runs, () => new FileStore(dir).update((m) => void m.qubes.get(BIG)!.rules!.push({ action: 'drop', proto: 'icmp' })));
    const appendWarm = await time(runs, () => warm.update((m) => void m.qubes.get(BIG)!.rules!.push({ action: 'drop', proto: 'icmp' })));
    const other = await time(runs, () =>
      new FileStore(dir).update((m) => {
        m.qubes.get('vault')!.label = (label = !label) ? 'gray' : 'black';
      }),
    );
    const [, cliAdd] = await times(runs, () => cliInProcess(dir, ADD));
    const [listFirst, list] = await times(runs, () => cliInProcess(dir, ['firewall', BIG]));
    const skip: [number, number] = [NaN, NaN];
    const [, procAdd] = HAVE_DIST ? await times(runs, () => proc([BIN, '--state', dir, ...ADD])) : skip;
    const [procListFirst, procList] = HAVE_DIST ? await times(runs, () => proc([BIN, '--state', dir, 'firewall', BIG])) : skip;
    const [, procStartup] = HAVE_DIST ? await times(runs, () => proc([BIN, '--version'])) : skip;
    const [baseNodeFirst, baseNode] = await times(runs, () => proc(['-e', nodeBaseline]));
    const baseJson = await time(runs, async () => JSON.parse(await readFile(jsonFile, 'utf8')));
    const baseWrite = await time(runs, () => writeFile(copyFile, xml));
    return {
      rules: n, bytes: xml.length, parse, format, load, loadWarm, loadQube, save, append, appendWarm, other, cliAdd, procAdd,
      listFirst, list, procListFirst, procList, baseJson, baseWrite, baseNodeFirst, baseNode, procStartup,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const n of SIZES) rows.push(await benchSize(n));

// A file with no `-` anywhere (single ports only): a parser that searches past a value for the
// range dash goes quadratic here (it did: 24 s at 100k), while the mixed files above hide it.
const singlePorts: Rule[] = Array.from({ length: SIZES[SIZES.length - 1]! }, (_, i) => ({
  action: 'accept' as const,
  proto: 'tcp' as const,
  dsthost: { type: 'dst4' as const, text: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`, addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, prefix: 32 },
  dstports: { start: 1 + (i % 60000), end: 1 + (i % 60000) },
}));
const singleText = formatFirewallXml(singlePorts);
const singleParse = await time(3, async () => parseFirewallXml(singleText));
const singleJson = JSON.stringify(singlePorts);
const singleBase = await time(3, async () => JSON.parse(singleJson));
console.log(`single ports only, ${singlePorts.length} rules: parse ${singleParse.toFixed(1)} ms, JSON.parse baseline ${singleBase.toFixed(1)} ms (${(singleParse / singleBase).toFixed(1)}x)`);
const loadEnd = loadavg();

const f = (ms: number) => (Number.isNaN(ms) ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
const x = (a: number, b: number) => (Number.isNaN(a) ? '-' : `${(a / b).toFixed(1)}x`);
const cols: [string, (r: Row) => string][] = [
  ['rules', (r) => String(r.rules)],
  ['MB', (r) => (r.bytes / 1e6).toFixed(1)],
  ['parse', (r) => f(r.parse)],
  ['format', (r) => f(r.format)],
  ['load', (r) => f(r.load)],
  ['load*', (r) => f(r.loadWarm)],
  ['loadQube', (r) => f(r.loadQube)],
  ['save', (r) => f(r.save)],
  ['append', (r) => f(r.append)],
  ['append*', (r) => f(r.appendWarm)],
  ['other', (r) => f(r.other)],
  ['cli add', (r) => f(r.cliAdd)],
  ['proc add', (r) => f(r.procAdd)],
  ['list 1st', (r) => f(r.listFirst)],
  ['list', (r) => f(r.list)],
  ['proc 1st', (r) => f(r.procListFirst)],
  ['proc list', (r) => f(r.procList)],
  ['JSON', (r) => f(r.baseJson)],
  ['write', (r) => f(r.baseWrite)],
  ['node', (r) => f(r.baseNode)],
  ['startup', (r) => f(r.procStartup)],
  ['load/JSON', (r) => x(r.load, r.baseJson)],
  ['append/(JSON+write)', (r) => x(r.append, r.baseJson + r.baseWrite)],
  ['proc add/node', (r) => x(r.procAdd, r.baseNode)],
  ['proc 1st/node', (r) => x(r.procListFirst, r.baseNode)],
];
const table = rows.map((r) => cols.map(([, c]) => c(r)));
const widths = cols.map(([h], i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
const la = (l: number[]) => l.map((v) => v.toFixed(2)).join(' ');
console.log(`FileStore and qnet firewall, median ms (one qube with N rules, plus the default layout); load average ${la(loadStart)} → ${la(loadEnd)}`);
console.log(line(cols.map(([h]) => h)));
for (const t of table) console.log(line(t));
if (!HAVE_DIST) console.log('(proc columns skipped: run npm run build first)');
console.log(JSON.stringify({ bench: 'store', node: process.version, unit: 'ms', loadavg: { start: loadStart, end: loadEnd }, rows }));
