// What the engine asks of an executor. Two implement it: the netns backend (real namespaces, veths,
// nft, conntrack) and the sim backend (the same operations on in-memory state that the simulator
// reads). The engine never knows which one it drives.
import type { Ruleset } from '../ir/types.js';
import type { NetPlan } from '../model/netplan.js';
import type { Origin } from '../model/origin.js';
import type { DroppedPacket } from '../model/drop-log.js';

/** One rule's counter, mapped back to where the rule came from (its nft comment = IR origin). */
export interface RuleCounter {
  node: string;
  family: string;
  table: string;
  chain: string;
  /** The rule's comment as the kernel holds it ('' for none). */
  comment: string;
  /** parseOrigin(comment): null for a rule qnet did not write (the user's custom-* chains). */
  origin: Origin | null;
  packets: number;
  bytes: number;
  /** When the count last grew, as far as whoever read it before knows (ms; null: unknown). The daemon fills it. */
  lastHit?: number | null;
}

/** A tracked connection in a node, as seen from its original direction. */
export interface Flow {
  family: 4 | 6;
  proto: string;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  state?: string;
}

/** A packet a node's rules refused and logged for the drop log (model/drop-log.ts), as its kernel said. */
export interface DropRecord extends DroppedPacket {
  node: string;
  /** Milliseconds since the epoch. */
  time: number;
  /** parseOrigin(the log prefix): null for a prefix qnet did not write. */
  origin: Origin | null;
}

/** A running drop reader of one node. */
export interface DropReader {
  stop(): Promise<void>;
  readonly pid: number | undefined;
}

export interface Backend {
  readonly kind: 'netns' | 'sim';
  /** Nodes (qube names, and `world`) whose namespace exists now. The kernel is the truth. */
  live(): Promise<Set<string>>;
  /**
   * Create these nodes and every link between them and already-live nodes (netvms first). `rules`
   * are loaded into the new namespaces before any link exists, so a netvm never forwards
   * unfiltered, not even for the moment between bring-up and the first load.
   */
  bringUp(plan: NetPlan, names: readonly string[], rules?: ReadonlyMap<string, Ruleset>): Promise<void>;
  /** Delete these nodes' namespaces (their veths go with them). */
  tearDown(names: readonly string[]): Promise<void>;
  /** (Re)make the link of `client` to its netvm as the plan says (netvm change, netvm restarted). */
  relink(plan: NetPlan, client: string): Promise<void>;
  /** Make a live node's connection routes (Route.forLink) what the plan says, adding and removing. */
  syncLinkRoutes(plan: NetPlan, node: string): Promise<void>;
  /** Which of these netvms each live client is linked to now (adoption, reattachment, netvm changes). */
  links(netvms: readonly string[]): Promise<Map<string, string>>;
  /**
   * Load `after` into a node atomically, as a delta from `before` (null: replace whole). User-owned
   * chains are never touched. Throws on failure, leaving the node's rules as they were. Returns what
   * the node holds now: `after`, or with `overlay` (ir/diff.ts overlayTransaction, when the change
   * allows it) `after` plus rules and sets nothing reaches any more, for a later apply to remove.
   * `keep`: the node is edited often (the daemon's rule and link edits): an executor that can keep
   * a loader ready for it (netns: an `nft -i` session) does; `'next'`: not worth making one for this
   * load, but likely the next (an app qube a link was just added to), so make it ready after.
   */
  apply(node: string, before: Ruleset | null, after: Ruleset, opts?: { overlay?: boolean; keep?: boolean | 'next' }): Promise<Ruleset>;
  counters(node: string): Promise<RuleCounter[]>;
  /**
   * How many rules each chain of the node's kernel holds, by `family table chain` (read back, not
   * remembered). Absent where the executor is its own truth (the simulator).
   */
  chainSizes?(node: string): Promise<Map<string, number>>;
  /** Tracked flows in a node, of one family or both. */
  flows(node: string, family?: 4 | 6): Promise<Flow[]>;
  deleteFlow(node: string, flow: Flow): Promise<void>;
  /**
   * Read what a live node's rules refuse and log (the drop log), until stop(); `onEnd` says why a
   * reader ended by itself. Absent where refused packets cannot be read (the simulator).
   */
  readDrops?(node: string, onDrop: (d: DropRecord) => void, onEnd: (why: string) => void): DropReader;
}
