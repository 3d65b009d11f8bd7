// One rule edit with 1,000 running app qubes × 100 rules behind sys-firewall: `qnet firewall qN add …`
// sent through DaemonClient to an in-process Daemon (EngineStore over a FileStore, the engine's
// fast path: compileClient + an overlay + one nft -f), then checked in the kernel with a TCP probe
// from the qube through sys-firewall (see allowed()). Two times per edit: `in kernel`, from the
// command to the end of the nft -f that loaded it (the rule is enforced from then on; the target:
// median under 25 ms, p99 under 50 ms), and `reply`, to the daemon's answer (after the store is written and, for a
// tightening edit, the conntrack table was searched for flows to cut). The overlay's leftovers are
// removed after the reply (Engine.tidy, off the hot path): its time is reported beside. Edits run
// paced (a pause after each, as a user edits; the target is judged on these) and then in a burst
// (back to back, as a script edits: each may wait for the previous one's tidying, reported).
// Beside it in the same run: the same kind of edit through the offline CLI (no daemon: it reads
// qubes.json and the edited qube's file, and loads one delta: bench/offline-rule-edit.bench.ts
// compares that with a full converge), and the daemon's own start (adopt + full load of every node).
// Where a paced edit's time went, in order, summing to `in kernel`: `request` (HTTP, the op's input
// checked, the daemon's queue), `read` (the store's read of qubes.json and the edited file, the op's
// own work, the look for dead netvms), `dns` (names of the edited rules with no answer yet),
// `compile` (compileClient, patching the loaded ruleset), `diff` (the overlay transaction's text),
// `nft` (its load through the netvm's nft session, kernel commit included).
// Measured 2026-12-06, shared 2-core machine: before the rules-only store update and the per-table
// set index, median 51.7 ms to the kernel; after, 44.7-47 ms (nft 25). With the session's cache
// warmed after each load (no dump of 3,000 sets and 2,000 chains per edit) and no DNS lookup in front
// of the kernel: 39.1 ms (request 3.9, read 7.6, compile 7.7, diff 3.6, nft 14.3, of which the
// kernel's commit ≈ 9: it checks every rule a base chain reaches whenever a rule is added), max
// 112 ms (was 520-625: a DNS round trip). The rest is spread over many 1-4 ms steps of JavaScript.
// Then with qubes-firewall sharded (8 tables of ≈125 clients: a commit checks one shard's rules)
// and the daemon warm when its start returns: 20.4-21.5 ms median in quiet runs (request 2, read
// 5.5, compile 4-5.5, diff 0.7, nft 5-6.4), 26.6-31.5 in runs on a busy machine; unsharded in the
// same conditions (QNET_FIREWALL_SHARD=99999) 30 ms, nft 10-14.5. Max 62-139 ms: whole-machine
// stalls where compile and nft are slow at once, and major collections (the target's p99 < 50 is
// not met). Then with the young generation collected between edits (it was scavenged inside one
// edit in three: 7-13 ms), the other qubes' rules taken as parsed (no lazy accessors: 4-12 ms),
// and the DNS refresh asking from an index through a long-lived resolver (it read every qube's
// rules, 30 ms, and forked the daemon): 100 paced edits, median 15.5-16.9 ms, p99 29.7-35.3 ms
// (16.3 and 46.3 with one of the two cores kept busy). The first edit after the start stays the
// slowest (35-90 ms: its nft load takes 20-47 ms, not 6; not explained yet). Run with
// QNET_CPU_PROFILE=FILE to see what ran inside the paced edits (FILE.windows.json): the profiler
// itself adds about 5 ms to each (median 20.8-23 ms with it).
// Run: npx tsx bench/rule-edit.bench.ts   (root; every namespace is removed, even on failure)
import { performance } from 'node:perf_hooks';
import { NetnsBackend } from '../src/backend/netns/netns-backend.js';
import { NetnsExecutor } from '../src/backend/netns/netns-executor.js';
import { WORLD_HOSTS } from '../src/backend/netns/world.js';
import { DaemonClient } from '../src/daemon/client.js';
import { DnsAnswers } from '../src/engine/dns-refresh.js';
import { Engine } from '../src/engine/engine.js';
import { Daemon } from '../src/daemon/server.js';
import { FileStore } from '../src/store/file-store.js';
import { readRuntime } from '../src/store/runtime-file.js';
import type { LiveSystem } from '../test/kernel/system.js';
import { appName, clockUs, cpuProfile, load, median, percentile, PhaseTimer, round, seedQubes, skipWithoutKernel, table, within, withLive } from './support.js';

