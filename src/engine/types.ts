// The engine's shared types: events, statuses, dependencies, and what its parts share (EngineCore).
import type { Backend, Flow } from '../backend/backend.js';
import type { Resolver } from '../compile/dns.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { DropEntry } from '../model/drop-log.js';
import type { DropLog } from './drop-log.js';
import type { NetPlan, UplinkKind } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import type { PlanOptions } from '../model/topology.js';
import type { NodeLoader } from './apply-node.js';
import type { DnsAnswers } from './dns-refresh.js';
import type { FlowCutter } from './flows.js';
import type { KernelMirror } from './kernel-mirror.js';

export type ApplyState = 'applied' | 'blocked-fallback' | 'failed';

export interface ApplyStatus {
  state: ApplyState;
  at: number;
  diag?: Diagnostic;
}

export type EngineEvent =
  | { type: 'started' | 'stopped' | 'died' | 'detached' | 'reattached'; qubes: string[] }
  | { type: 'applied'; node: string; full: boolean }
  | { type: 'blocked'; qube: string; node: string; diag: Diagnostic }
  | { type: 'apply-failed'; node: string; diag: Diagnostic }
  | { type: 'flow-cut'; node: string; flow: Flow; qube: string }
  | { type: 'warning'; diag: Diagnostic }
  /** A refused first packet, from the drop log (rate-bounded; DropLog keeps every one it read). */
  | { type: 'dropped'; entry: DropEntry };

/** The stand-in outside world's namespace and services, managed with the uplink. */
export interface WorldControl {
  ensure(plan: NetPlan): Promise<void>;
  destroy(): Promise<void>;
}

export interface EngineDeps {
  backend: Backend;
  resolver: Resolver;
  uplink: UplinkKind;
  /** What a real uplink's plan needs from the host: its resolvers, the host link tag, the device. */
  planOptions?: Pick<PlanOptions, 'upstreamDns' | 'hostTag' | 'moveDev'>;
  /** Clients per `qubes-firewall` shard (compile/names.ts FIREWALL_SHARD_CLIENTS); tests make it small. */
  shardClients?: number;
  now: () => number;
  emit?: (e: EngineEvent) => void;
  world?: WorldControl;
  /**
   * Load rule edits additions-only (ir/diff.ts overlayTransaction: no RCU wait in nft) and remove
   * what they leave behind later, with tidy(). For the daemon, which stays to tidy up.
   */
  overlay?: boolean;
  /**
   * A file naming the nodes whose kernel holds an overlay's leftovers (KernelMirror). If the daemon
   * dies before tidying, whoever converges next (the offline CLI) loads those nodes whole instead
   * of assuming they hold compile()'s ruleset.
   */
  untidyFile?: string;
  /** Where DNS answers are kept between engines, with their expiry (DnsAnswers). */
  dnsFile?: string;
  /** Keep a drop log reader per running netvm (DropLog): for the daemon, which stops them with stopAll(). */
  dropLog?: boolean;
}

export interface ConvergeOptions {
  /** What the kernel holds already (offline CLI: the model before this command's change). */
  assume?: Model;
}

/** What the engine's parts share (the Engine itself). */
export interface EngineCore {
  readonly deps: EngineDeps;
  readonly mirror: KernelMirror;
  readonly dns: DnsAnswers;
  readonly flows: FlowCutter;
  readonly loader: NodeLoader;
  readonly status: Map<string, ApplyStatus>;
  readonly drops?: DropLog;
  /** The plan of the last converge: what is up and linked (for rule-only edits). */
  plan?: NetPlan;
  handled: number;
  lastDiagnostics: Diagnostic[];
  emit(e: EngineEvent): void;
}
