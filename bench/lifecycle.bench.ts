// Starting 200 app qubes through qnet itself: `qnet start q1 … q200` run in-process (the real CLI,
// offline path: EngineStore + Engine + netns backend), from nothing running, so it includes
// sys-net, sys-firewall and the world; every qube has 100 realistic rules, compiled and loaded
// before its links come up. Target: under 5 s in all.
// Baselines in the same run: the same namespaces and links brought up by the netns backend with
// no rules at all (the floor qnet's rules add to), and the naive way, one `ip`/`sysctl` process
// per step, at N = 50 (per qube, extrapolated to 200).
// Run: npx tsx bench/lifecycle.bench.ts   (root; every namespace is removed, even on failure)
import { performance } from 'node:perf_hooks';
import { NetnsBackend } from '../src/backend/netns/netns-backend.js';
import { NetnsExecutor } from '../src/backend/netns/netns-executor.js';
import { NodeRunner, runChecked } from '../src/backend/netns/runner.js';
import { Converger } from '../src/engine/converge.js';
import { DnsAnswers } from '../src/engine/dns-refresh.js';
import { Engine } from '../src/engine/engine.js';
import { FileStore } from '../src/store/file-store.js';
import { defaultLayout, newQube } from '../src/model/layout.js';
import type { NetPlan } from '../src/model/netplan.js';
import { planNetwork } from '../src/model/topology.js';
import type { LiveSystem } from '../test/kernel/system.js';
import { appName, load, median, naiveBringUp, PhaseTimer, round, seedQubes, skipWithoutKernel, table, within, withLive, withNs } from './support.js';

const N = 200;
const RULES = 100;
const REPS = 3;
const NAIVE_N = 50;
const TARGET_MS = 5000;

/** The one rule that lets the bench's check through: q<N> fetches the world's web page. */
const webAccept = () => [{ action: 'accept' as const, dsthost: { type: 'dst4' as const, text: '203.0.113.10/32', addr: '203.0.113.10', prefix: 32 }, proto: 'tcp' as const, dstports: { start: 80, end: 80 } }];

interface StartSample {
  startMs: number;
  shutdownMs: number;
  phases: Record<string, number>;
}