const QUBES = 1000;
const RULES = 100;
/**
 * Paced edits: adds on distinct qubes, then as many deletes. 100 in all, so that the p99 is not
 * simply the slowest edit (nearest rank: the 99th of 100).
 */
const PACED = 50;
/** Burst edits, the same way (reported, not judged). */
const BURST = 15;
/** Between paced edits: the daemon tidies up after each reply (Engine.tidy, ~30 ms here). */
const PAUSE_MS = 250;
/** The burst's edits use their own rules (k from here on), on other qubes than the paced ones. */
const BURST_FROM = 100;
const OFFLINE_REPS = 3;
const TARGET_MS = 25;
const TARGET_P99_MS = 50;

/**
 * The k-th edit's rule: the world's web host on a port no generated rule opens (they open
 * 203.0.113.10 only by name, on 8000-8199), so whether the kernel has it is one probe away.
 */
const editPort = (k: number) => 4400 + k;
const editWords = (k: number) => ['accept', WORLD_HOSTS.web.v4, 'tcp', String(editPort(k))];
/** Spread over the whole list of clients (first, middle, last …). */
const editQube = (k: number) => 1 + ((k * 397) % QUBES);

/**
 * Whether sys-firewall's kernel lets q<i> open web:<port>: through, the world's host answers with a
 * reset (ECONNREFUSED: nothing listens there); refused by the qube's rules, sys-firewall answers
 * ICMP admin-prohibited (EHOSTUNREACH). A probe, not `nft list chain`: with 100k rules loaded,
 * nft 1.0.6 reads the whole ruleset for any listing (10 s here); `nft list set` is fast but the
 * new rule need not be in a set.
 */
async function allowed(s: LiveSystem, i: number, k: number): Promise<boolean> {
  const r = await s.tcpProbe(appName(i), WORLD_HOSTS.web.v4, editPort(k), { timeoutMs: 3000 });
  return r.result === 'error:ECONNREFUSED' || r.result === 'ok';
}

interface Edit {
  mode: 'paced' | 'burst';
  kind: 'add' | 'del';
  qube: string;
  totalMs: number;
  /** From the command to the end of the nft -f that loaded the edit. */
  kernelMs: number;
  /** Engine.tidy() after this edit (from the reply to the next edit's start). */
  tidyMs: number;
  /** Tidying that ran inside this edit's window (a previous edit's, not yet done). */
  tidyInsideMs: number;
  /** The way to the kernel, in order (they add up to kernelMs): */
  /** the client's request to the store's update (HTTP, the op's input checked, the daemon's queue); */
  requestMs: number;
  /** the store's read (qubes.json, the edited qube's file) and the op's own work, to the engine; */
  readMs: number;
  /** names resolved for the edited rules; */
  dnsMs: number;
  /** compileClient and patching the loaded ruleset; */
  compileMs: number;
  /** the overlay transaction's diff and text; */
  diffMs: number;
  /** its load through the node's nft session. */
  nftMs: number;
  /** After the kernel, to the reply: flows cut (a tightening edit), the store written, the answer sent. */
  afterMs: number;
  converges: number;
  inKernel: boolean;
}

/** Milliseconds of `bucket` calls that overlap [from, to]. */
const overlap = (t: PhaseTimer, bucket: string, from: number, to: number) =>
  (t.spans.get(bucket) ?? []).reduce((n, [a, b]) => n + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0);

