// Not a bench (no .bench suffix): where the daemon's rule edit spends its CPU, without a kernel. A
// state dir of 1,000 running app qubes × 100 rules, the daemon's engine (overlay, one long-lived
// Engine, EngineStore over a FileStore holding the lock) on a backend that renders each delta as
// nft text and keeps no kernel; then edits through the op, timed per phase.
// Run: node dist/bench/rule-edit-cpu.js   (QNET_CPU_PROFILE=FILE: a .cpuprofile of the edits alone, without the setup)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Backend } from '../src/backend/backend.js';
import { StaticResolver } from '../src/compile/dns.js';
import { EngineStore } from '../src/engine/engine-store.js';
import { Engine } from '../src/engine/engine.js';
import { loadTransaction } from '../src/ir/diff.js';
import type { Ruleset } from '../src/ir/types.js';
import { defaultLayout } from '../src/model/layout.js';
import type { Model } from '../src/model/qube.js';
import { DaemonHost } from '../src/daemon/daemon-host.js';
import { invoke } from '../src/ops/registry.js';
import { FileStore } from '../src/store/file-store.js';
import { cpuProfile, median, PhaseTimer, round, seedQubes } from './support.js';

const QUBES = 1000;
const EDITS = 40;

const dir = await mkdtemp(join(tmpdir(), 'qnet-cpu-'));
try {
  await new FileStore(dir).update((m) => {
    Object.assign(m, defaultLayout());
    for (const q of m.qubes.values()) if (q.provides_network) q.state = 'Running';
  });
  await seedQubes(dir, { count: QUBES, rules: 100 });
  await new FileStore(dir).update((m) => {
    for (const q of m.qubes.values()) if (/^q\d+$/.test(q.name) || q.provides_network) q.state = 'Running';
  });
  let live = new Set<string>();
  const backend: Backend = {
    kind: 'sim',
    live: async () => new Set(live),
    bringUp: async (_p: unknown, names: readonly string[]) => void names.forEach((n) => live.add(n)),
    tearDown: async (names: readonly string[]) => void names.forEach((n) => live.delete(n)),
    relink: async () => {},
    syncLinkRoutes: async () => {},
    links: async () => new Map(),
    apply: async (_n: string, before: Ruleset | null, after: Ruleset, opts?: { overlay?: boolean }) => {
      const { tx, holds } = loadTransaction(before, after, opts?.overlay);
      void tx.toString();
      return holds;
    },
    counters: async () => [],
    flows: async () => [],
    deleteFlow: async () => {},
  };
  const resolver = new StaticResolver({ 'web.example.com': { a: ['203.0.113.10'] }, 'other.example.com': { a: ['203.0.113.20'] }, 'dns.example.com': { a: ['203.0.113.53'] } });
  const engine = new Engine({ backend, resolver, uplink: 'none', now: () => Date.now() / 1000, overlay: true });
  const files = new FileStore(dir);
  await files.holdLock();
  let t = performance.now();
  await engine.converge(await files.load());
  console.log(`converge: ${round(performance.now() - t)} ms`);
  const store = new EngineStore(files, async () => engine, false);
  let last: Model | undefined;
  const host = new DaemonHost({ stateDir: dir, now: () => Date.now() / 1000, store, engine, backend, runtime: { backend: 'sim', prefix: 'x' }, settle: async () => {}, changed: (m) => void (last = m) });
  const scans: number[] = [];
  const timer = new PhaseTimer()
    .wrap(FileStore.prototype, 'update', 'store.update')
    .wrap(Engine.prototype, 'applyRuleEdits')
    .wrap(Engine.prototype, 'noticeDeaths')
    .wrap(Engine.prototype, 'tidy');
  const totals: number[] = [];
  const phases: Record<string, number>[] = [];
  const stopProfile = await cpuProfile();
  for (let k = 0; k < EDITS; k++) {
    const vm = `q${1 + (((k >> 1) * 397) % QUBES)}`;
    const kind = k % 2 ? 'del' : 'add';
    timer.reset();
    t = performance.now();
    await invoke(host, `firewall.${kind}`, { qube: vm, rule: `action=accept dsthost=203.0.113.10 proto=tcp dstports=${4400 + (k >> 1)}` });
    totals.push(performance.now() - t);
    phases.push(timer.snapshot());
    // What the daemon does after the reply (Daemon.armTimers): every rule's expiry, of the model the change left.
    const ts = performance.now();
    let at = Infinity;
    for (const q of last!.qubes.values()) for (const r of q.rules ?? []) if (r.expire !== undefined) at = Math.min(at, r.expire);
    scans.push(performance.now() - ts);
    if (engine.needsTidy) await engine.tidy(await files.load());
  }
  await stopProfile();
  console.log(`edit (op → store → engine → rendered delta), median of ${EDITS}: ${round(median(totals))} ms`);
  console.log(`the daemon's expiry scan of that model after the reply: median ${round(median(scans))} ms`);
  const keys = Object.keys(phases[0]!);
  console.log(Object.fromEntries(keys.map((key) => [key, round(median(phases.map((p) => p[key] ?? 0)))])));
} finally {
  await rm(dir, { recursive: true, force: true });
}
