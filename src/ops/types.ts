// The one door (DESIGN.md): every request a user can make of qnet is an Op — a name, a kind, an input
// schema and a function of (input, host). An op never prints, never reads argv, and refuses with a
// QnetError carrying a coded Diagnostic. The CLI, the daemon's socket and the web manager all call
// the same ops; none of them has logic of its own.
import type * as v from 'valibot';
import type { RuleCounter } from '../backend/backend.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { Effect } from '../model/effect.js';
import type { DropEntry } from '../model/drop-log.js';
import type { Model, Qube } from '../model/qube.js';
import type { Resolutions } from '../compile/dns.js';
import type { Analysis } from '../sim/questions.js';
import type { Runtime } from '../store/runtime-file.js';
import type { NetPlan } from '../model/netplan.js';
import type { Ruleset } from '../ir/types.js';
import type { CheckpointBook } from '../store/checkpoints-file.js';

/** `read` ops run beside changes and are open to viewers; `change` ops are serialised and need an editor. */
export type OpKind = 'read' | 'change';

export interface OpResult<O> {
  value: O;
  warnings: Diagnostic[];
}

export interface Op<S extends v.GenericSchema = v.GenericSchema, O = unknown> {
  readonly name: string;
  readonly kind: OpKind;
  /** One line for `GET /v1/ops` and the OpenAPI document. */
  readonly summary: string;
  readonly input: S;
  /** The shape of `value` (views.ts), for the API's documentation and the tests that hold ops to it. */
  readonly output?: v.GenericSchema;
  run(input: v.InferOutput<S>, host: Host): Promise<OpResult<O>>;
}

/** How a qube's rules stand in the kernel (applied, blocked-fallback, failed), where a host knows. */
export type ApplyStatusView = { state: string; diag?: Diagnostic };

/** All an operation may touch. OfflineHost (the CLI on the state directory) and DaemonHost implement it. */
export interface Host {
  readonly stateDir: string;
  /** Seconds since the epoch. */
  now(): number;
  read(): Promise<Model>;
  /** One qube with its rules, reading no other qube's rules where the store can; undefined if none. */
  readQube(name: string): Promise<Qube | undefined>;
  /** Lock, edit the model, bring the kernel to it (the path `effect` allows), write the files. */
  change<T>(effect: Effect, edit: (m: Model) => T | Promise<T>): Promise<T>;
  /** The policy of `model` as if every qube ran, with names resolved as this host resolves them. */
  analysis(model: Model): Promise<Analysis>;
  /** Answers for these names, as this host resolves them (a daemon: what its engine holds first). */
  resolve(model: Model, names: readonly string[]): Promise<Resolutions>;
  /** The runtime of the state directory; `start` chooses and records one the first time. */
  runtime(opts?: { start?: boolean }): Promise<Runtime | null>;
  /** Rule counters of a running node, with the kernel holding exactly what compile() gives. */
  counters(node: string): Promise<RuleCounter[]>;
  /** The drop log's entries, oldest first (of one qube with `qube`); undefined where no daemon reads them. */
  drops?(qube?: string): DropEntry[] | undefined;
  /** Per qube, how its rules stand in the kernel; undefined where the host does not keep it. */
  applyStatus(): ReadonlyMap<string, ApplyStatusView> | undefined;
  /**
   * What the kernel holds now, as the daemon's engine loaded it (KernelMirror): the plan of the
   * running qubes and each node's ruleset as it behaves. Undefined where no engine outlives a
   * command (offline: a fresh engine only assumes what the kernel holds, so it cannot say).
   */
  kernel?(): KernelView;
  /**
   * Where these nodes' kernels hold other chains or rule counts than qnet loaded (read back with
   * nft: a hand edit, user rules in custom-input/custom-forward, another program's table), one line
   * each; empty when they match. Absent where the executor is its own truth or nothing is kept.
   */
  kernelDrift?(nodes: readonly string[]): Promise<string[]>;
  /** Where applies keep their checkpoints (ops/checkpoints.ts); absent where nothing is real (a preview). */
  readonly checkpoints?: CheckpointBook;
  /**
   * Roll checkpoint `id` back at `at` (epoch seconds) unless confirmed first; `undefined` disarms.
   * Only a daemon has timers: absent offline.
   */
  confirmTimer?(id: string, at: number | undefined): void;
}

/** The kernel as a simulator world (Host.kernel). */
export interface KernelView {
  plan: NetPlan | undefined;
  rulesets: ReadonlyMap<string, Ruleset>;
  resolutions: Resolutions;
}

/** An op's definition, typed by its schema: `defineOp({...})` infers the input type for `run`. */
export function defineOp<S extends v.GenericSchema, O>(op: Op<S, O>): Op<S, O> {
  return op;
}

export const result = <O>(value: O, warnings: Diagnostic[] = []): OpResult<O> => ({ value, warnings });
