// What the drop log costs (compile/passes/drop-log.ts puts a rate-limited NFLOG rule before every
// rule that refuses). sys-firewall with one client q1 holding 100 realistic rules (drops among them,
// packed into sets as qnet compiles them) and, last, the accept its own traffic needs. Measured in
// the same run, interleaved, REPS× each, medians:
//   with-log   what qnet loads
//   no-log     the same ruleset with the drop-log rules taken out: the baseline
// For each: the `nft -f` load of the whole ruleset, new TCP connections per second from q1 to the
// world's web host (each first packet walks q1's chain past the drop-log rules: the cost of an
// accepted new flow), and UDP datagrams per second that q1's policy refuses (each meets the policy's
// drop-log rule and its limit: the cost on the refused path). No reader runs (no daemon): the kernel
// still evaluates the limit and, within it, logs to an unbound group.
// Run: npx tsx bench/drop-log.bench.ts   (root; all traffic stays inside the bench's namespaces)
import { performance } from 'node:perf_hooks';
import { runChecked } from '../src/backend/netns/runner.js';
import { WORLD_HOSTS, worldZone } from '../src/backend/netns/world.js';
import { compile, namesToResolve } from '../src/compile/compile.js';
import { StaticResolver } from '../src/compile/dns.js';
import { emitFull } from '../src/ir/emit-text.js';
import type { Ruleset } from '../src/ir/types.js';
import type { Rule } from '../src/model/rule.js';
import { planNetwork } from '../src/model/topology.js';
import { FileStore } from '../src/store/file-store.js';
import type { LiveSystem } from '../test/kernel/system.js';
import { connectsScript, load, median, round, seedQubes, skipWithoutKernel, table, within, withLive } from './support.js';

const RULES = 100;
const REPS = 5;
const CONNECT_MS = 2000;
const DATAGRAMS = 20_000;
const WEB = WORLD_HOSTS.web.v4;
const REFUSED = '192.0.2.50';
const SENDER = 'q1';

type Config = 'with-log' | 'no-log';
const CONFIGS: readonly Config[] = ['with-log', 'no-log'];

const tcp80: Rule = { action: 'accept', dsthost: { type: 'dst4', text: `${WEB}/32`, addr: WEB, prefix: 32 }, proto: 'tcp', dstports: { start: 80, end: 80 } };

const CONNECTS = connectsScript(WEB, CONNECT_MS);

const FLOOD = `const s = require('node:dgram').createSocket('udp4'); s.on('error', () => {}); const t0 = process.hrtime.bigint();
  let n = 0; const next = () => { if (n++ < ${DATAGRAMS}) return s.send('x', 9, ${JSON.stringify(REFUSED)}, next);
    console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6 })); s.close(); }; next();`;

interface Sample {
  config: Config;
  loadMs: number;
  connectsPerS: number;
  refusedPerS: number;
}

/** The ruleset without the drop log's rules (those with a `log` statement). */
function withoutLog(rs: Ruleset): Ruleset {
  return { tables: rs.tables.map((t) => ({ ...t, chains: t.chains.map((c) => ({ ...c, rules: c.rules.filter((r) => !r.stmts.some((st) => st.kind === 'log')) })) })) };
}

async function runJson<T>(s: LiveSystem, script: string, ms: number): Promise<T> {
  const r = await s.sh(SENDER, [process.execPath, '-e', script], ms);
  return JSON.parse(r.stdout.trim()) as T;
}

async function main(): Promise<void> {
  if (skipWithoutKernel('drop-log')) return;
  const loadBefore = load();
  const out = await withLive('qdl', async (s) => {
    delete (s.env as Record<string, string>)['QNET_NO_ICMP_RATELIMIT'];
    await s.ok('init');
    await seedQubes(s.dir, { count: 1, rules: RULES, extra: () => [tcp80] });
    await within('start q1', 60_000, () => s.ok(['start', SENDER]));
    const model = await new FileStore(s.dir).load();
    const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const now = Math.floor(Date.now() / 1000);
    const resolutions = await new StaticResolver(worldZone(s.dir)).resolveAll(namesToResolve(model, now));
    const rs = compile({ model, plan: planNetwork(model, { uplink: 'world', only: running }), resolutions, now }).rulesets.get('sys-firewall')!;
    const texts: Record<Config, string> = { 'with-log': emitFull(rs), 'no-log': emitFull(withoutLog(rs)) };
    const logRules = rs.tables.flatMap((t) => t.chains.flatMap((c) => c.rules)).filter((r) => r.stmts.some((st) => st.kind === 'log')).length;
    const fw = s.ns('sys-firewall');
    const samples: Sample[] = [];
    for (let r = 0; r < REPS; r++)
      for (const config of CONFIGS) {
        const t0 = performance.now();
        await runChecked(s.runner, ['nft', '-f', '-'], { netns: fw, stdin: `flush ruleset\n${texts[config]}`, timeoutMs: 60_000 });
        const loadMs = performance.now() - t0;
        const c = await within('connect rate', CONNECT_MS + 20_000, () => runJson<{ n: number; err: number; ms: number }>(s, CONNECTS, CONNECT_MS + 15_000));
        if (c.err) throw new Error(`${config}: ${c.err} connects to ${WEB}:80 failed (the accept did not take effect)`);
        const f = await within('refused flood', 60_000, () => runJson<{ ms: number }>(s, FLOOD, 50_000));
        samples.push({ config, loadMs, connectsPerS: (c.n * 1000) / c.ms, refusedPerS: (DATAGRAMS * 1000) / f.ms });
      }
    const policy = (await runChecked(s.runner, ['nft', 'list', 'chain', 'ip', 'qubes-firewall', 'qbs-10-137-0-10'], { netns: fw })).match(/counter packets (\d+) [^\n]*"qube=q1 policy"/)?.[1];
    return { samples, logRules, policyPackets: Number(policy ?? 0) };
  });
  const med = (c: Config, f: (x: Sample) => number) => median(out.samples.filter((x) => x.config === c).map(f));
  const rows: (string | number)[][] = [['sys-firewall', 'load ms', 'connects/s', 'refused UDP/s', `(medians of ${REPS})`]];
  for (const c of CONFIGS) rows.push([c, round(med(c, (x) => x.loadMs)), round(med(c, (x) => x.connectsPerS)), round(med(c, (x) => x.refusedPerS)), '']);
  const ratio = (f: (x: Sample) => number) => round(med('with-log', f) / med('no-log', f), 3);
  rows.push(['with/no', ratio((x) => x.loadMs), ratio((x) => x.connectsPerS), ratio((x) => x.refusedPerS), '']);
  console.log(table(rows));
  console.log(`\n${RULES} rules in ${SENDER}; ${out.logRules} drop-log rules in sys-firewall (both families); the policy refused ${out.policyPackets} datagrams in the last round`);
  console.log(
    JSON.stringify({
      bench: 'drop-log',
      rules: RULES,
      logRules: out.logRules,
      medians: Object.fromEntries(CONFIGS.map((c) => [c, { loadMs: round(med(c, (x) => x.loadMs)), connectsPerS: round(med(c, (x) => x.connectsPerS)), refusedPerS: round(med(c, (x) => x.refusedPerS)) }])),
      samples: out.samples.map((x) => ({ ...x, loadMs: round(x.loadMs), connectsPerS: round(x.connectsPerS), refusedPerS: round(x.refusedPerS) })),
      load: { before: loadBefore, after: load() },
    }),
  );
}

await main();
