// Shared by the benchmarks: a realistic rule mix, a state directory seeded with N app qubes, the
// naive bring-up baseline, medians, the machine's load, and the skip and cleanup of the live ones.
// Not a bench itself (scripts/bench.mjs runs only *.bench.js).
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { ipIn, Naming, planBringUp } from '../src/backend/netns/links.js';
import { runChecked, type Runner } from '../src/backend/netns/runner.js';
import { FORWARDING } from '../src/backend/netns/sysctl.js';
import type { NetPlan } from '../src/model/netplan.js';
import { deleteNamespaces, kernelUnavailable, uniquePrefix } from '../test/kernel/ns.js';
import { LiveSystem } from '../test/kernel/system.js';
import { FileStore } from '../src/store/file-store.js';
import { newQube } from '../src/model/layout.js';
import type { Label } from '../src/model/qube.js';
import type { Rule } from '../src/model/rule.js';

/** Names the world's DNS zone answers (src/backend/netns/dns-server.ts DEFAULT_ZONE). */
export const WORLD_NAMES = ['web.example.com', 'other.example.com', 'dns.example.com'] as const;

const dst4 = (a: string, prefix: number): Rule['dsthost'] => ({ type: 'dst4', text: `${a}/${prefix}`, addr: a, prefix });

/**
 * `n` rules as users write them: DNS first, then a mix of single hosts with a TCP port, networks,
 * UDP port ranges, names from the world zone, ICMP, and some drops. Deterministic per seed.
 * Addresses avoid the world's ranges (203.0.113.0/24, 192.0.2.0/24, 198.51.100.0/24), so a bench
 * chooses exactly which rule lets its own traffic through.
 */
export function realisticRules(n: number, seed: number): Rule[] {
  let x = seed >>> 0 || 1;
  const rnd = (k: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), (x >>> 8) % k);
  const octet1 = () => {
    const o = 1 + rnd(190); // 1..190: clear of 192.0.2/24, 198.51.100/24, 203.0.113/24
    return o === 10 || o === 127 ? o + 1 : o;
  };
  const host = () => `${octet1()}.${rnd(256)}.${rnd(256)}.${1 + rnd(254)}`;
  const out: Rule[] = [];
  for (let i = 0; out.length < n; i++) {
    if (i === 0) {
      out.push({ action: 'accept', specialtarget: 'dns' });
      continue;
    }
    const port = [22, 25, 53, 80, 443, 993, 1194, 3389, 5222, 8080, 8443][rnd(11)]!;
    switch (i % 10) {
      case 0:
      case 1:
      case 2:
        out.push({ action: 'accept', dsthost: dst4(host(), 32), proto: 'tcp', dstports: { start: port, end: port } });
        break;
      case 3: {
        const a = `${octet1()}.${rnd(256)}.${rnd(256)}.0`;
        out.push({ action: 'accept', dsthost: dst4(a, 24) });
        break;
      }
      case 4: {
        const a = `${octet1()}.${rnd(256)}.0.0`;
        const lo = 10000 + rnd(20000);
        out.push({ action: 'accept', dsthost: dst4(a, 16), proto: 'udp', dstports: { start: lo, end: lo + 100 } });
        break;
      }
      case 5:
        out.push({ action: 'accept', dsthost: dst4(host(), 32), proto: 'udp', dstports: { start: 53, end: 53 } });
        break;
      case 6: {
        const name = WORLD_NAMES[rnd(WORLD_NAMES.length)]!;
        out.push({ action: 'accept', dsthost: { type: 'dsthost', text: name }, proto: 'tcp', dstports: { start: 8000 + rnd(100), end: 8000 + rnd(100) + 100 } });
        break;
      }
      case 7:
        out.push({ action: 'accept', dsthost: dst4(host(), 32), proto: 'tcp', dstports: { start: 1024 + rnd(1000), end: 3024 + rnd(1000) } });
        break;
      case 8:
        out.push(i % 20 === 8 ? { action: 'accept', proto: 'icmp', icmptype: 8 } : { action: 'drop', dsthost: dst4(host(), 32) });
        break;
      default:
        out.push({ action: 'drop', dsthost: dst4(`${octet1()}.${rnd(256)}.0.0`, 16), proto: 'tcp' });
    }
  }
  return out;
}

