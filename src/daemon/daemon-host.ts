// The host of operations inside the daemon: the daemon's store (every change reaches the kernel
// through its long-lived Engine, which knows what it loaded), its runtime, and analysis that reuses
// the names the engine already resolved — `check` explains with the addresses the kernel's sets hold.
import type { RuleCounter } from '../backend/backend.js';
import { namesToResolve } from '../compile/compile.js';
import type { Engine } from '../engine/engine.js';
import type { Effect } from '../model/effect.js';
import type { Model, Qube } from '../model/qube.js';
import { analyseWith, offlineResolver, type AnalysisMemo } from '../ops/analysis.js';
import type { ApplyStatusView, Host, KernelView } from '../ops/types.js';
import type { Ruleset } from '../ir/types.js';
import { CheckpointFile } from '../store/checkpoints-file.js';
import type { Resolutions } from '../compile/dns.js';
import type { Analysis } from '../sim/questions.js';
import type { Runtime } from '../store/runtime-file.js';
import { loadQubeFrom, type Store } from '../store/store.js';
import type { Backend } from '../backend/backend.js';
import { CounterMemory } from '../engine/counter-memory.js';
import type { DropEntry } from '../model/drop-log.js';

export interface DaemonHostParts {
  stateDir: string;
  now: () => number;
  store: Store;
  engine: Engine;
  backend: Backend;
  runtime: Runtime;
  /** Leaves the kernel holding exactly what compile() gives (Engine.tidy), queued with the changes. */
  settle: () => Promise<void>;
  /** Told of every model a change leaves (the timers and the netns watch read it). */
  changed: (model: Model, effect: Effect) => void;
  /** Arms or disarms a checkpoint's confirm timer (Host.confirmTimer; the daemon's, absent in benches). */
  confirmTimer?: (id: string, at: number | undefined) => void;
}

export class DaemonHost implements Host {
  readonly stateDir: string;
  private readonly seen = new CounterMemory();
  readonly checkpoints: CheckpointFile;
  constructor(private readonly p: DaemonHostParts) {
    this.stateDir = p.stateDir;
    this.checkpoints = new CheckpointFile(p.stateDir);
  }

  now(): number {
    return this.p.now();
  }

  read(): Promise<Model> {
    return this.p.store.load();
  }

  readQube(name: string): Promise<Qube | undefined> {
    return loadQubeFrom(this.p.store, name);
  }

  async change<T>(effect: Effect, edit: (m: Model) => T | Promise<T>): Promise<T> {
    let seen: Model | undefined;
    const r = await this.p.store.update(async (m) => {
      const x = await edit(m);
      seen = m;
      return x;
    }, effect);
    if (seen) this.p.changed(seen, effect);
    return r;
  }

  /** The last analysis and what it was made of: Explain and the matrix ask again after every event. */
  private memo?: AnalysisMemo;

  async analysis(model: Model): Promise<Analysis> {
    const now = this.p.now();
    this.memo = analyseWith(this.memo, model, await this.resolve(model, namesToResolve(model, now)), now);
    return this.memo.analysis;
  }

  /** The engine's answers (what the kernel's sets hold, with when each is asked again) where it has them; the rest asked now. */
  async resolve(model: Model, names: readonly string[]): Promise<Resolutions> {
    const { engine } = this.p;
    const known = engine.resolutions;
    const missing = names.filter((n) => !known.has(n));
    const fresh = missing.length ? await offlineResolver(model, this.stateDir).resolveAll(missing) : new Map();
    const held = (n: string) => {
      const r = known.get(n)!;
      const at = engine.dnsExpiry(n);
      return at === undefined ? r : { ...r, expiresAt: at };
    };
    return new Map([...names.filter((n) => known.has(n)).map((n) => [n, held(n)] as const), ...fresh]);
  }

  async runtime(): Promise<Runtime> {
    return this.p.runtime;
  }

  async counters(node: string): Promise<RuleCounter[]> {
    await this.p.settle(); // its rules as compiled, not a rule edit's leftovers
    const rows = await this.p.backend.counters(node);
    const hits = this.seen.stamp(node, rows, Date.now());
    return rows.map((r, i) => ({ ...r, lastHit: hits[i]! }));
  }

  drops(qube?: string): DropEntry[] | undefined {
    return this.p.engine.drops?.entries(qube);
  }

  applyStatus(): ReadonlyMap<string, ApplyStatusView> {
    return this.p.engine.status;
  }

  /** What the engine loaded, node by node; a node an overlay left untidy as it behaves (`live`). */
  kernel(): KernelView {
    const { mirror, plan } = this.p.engine;
    const rulesets = new Map<string, Ruleset>();
    for (const [node, rs] of mirror.applied) rulesets.set(node, mirror.untidy.get(node)?.live ?? rs);
    return { plan, rulesets, resolutions: this.p.engine.resolutions };
  }

  async kernelDrift(nodes: readonly string[]): Promise<string[]> {
    const read = this.p.backend.chainSizes?.bind(this.p.backend);
    if (!read) return [];
    const { mirror } = this.p.engine;
    const lines = await Promise.all(
      [...new Set(nodes)].filter((n) => mirror.applied.has(n)).map(async (node) => {
        const loaded = chainSizes(mirror.applied.get(node)!);
        let held: Map<string, number>;
        try {
          held = await read(node);
        } catch (e) {
          return [`${node}: its ruleset cannot be read back: ${(e as Error).message}`];
        }
        const out: string[] = [];
        for (const [chain, n] of loaded) {
          const k = held.get(chain);
          if (k === undefined) out.push(`${node}: chain ${chain} is missing from the kernel (qnet loaded ${rules(n)})`);
          else if (k !== n) out.push(`${node}: chain ${chain} holds ${rules(k)}, qnet loaded ${n}`);
        }
        for (const [chain, k] of held) if (!loaded.has(chain)) out.push(`${node}: chain ${chain} (${rules(k)}) is not qnet's: this explanation does not include it`);
        return out;
      }),
    );
    return lines.flat();
  }

  confirmTimer(id: string, at: number | undefined): void {
    this.p.confirmTimer?.(id, at);
  }
}

/** Rules per chain of a ruleset, keyed as the backend reads them back (`family table chain`). */
function chainSizes(rs: Ruleset): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of rs.tables) for (const c of t.chains) out.set(`${t.family} ${t.name} ${c.name}`, c.rules.length);
  return out;
}

const rules = (n: number) => `${n} rule${n === 1 ? '' : 's'}`;