function split(t: PhaseTimer, t0: number, totalMs: number, mode: Edit['mode'], kind: Edit['kind'], qube: string, probe: { ok: boolean }): Edit {
  // The edit's own load: the last nft -f that ended inside applyRuleEdits.
  const edit = t.spans.get('applyRuleEdits')?.[0];
  const loads = (t.spans.get('loadRules') ?? []).filter(([a, b]) => edit && a >= edit[0] && b <= edit[1]);
  const kernelAt = loads.at(-1)?.[1] ?? NaN;
  const storeAt = t.spans.get('store.update')?.[0]?.[0] ?? NaN;
  const engineAt = edit?.[0] ?? NaN;
  // A previous edit's tidying this edit waited for (the daemon serialises them). Not this edit's
  // own, which starts as the reply goes out: in this one process it may run before the bench's
  // client has read the reply, so the reply times of this bench include some of it.
  const tidyInsideMs = overlap(t, 'tidy', t0, kernelAt);
  const nft = loads.reduce((n, [a, b]) => n + b - a, 0);
  const apply = overlap(t, 'apply', engineAt, kernelAt); // diff + render + nft -f
  const dns = overlap(t, 'resolve', engineAt, kernelAt);
  return {
    mode,
    kind,
    qube,
    totalMs,
    kernelMs: kernelAt - t0,
    tidyMs: (t.spans.get('tidy') ?? []).filter(([a]) => a > kernelAt).reduce((n, [a, b]) => n + b - a, 0),
    tidyInsideMs,
    requestMs: storeAt - t0,
    readMs: engineAt - storeAt,
    dnsMs: dns,
    compileMs: kernelAt - engineAt - apply - dns,
    diffMs: apply - nft,
    nftMs: nft,
    afterMs: totalMs - (kernelAt - t0),
    converges: t.calls.get('converge') ?? 0,
    get inKernel() {
      return probe.ok;
    },
  };
}