/** Proof that the start made a working, filtered network, not just namespaces. */
async function verify(s: LiveSystem, names: string[]): Promise<{ namespaces: number; dispatch: number; clientRules: number; fetch: string }> {
  const live = (await runChecked(s.runner, ['ip', 'netns', 'list'])).split('\n').filter((l) => l.startsWith(s.prefix)).length;
  const fw = s.ns('sys-firewall');
  const map = await runChecked(s.runner, ['nft', '-j', 'list', 'map', 'ip', 'qubes-firewall', 'dispatch'], { netns: fw });
  const elems = (JSON.parse(map) as { nftables: { map?: { elem?: unknown[] } }[] }).nftables.find((x) => x.map)?.map?.elem?.length ?? 0;
  const last = names[names.length - 1]!;
  const chain = await runChecked(s.runner, ['nft', 'list', 'table', 'ip', 'qubes-firewall'], { netns: fw });
  const clientRules = chain.split('\n').filter((l) => /comment "q\d+ rule/.test(l)).length;
  const fetch = await s.fetch(last, 'http://203.0.113.10/', 3000);
  return { namespaces: live, dispatch: elems, clientRules, fetch: fetch.slice(0, 40) };
}

async function qnetStart(): Promise<{ samples: StartSample[]; check: Awaited<ReturnType<typeof verify>> | undefined }> {
  return withLive('qlc', async (s) => {
    // What a user gets: without the tests' ICMP rate-limit sysctl (one more process per app qube).
    delete (s.env as Record<string, string>)['QNET_NO_ICMP_RATELIMIT'];
    await s.ok('init');
    // work, personal and untrusted stay halted; the 200 bench qubes are q1 … q200.
    const names = await seedQubes(s.dir, { count: N, rules: RULES, extra: webAccept });
    const timer = new PhaseTimer()
      .wrap(FileStore.prototype, 'update', 'store update (contains all below)')
      .wrap(Engine.prototype, 'converge', ' engine converge')
      .wrap(NetnsBackend.prototype, 'bringUp', '  namespaces + links + first rules (nft -f per namespace)')
      .wrap(NetnsExecutor.prototype, 'links', '  links read back')
      .wrap(NetnsExecutor.prototype, 'relink', '  relinks')
      .wrap(Converger.prototype as unknown as Record<string, unknown>, 'applyRules', '  resolve + compile + diff + load after bring-up')
      .wrap(DnsAnswers.prototype, 'resolve', '   dns (in sys-net)')
      .wrap(NetnsExecutor.prototype, 'apply', '   rule deltas (diff + nft -f)');
    const samples: StartSample[] = [];
    let check: Awaited<ReturnType<typeof verify>> | undefined;
    try {
      for (let r = 0; r < REPS; r++) {
        timer.reset();
        const t0 = performance.now();
        await within('qnet start', 60_000, () => s.ok(['start', ...names]));
        const startMs = performance.now() - t0;
        const phases = timer.snapshot();
        if (r === 0) {
          check = await verify(s, names);
          // A fast start that did not filter (or did not connect) is no result: stop here.
          if (!check.fetch.startsWith('ok:') || check.dispatch !== names.length)
            throw new Error(`the start did not make the network it should (want fetch ok: and ${names.length} dispatch elements): ${JSON.stringify(check)}`);
        }
        const t1 = performance.now();
        await within('qnet shutdown --all', 60_000, () => s.ok('shutdown --all'));
        samples.push({ startMs, shutdownMs: performance.now() - t1, phases });
      }
    } finally {
      timer.restore();
    }
    return { samples, check };
  });
}

/** The baselines' plan: sys-net, sys-firewall and q1 … qN running, no world (uplink 'none'). */
function appPlan(n: number): NetPlan {
  const m = defaultLayout();
  for (const q of ['work', 'personal', 'untrusted', 'vault']) m.qubes.delete(q);
  for (let i = 1; i <= n; i++) m.qubes.set(appName(i), newQube(9 + i, appName(i), 'blue'));
  for (const q of m.qubes.values()) q.state = 'Running';
  return planNetwork(m, { uplink: 'none' });
}

/** Floor: the netns backend brings up the same plan with no rules (namespaces, sysctls, links). */
async function bareBringUp(): Promise<number[]> {
  const out: number[] = [];
  const plan = appPlan(N);
  const names = plan.nodes.map((n) => n.name);
  for (let r = 0; r < REPS; r++)
    await withNs('qlb', async (prefix) => {
      const be = new NetnsBackend({ runner: new NodeRunner(), prefix });
      const t0 = performance.now();
      await within('bare bring-up', 60_000, () => be.bringUp(plan, names));
      out.push(performance.now() - t0);
      await be.tearDown(names);
    });
  return out;
}

/** The naive way: one process per namespace, per link line, per sysctl (support.ts naiveBringUp). */
async function naiveBaseline(): Promise<number[]> {
  const plan = appPlan(NAIVE_N);
  const out: number[] = [];
  for (let r = 0; r < REPS; r++)
    await withNs('qln', async (prefix) => {
      const t0 = performance.now();
      await within('naive bring-up', 120_000, () => naiveBringUp(new NodeRunner(), plan, prefix));
      out.push(performance.now() - t0);
    });
  return out;
}

async function main(): Promise<void> {
  if (skipWithoutKernel('lifecycle')) return;
  const loadBefore = load();
  const naive = await naiveBaseline();
  const bare = await bareBringUp();
  const { samples, check } = await qnetStart();
  const startMs = median(samples.map((x) => x.startMs));
  const shutdownMs = median(samples.map((x) => x.shutdownMs));
  const bareMs = median(bare);
  const naivePerQube = median(naive) / (NAIVE_N + 2);
  const mid = [...samples].sort((a, b) => a.startMs - b.startMs)[Math.floor(samples.length / 2)]!;

  const rows: (string | number)[][] = [
    ['what', 'N', 'ms (median of 3)', 'per qube ms', 'vs qnet start'],
    [`qnet start q1 … q${N} (${RULES} rules each, cold: + sys-net, sys-firewall, world)`, N, round(startMs), round(startMs / N, 2), '1.0×'],
    ['  baseline: same namespaces + links, no rules (netns backend)', N + 2, round(bareMs), round(bareMs / (N + 2), 2), `${round(bareMs / startMs, 2)}×`],
    [`  baseline: one ip/sysctl process per step (measured at N=${NAIVE_N})`, NAIVE_N + 2, round(median(naive)), round(naivePerQube, 2), ''],
    [`  baseline: one process per step, extrapolated to N=${N}`, N + 2, round(naivePerQube * (N + 2)), round(naivePerQube, 2), `${round((naivePerQube * (N + 2)) / startMs, 2)}×`],
    ['qnet shutdown --all', N + 2, round(shutdownMs), round(shutdownMs / (N + 2), 2), ''],
  ];
  console.log(table(rows));
  console.log('\nwhere the start time goes (median run, ms; nested by indentation):');
  console.log(table([['phase', 'ms'], ...Object.entries(mid.phases).map(([k, v]) => [k, v])]));
  console.log(`\ncheck after the first start: ${JSON.stringify(check)}`);
  const ok = startMs < TARGET_MS;
  console.log(`target: ${N} qubes started in < ${TARGET_MS} ms: ${ok ? 'met' : 'MISSED'} (${round(startMs)} ms)`);
  console.log(
    JSON.stringify({
      bench: 'lifecycle',
      n: N,
      rulesPerQube: RULES,
      startMs: round(startMs),
      startSamplesMs: samples.map((x) => round(x.startMs)),
      shutdownMs: round(shutdownMs),
      phases: mid.phases,
      baseline: { bareBringUpMs: round(bareMs), naivePerQubeMs: round(naivePerQube, 2), naiveN: NAIVE_N, naiveMs: round(median(naive)) },
      check,
      target: { maxMs: TARGET_MS, ok },
      load: { before: loadBefore, after: load() },
    }),
  );
}

await main();
