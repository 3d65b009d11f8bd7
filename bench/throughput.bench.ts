// Forwarded TCP through sys-firewall with 1,000 running app qubes × 100 rules loaded: q1000 (the
// last client, so Qubes' linear dispatch walks every other client first, and its accepts are its
// last rules) sends to the world's web host 203.0.113.10. Measured in the same run, interleaved,
// 3× each, medians:
//   empty         sys-firewall with no filtering at all, only the masquerade the path needs (sys-net
//                 accepts only its clients' addresses): the forwarding floor
//   qnet-1        qnet's ruleset with the sender as the only client (what the client count costs)
//   qnet          what qnet loaded (verdict-map dispatch, rules packed into sets)
//   qubes-linear  the same model compiled with layout 'qubes-linear' (Qubes' shape: one jump per
//                 client, one rule per rule), loaded in its place
// Throughput with iperf3 (or a node sender/receiver if iperf3 is missing), fixed duration. Both
// qnet layouts accept `ct state established,related` first, so only a flow's first packet meets
// the per-client rules: throughput shows the per-packet cost of the base chains, and the
// new-connection rate (connect + reset, 4 in flight, fixed duration) shows the first-packet cost.
// Target: qnet within 10% of empty.
// Run: npx tsx bench/throughput.bench.ts   (root; all traffic stays inside the bench's namespaces)
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { runChecked } from '../src/backend/netns/runner.js';
import { WORLD_HOSTS } from '../src/backend/netns/world.js';
import { worldZone } from '../src/backend/netns/world.js';
import { compile, namesToResolve } from '../src/compile/compile.js';
import type { Layout } from '../src/compile/context.js';
import { StaticResolver } from '../src/compile/dns.js';
import { emitFull } from '../src/ir/emit-text.js';
import { planNetwork } from '../src/model/topology.js';
import type { Rule } from '../src/model/rule.js';
import { FileStore } from '../src/store/file-store.js';
import type { LiveSystem } from '../test/kernel/system.js';
import { appName, connectsScript, load, median, round, seedQubes, skipWithoutKernel, table, within, withLive } from './support.js';

const QUBES = 1000;
const RULES = 100;
const REPS = 3;
const SECONDS = 3;
const CONNECT_MS = 2000;
const PORT = 5201;
const TARGET_RATIO = 0.9;
const SENDER = appName(QUBES);
const WEB = WORLD_HOSTS.web.v4;

const tcpTo = (addr: string, port: number): Rule => ({ action: 'accept', dsthost: { type: 'dst4', text: `${addr}/32`, addr, prefix: 32 }, proto: 'tcp', dstports: { start: port, end: port } });

type Config = 'empty' | 'qnet-1' | 'qnet' | 'qubes-linear';
const CONFIGS: readonly Config[] = ['empty', 'qnet-1', 'qnet', 'qubes-linear'];

/** No filter, only what forwarding through sys-firewall needs: masquerade out of its uplink (eth0). */
const NAT_ONLY = 'table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname "eth0" masquerade\n\t}\n}\n';

interface Sample {
  config: Config;
  gbps: number;
  connectsPerS: number;
  connectErrors: number;
  loadMs: number;
}

const hasIperf = () => spawnSync('sh', ['-c', 'command -v iperf3']).status === 0;