export interface SeedOptions {
  /** App qubes q1 … qN, qid 10 … N+9, netvm sys-firewall (the default). */
  count: number;
  /** Rules per qube (null: no firewall.xml, i.e. accept everything). */
  rules: number | null;
  /** Rules appended to every qube's list, e.g. the accept a bench's own traffic needs. */
  extra?: (name: string) => Rule[];
}

export const appName = (i: number) => `q${i}`;

/** Add app qubes q1 … qN to a state directory (after `qnet init`), in one store update. */
export async function seedQubes(dir: string, o: SeedOptions): Promise<string[]> {
  const names: string[] = [];
  const labels: Label[] = ['blue', 'green', 'yellow', 'orange', 'purple', 'gray'];
  await new FileStore(dir).update((m) => {
    for (let i = 1; i <= o.count; i++) {
      const name = appName(i);
      const q = newQube(9 + i, name, labels[i % labels.length]!);
      q.rules = o.rules === null ? null : [...realisticRules(o.rules - (o.extra?.(name).length ?? 0), i), ...(o.extra?.(name) ?? [])];
      m.qubes.set(name, q);
      names.push(name);
    }
  });
  return names;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export const load = () => loadavg().map((l) => round(l, 2));

/**
 * The live benches' skip: true (after printing why, and the JSON line scripts/bench.mjs reads)
 * where namespaces cannot be made here.
 */
export function skipWithoutKernel(name: string): boolean {
  const why = kernelUnavailable();
  if (!why) return false;
  console.log(`${name} bench skipped: ${why}`);
  console.log(JSON.stringify({ bench: name, skipped: why }));
  return true;
}

/**
 * The naive bring-up baseline: the same steps the netns backend batches, but one `ip`/`sysctl`
 * process per namespace, per link line, per sysctl.
 */
export async function naiveBringUp(runner: Runner, plan: NetPlan, prefix: string): Promise<void> {
  const naming = new Naming(prefix);
  const steps = planBringUp(plan, { fresh: plan.nodes.map((n) => n.name), live: new Set() }, naming);
  for (const ns of steps.create) await runChecked(runner, ['ip', 'netns', 'add', ns]);
  for (const n of steps.forwarding)
    for (const [k, v] of Object.entries(FORWARDING)) await runChecked(runner, ['sysctl', '-q', '-w', `${k}=${v}`], { netns: naming.ns(n) });
  for (const level of steps.levels)
    for (const b of level) for (const line of b.lines) await runChecked(runner, [...ipIn(b), ...line.split(' ')]);
}

/** A fixed-width text table: the first row is the header. */
export function table(rows: readonly (readonly (string | number)[])[]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => String(r[c] ?? '').length)));
  return rows.map((r) => r.map((x, c) => (c === 0 ? String(x).padEnd(w[c]!) : String(x).padStart(w[c]!))).join('  ')).join('\n');
}

/** Run `fn` with a deadline: rejects with a message naming `what` after `ms`. */
export async function within<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([fn(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * Time spent in methods, by bucket: wraps `proto[method]` so every call adds its duration (and a
 * count) to `phases[bucket]`. Used to split an end-to-end time into where it goes without touching
 * the code under test; `restore()` puts the originals back.
 */
export class PhaseTimer {
  readonly ms = new Map<string, number>();
  readonly calls = new Map<string, number>();
  /** Each call's [start, end] (performance.now()), per bucket. */
  readonly spans = new Map<string, [number, number][]>();
  private readonly restores: (() => void)[] = [];

  wrap(proto: object, method: string, bucket = method): this {
    const p = proto as Record<string, unknown>;
    const orig = p[method] as (...a: unknown[]) => unknown;
    if (typeof orig !== 'function') throw new Error(`no method ${method}`);
    const self = this;
    p[method] = function (this: unknown, ...args: unknown[]) {
      const t0 = performance.now();
      const add = () => {
        const t1 = performance.now();
        self.ms.set(bucket, (self.ms.get(bucket) ?? 0) + t1 - t0);
        self.calls.set(bucket, (self.calls.get(bucket) ?? 0) + 1);
        self.spans.set(bucket, [...(self.spans.get(bucket) ?? []), [t0, t1]]);
      };
      const r = orig.apply(this, args);
      if (r instanceof Promise) return r.finally(add);
      add();
      return r;
    };
    this.restores.push(() => void (p[method] = orig));
    return this;
  }

  reset(): void {
    this.ms.clear();
    this.calls.clear();
    this.spans.clear();
  }

  get(bucket: string): number {
    return this.ms.get(bucket) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.ms].map(([k, v]) => [k, round(v)]));
  }

  restore(): void {
    for (const r of this.restores.reverse()) r();
    this.restores.length = 0;
  }
}

// ---- Cleanup that also runs when the bench is interrupted (scripts/bench.mjs's time limit, ^C) ----

const pending = new Set<() => Promise<void> | void>();
let installed = false;

function onInterrupt(): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      console.error(`\n${sig}: removing this bench's namespaces before exiting`);
      void Promise.allSettled([...pending].map(async (f) => f())).finally(() => process.exit(130));
    });
}