async function main(): Promise<void> {
  if (skipWithoutKernel('rule-edit')) return;
  const loadBefore = load();
  const result = await withLive('qre', async (s) => {
    // QNET_FIREWALL_SHARD=99999: the same bench with qubes-firewall in one table (no shards).
    if (process.env['QNET_FIREWALL_SHARD']) s.env['QNET_FIREWALL_SHARD'] = process.env['QNET_FIREWALL_SHARD'];
    delete (s.env as Record<string, string>)['QNET_NO_ICMP_RATELIMIT'];
    await s.ok('init');
    const names = await seedQubes(s.dir, { count: QUBES, rules: RULES });
    // Before: no edited qube may reach the ports the edits open (the probe must be able to tell).
    let t0 = performance.now();
    await within('start 1000 qubes', 600_000, () => s.ok(['start', ...names]));
    const startAllMs = performance.now() - t0;

    const timer = new PhaseTimer()
      .wrap(FileStore.prototype, 'update', 'store.update')
      .wrap(Engine.prototype, 'applyRuleEdits')
      .wrap(Engine.prototype, 'converge')
      .wrap(Engine.prototype, 'noticeDeaths')
      .wrap(DnsAnswers.prototype, 'resolve')
      .wrap(NetnsExecutor.prototype, 'apply')
      .wrap(NetnsBackend.prototype, 'loadRules')
      .wrap(Engine.prototype, 'tidy');
    for (const k of [0, PACED]) if (await allowed(s, editQube(k), k)) throw new Error(`q${editQube(k)} reaches port ${editPort(k)} before any edit`);
    const runtime = (await readRuntime(s.dir, s.env))!;
    const daemon = new Daemon({ stateDir: s.dir, runtime });
    const edits: Edit[] = [];
    /** The paced edits, request to kernel, on the profiler's clock (QNET_CPU_PROFILE). */
    const windows: [number, number][] = [];
    const offline: { ms: number; converges: number; inKernel: boolean; phases: Record<string, number> }[] = [];
    let daemonStartMs = 0;
    try {
      t0 = performance.now();
      await within('daemon start', 600_000, () => daemon.start());
      daemonStartMs = performance.now() - t0;
      const client = await DaemonClient.connect(s.dir);
      let finish: (() => void) | undefined;
      if (!client) throw new Error('the daemon does not answer');
      /** One edit; its write-up waits for the next edit (or the end), to include the tidying after it. */
      const edit = async (mode: Edit['mode'], kind: Edit['kind'], k: number) => {
        const i = editQube(k);
        const [action, host, proto, port] = editWords(k);
        const input = { qube: appName(i), rule: `action=${action} dsthost=${host} proto=${proto} dstports=${port}` };
        finish?.();
        timer.reset();
        const t = performance.now();
        const r = await within('rule edit', 60_000, () => client.request('POST', `/v1/ops/firewall.${kind}`, input));
        const ms = performance.now() - t;
        if (r.status !== 200) throw new Error(`firewall.${kind} ${JSON.stringify(input)}: ${JSON.stringify(r.body)}`);
        const probe = { ok: false };
        finish = () => {
          const e = split(timer, t, ms, mode, kind, appName(i), probe);
          edits.push(e);
          if (mode === 'paced') windows.push([clockUs(t), clockUs(t + e.kernelMs)]);
        };
        return async () => {
          const open = await allowed(s, i, k);
          probe.ok = kind === 'add' ? open : !open;
        };
      };
      // Paced: as a user edits, one at a time, the kernel probed after each; the daemon is idle when
      // the next one comes (PAUSE_MS later), its tidying done.
      const stopProfile = await cpuProfile();
      for (const kind of ['add', 'del'] as const)
        for (let k = 0; k < PACED; k++) {
          await (await edit('paced', kind, k))();
          await new Promise((r) => setTimeout(r, PAUSE_MS));
        }
      finish?.(); // the last paced edit's write-up: its window is in the profile
      finish = () => {};
      await stopProfile(windows);
      // Burst: as a script edits, back to back; each edit may wait for the previous one's tidying.
      for (const kind of ['add', 'del'] as const) {
        const probes: (() => Promise<void>)[] = [];
        for (let k = BURST_FROM; k < BURST_FROM + BURST; k++) probes.push(await edit('burst', kind, k));
        for (const p of probes) await p();
      }
      await new Promise((r) => setTimeout(r, PAUSE_MS));
      finish?.();
    } finally {
      await daemon.stop();
    }
    // Baseline: the offline CLI converges in full for one edit (same kind of rule, other qubes).
    for (let r = 0; r < OFFLINE_REPS; r++) {
      const k = PACED + r;
      const i = editQube(k);
      timer.reset();
      const t = performance.now();
      await within('offline edit', 600_000, () => s.ok(['firewall', appName(i), 'add', ...editWords(k)]));
      const ms = performance.now() - t;
      offline.push({ ms, converges: timer.calls.get('converge') ?? 0, inKernel: await allowed(s, i, k), phases: timer.snapshot() });
    }
    timer.restore();
    return { startAllMs, daemonStartMs, edits, offline };
  });

  const { edits, offline } = result;
  const col = (f: (e: Edit) => number, xs = edits) => round(median(xs.map(f)), 1);
  const rows: (string | number)[][] = [['path', 'n', 'in kernel (median)', 'p90', 'max', '= request', '+ read', '+ dns', '+ compile', '+ diff', '+ nft', 'reply', 'p90', 'tidy after']];
  for (const [mode, kind] of [['paced', 'add'], ['paced', 'del'], ['burst', 'add'], ['burst', 'del']] as const) {
    const xs = edits.filter((e) => e.kind === kind && e.mode === mode);
    rows.push([
      `daemon, ${mode}: firewall qN ${kind}`,
      xs.length,
      col((e) => e.kernelMs, xs),
      round(percentile(xs.map((e) => e.kernelMs), 90)),
      round(Math.max(...xs.map((e) => e.kernelMs))),
      col((e) => e.requestMs, xs),
      col((e) => e.readMs, xs),
      col((e) => e.dnsMs, xs),
      col((e) => e.compileMs, xs),
      col((e) => e.diffMs, xs),
      col((e) => e.nftMs, xs),
      col((e) => e.totalMs, xs),
      round(percentile(xs.map((e) => e.totalMs), 90)),
      col((e) => e.tidyMs, xs),
    ]);
  }
  const offMs = median(offline.map((o) => o.ms));
  rows.push(['beside: offline CLI edit (no daemon)', offline.length, '', '', '', '', '', '', '', '', '', round(offMs), '', '']);
  rows.push(['baseline: daemon start (adopt, full load)', 1, '', '', '', '', '', '', '', '', '', round(result.daemonStartMs), '', '']);
  console.log(table(rows));
  const paced = edits.filter((e) => e.mode === 'paced');
  const burst = edits.filter((e) => e.mode === 'burst');
  const editMs = median(paced.map((e) => e.kernelMs));
  const replyMs = median(paced.map((e) => e.totalMs));
  const tidyInside = paced.filter((e) => e.tidyInsideMs > 0);
  const allInKernel = edits.every((e) => e.inKernel) && offline.every((o) => o.inKernel);
  const fastOnly = edits.every((e) => e.converges === 0);
  console.log(`\nsetup: qnet start of ${QUBES} qubes × ${RULES} rules (offline CLI) took ${round(result.startAllMs)} ms`);
  console.log(`every edit checked in the kernel (a TCP probe from the qube: refused by sys-firewall before, through after an add, refused again after the del): ${allInKernel}; fast path only (no converge): ${fastOnly}`);
  console.log(`offline edit phases (median run): ${JSON.stringify(offline[Math.floor(offline.length / 2)]?.phases)}`);
  console.log(`paced: edits that waited for a previous edit's tidying: ${tidyInside.length} of ${paced.length}${tidyInside.length ? ` (${tidyInside.map((e) => round(e.tidyInsideMs)).join(', ')} ms)` : ''}`);
  console.log(`burst: median ${round(median(burst.map((e) => e.kernelMs)))} ms to the kernel, ${round(median(burst.map((e) => e.tidyInsideMs)))} ms of it waiting for the previous edit's tidying`);
  const p99 = percentile(paced.map((e) => e.kernelMs), 99);
  const ok = editMs < TARGET_MS && p99 < TARGET_P99_MS && allInKernel;
  console.log(
    `target: one edit in the kernel in < ${TARGET_MS} ms median, < ${TARGET_P99_MS} ms p99: ${ok ? 'met' : 'MISSED'} (median ${round(editMs)} ms, p99 ${round(p99)} ms to the kernel, ${round(replyMs)} ms to the reply; the offline CLI's edit took ${round(offMs)} ms)`,
  );
  console.log(
    JSON.stringify({
      bench: 'rule-edit',
      qubes: QUBES,
      rulesPerQube: RULES,
      editMs: round(editMs),
      editP90Ms: round(percentile(paced.map((e) => e.kernelMs), 90)),
      editP99Ms: round(p99),
      replyMs: round(replyMs),
      replyP90Ms: round(percentile(paced.map((e) => e.totalMs), 90)),
      tidyMs: col((e) => e.tidyMs, paced),
      tidyInsideEdits: tidyInside.length,
      burst: { editMs: col((e) => e.kernelMs, burst), replyMs: col((e) => e.totalMs, burst), waitedForTidyMs: col((e) => e.tidyInsideMs, burst) },
      // Medians of the paced edits' way to the kernel, in order.
      split: {
        requestMs: col((e) => e.requestMs, paced),
        readMs: col((e) => e.readMs, paced),
        dnsMs: col((e) => e.dnsMs, paced),
        compileMs: col((e) => e.compileMs, paced),
        diffRenderMs: col((e) => e.diffMs, paced),
        nftMs: col((e) => e.nftMs, paced),
        afterKernelToReplyMs: col((e) => e.afterMs, paced),
      },
      samplesMs: edits.map((e) => round(e.kernelMs)),
      // Per edit: in kernel = request + read + dns + compile + diff + nft; reply; tidy after; converges (a timer's, if any ran meanwhile).
      perEdit: edits.map((e) => [e.mode, e.kind, e.qube, ...[e.kernelMs, e.requestMs, e.readMs, e.dnsMs, e.compileMs, e.diffMs, e.nftMs, e.totalMs, e.tidyMs].map((x) => round(x)), e.converges]),
      inKernel: allInKernel,
      fastPathOnly: fastOnly,
      baseline: { offlineEditMs: round(offMs), offlineSamplesMs: offline.map((o) => round(o.ms)), daemonStartMs: round(result.daemonStartMs), startAllMs: round(result.startAllMs) },
      target: { medianMs: TARGET_MS, p99Ms: TARGET_P99_MS, ok },
      load: { before: loadBefore, after: load() },
    }),
  );
}

await main();