/** The node fallback: a receiver in the world that discards, a sender in the qube that writes for SECONDS. */
const NODE_RECEIVER = `require('node:net').createServer((c) => { c.on('error', () => {}); c.resume(); })
  .listen(${PORT}, ${JSON.stringify(WEB)}, () => console.log('Server listening'));
  process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
const NODE_SENDER = `const c = require('node:net').connect(${PORT}, ${JSON.stringify(WEB)}); const buf = Buffer.alloc(128 * 1024);
  let bytes = 0; const t0 = Date.now(); const end = t0 + ${SECONDS * 1000};
  const pump = () => { while (Date.now() < end) { bytes += buf.length; if (!c.write(buf)) return c.once('drain', pump); } c.end(() => { console.log(JSON.stringify({ bps: (bytes * 8) / ((Date.now() - t0) / 1000) })); process.exit(0); }); };
  c.on('connect', pump); c.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });`;

const CONNECTS = connectsScript(WEB, CONNECT_MS);

async function throughput(s: LiveSystem, iperf: boolean): Promise<number> {
  if (iperf) {
    const r = await s.sh(SENDER, ['iperf3', '-c', WEB, '-p', String(PORT), '-t', String(SECONDS), '-J', '--connect-timeout', '3000'], (SECONDS + 15) * 1000);
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
    if (!j.end?.sum_received) throw new Error(`iperf3: ${j.error ?? r.stderr}`);
    return j.end.sum_received.bits_per_second / 1e9;
  }
  const r = await s.sh(SENDER, [process.execPath, '-e', NODE_SENDER], (SECONDS + 15) * 1000);
  const j = JSON.parse(r.stdout.trim()) as { bps?: number; error?: string };
  if (j.bps === undefined) throw new Error(`node sender: ${j.error ?? r.stderr}`);
  return j.bps / 1e9;
}

async function connectRate(s: LiveSystem): Promise<{ perS: number; errors: number }> {
  const r = await s.sh(SENDER, [process.execPath, '-e', CONNECTS], CONNECT_MS + 15_000);
  const j = JSON.parse(r.stdout.trim()) as { n: number; err: number; ms: number };
  return { perS: (j.n * 1000) / j.ms, errors: j.err };
}

async function main(): Promise<void> {
  if (skipWithoutKernel('throughput')) return;
  const loadBefore = load();
  const iperf = hasIperf();
  const out = await withLive('qtp', async (s) => {
    delete (s.env as Record<string, string>)['QNET_NO_ICMP_RATELIMIT'];
    await s.ok('init');
    const names = await seedQubes(s.dir, { count: QUBES, rules: RULES, extra: (n) => (n === SENDER ? [tcpTo(WEB, PORT), tcpTo(WEB, 80)] : []) });
    let t0 = performance.now();
    await within(`start ${QUBES} qubes`, 600_000, () => s.ok(['start', ...names]));
    const startMs = performance.now() - t0;

    // The rulesets to swap into sys-firewall, compiled from the running model as the engine does.
    const model = await new FileStore(s.dir).load();
    const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const plan = planNetwork(model, { uplink: 'world', only: running });
    const now = Math.floor(Date.now() / 1000);
    const resolutions = await new StaticResolver(worldZone(s.dir)).resolveAll(namesToResolve(model, now));
    const text = (layout: Layout, p = plan) => emitFull(compile({ model, plan: p, resolutions, now, layout }).rulesets.get('sys-firewall')!);
    const alone = planNetwork(model, { uplink: 'world', only: new Set(['sys-net', 'sys-firewall', SENDER]) });
    const rulesets: Record<Config, string> = { empty: NAT_ONLY, 'qnet-1': text('qnet', alone), qnet: text('qnet'), 'qubes-linear': text('qubes-linear') };
    const fw = s.ns('sys-firewall');
    const nftRules = async () =>
      (JSON.parse(await runChecked(s.runner, ['nft', '-j', 'list', 'ruleset'], { netns: fw, timeoutMs: 120_000 })) as { nftables: object[] }).nftables.filter((x) => 'rule' in x).length;

    if (iperf) await s.spawnIn('world', ['iperf3', '-s', '-B', WEB, '-p', String(PORT), '--forceflush']).waitFor((l) => l.includes('Server listening'), 10_000);
    else await s.spawnIn('world', [process.execPath, '-e', NODE_RECEIVER]).waitFor((l) => l.includes('Server listening'), 10_000);

    const samples: Sample[] = [];
    const checks: Record<string, { otherHost: string; rules: number }> = {};
    for (let r = 0; r < REPS; r++)
      for (const config of CONFIGS) {
        t0 = performance.now();
        await runChecked(s.runner, ['nft', '-f', '-'], { netns: fw, stdin: `flush ruleset\n${rulesets[config]}`, timeoutMs: 120_000 });
        const loadMs = performance.now() - t0;
        if (r === 0) {
          // Proof the rules bite: q1000 may not reach the other web host (it has no rule for it).
          const probe = await s.tcpProbe(SENDER, WORLD_HOSTS.other.v4, 80);
          checks[config] = { otherHost: probe.result, rules: await nftRules() };
          // Under qnet's rules the sender's chain ends in its default policy, a reject
          // (admin-prohibited, seen as EHOSTUNREACH): anything else means the swap did not bite.
          if (config !== 'empty' && probe.result !== 'error:EHOSTUNREACH')
            throw new Error(`${config}: ${SENDER} → ${WORLD_HOSTS.other.v4}:80 gave ${probe.result}, want error:EHOSTUNREACH (the rules did not take effect)`);
        }
        const gbps = await within('throughput', (SECONDS + 20) * 1000, () => throughput(s, iperf));
        const c = await within('connect rate', CONNECT_MS + 20_000, () => connectRate(s));
        samples.push({ config, gbps, connectsPerS: c.perS, connectErrors: c.errors, loadMs });
      }
    return { samples, checks, startMs, bytes: { qnet: rulesets.qnet.length, 'qubes-linear': rulesets['qubes-linear'].length } };
  });

  const by = (c: Config) => out.samples.filter((x) => x.config === c);
  const med = (c: Config, f: (x: Sample) => number) => median(by(c).map(f));
  const base = { gbps: med('empty', (x) => x.gbps), cps: med('empty', (x) => x.connectsPerS) };
  const rows: (string | number)[][] = [['sys-firewall ruleset', 'nft rules', 'load ms', `TCP Gbit/s (median of ${REPS})`, 'samples', 'vs empty', 'connects/s', 'vs empty', 'other host']];
  for (const c of CONFIGS)
    rows.push([
      c,
      out.checks[c]!.rules,
      round(med(c, (x) => x.loadMs)),
      round(med(c, (x) => x.gbps), 2),
      by(c).map((x) => round(x.gbps, 1)).join(' '),
      `${round(med(c, (x) => x.gbps) / base.gbps, 3)}`,
      round(med(c, (x) => x.connectsPerS)),
      `${round(med(c, (x) => x.connectsPerS) / base.cps, 3)}`,
      out.checks[c]!.otherHost,
    ]);
  console.log(table(rows));
  const ratio = med('qnet', (x) => x.gbps) / base.gbps;
  const ok = ratio >= TARGET_RATIO;
  console.log(`\nsender ${SENDER} → ${WEB} (${iperf ? 'iperf3' : 'node sender'}, ${SECONDS} s); setup: qnet start of ${QUBES} qubes × ${RULES} rules took ${round(out.startMs)} ms`);
  console.log('ct state established,related is accepted first: only the first packet of a flow meets the per-client rules (connects/s shows that cost).');
  console.log(`target: qnet throughput within 10% of empty: ${ok ? 'met' : 'MISSED'} (${round(ratio * 100, 1)}%)`);
  console.log(
    JSON.stringify({
      bench: 'throughput',
      tool: iperf ? 'iperf3' : 'node',
      qubes: QUBES,
      rulesPerQube: RULES,
      seconds: SECONDS,
      medians: Object.fromEntries(CONFIGS.map((c) => [c, { gbps: round(med(c, (x) => x.gbps), 2), connectsPerS: round(med(c, (x) => x.connectsPerS)), loadMs: round(med(c, (x) => x.loadMs)) }])),
      samples: out.samples.map((x) => ({ ...x, gbps: round(x.gbps, 2), connectsPerS: round(x.connectsPerS), loadMs: round(x.loadMs) })),
      checks: out.checks,
      rulesetBytes: out.bytes,
      startMs: round(out.startMs),
      target: { ratio: round(ratio, 3), min: TARGET_RATIO, ok },
      load: { before: loadBefore, after: load() },
    }),
  );
}

await main();