async function guarded<T>(cleanup: () => Promise<void> | void, fn: () => Promise<T>): Promise<T> {
  pending.add(cleanup);
  onInterrupt();
  try {
    return await fn();
  } finally {
    pending.delete(cleanup);
    await cleanup();
  }
}

/** test/kernel/system.ts withLiveSystem, plus cleanup on SIGINT/SIGTERM. */
export function withLive<T>(tag: string, fn: (s: LiveSystem) => Promise<T>): Promise<T> {
  const s = new LiveSystem(tag);
  return guarded(() => s.cleanup(), () => fn(s));
}

/** test/kernel/ns.ts withNamespaces, plus cleanup on SIGINT/SIGTERM. */
export function withNs<T>(tag: string, fn: (prefix: string) => Promise<T>): Promise<T> {
  const prefix = uniquePrefix(tag);
  return guarded(() => deleteNamespaces(prefix), () => fn(prefix));
}

/**
 * A node script (for `node -e` inside a qube) that counts new TCP connections to host:80 for `ms`:
 * connect, reset (no TIME_WAIT), repeat; 4 in flight; bounded in time and count. Prints {n, err, ms}.
 */
export function connectsScript(host: string, ms: number): string {
  return `const net = require('node:net'); let n = 0, err = 0; const t0 = Date.now(); const end = t0 + ${ms};
  const one = () => { if (Date.now() >= end || n + err >= 200000) return done();
    const c = net.connect({ host: ${JSON.stringify(host)}, port: 80 });
    c.on('connect', () => { n++; c.resetAndDestroy(); one(); }); c.on('error', () => { err++; c.destroy(); one(); }); };
  let live = 4; const done = () => { if (--live === 0) { console.log(JSON.stringify({ n, err, ms: Date.now() - t0 })); process.exit(0); } };
  for (let i = 0; i < 4; i++) one();`;
}

/**
 * With QNET_CPU_PROFILE=FILE: start profiling this process (every `intervalUs` µs) and return what
 * stops it and writes FILE (a .cpuprofile for Chrome's DevTools); without: a function that does
 * nothing. For a bench to profile only the part it times, not its setup.
 */
/** performance.now() (ms) on the profiler's clock (µs of CLOCK_MONOTONIC, as hrtime). */
const clockOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
export const clockUs = (ms: number): number => Math.round(ms * 1000 + clockOffsetUs);

/**
 * A CPU profile of what runs until the returned stop, into QNET_CPU_PROFILE (nothing without it).
 * `windows` given to stop (clockUs spans) go beside it as FILE.windows.json, to look at those only.
 */
export async function cpuProfile(intervalUs = 100): Promise<(windows?: [number, number][]) => Promise<void>> {
  const file = process.env['QNET_CPU_PROFILE'];
  if (!file) return async () => {};
  const { Session } = await import('node:inspector/promises');
  const inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await inspector.post('Profiler.start');
  return async (windows) => {
    const { profile } = await inspector.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    if (windows) await writeFile(`${file}.windows.json`, JSON.stringify(windows));
    inspector.disconnect();
  };
}
