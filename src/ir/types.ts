// The IR: typed nftables. The compiler produces it; the emitters (emit-text.ts, emit-json.ts) turn it
// into what `nft -f` loads; the simulator (src/sim) interprets the very same objects. Anything the
// kernel would see is expressible here, and nothing else: no strings of nft syntax travel around.
//
// One Ruleset describes everything loaded into one namespace (one qube).

export type Family = 'ip' | 'ip6' | 'inet';
export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type ChainType = 'filter' | 'nat';

/**
 * Where a rule came from, so every verdict and every counter maps back to something a user wrote:
 * structured (model/origin.ts), and in the kernel as the rule's comment (formatOrigin).
 */
export type { Origin } from '../model/origin.js';
import type { Origin } from '../model/origin.js';

// ---- Values -----------------------------------------------------------------------------------

/** The left-hand side of a match: a packet or metadata field. */
export type Field =
  | 'ip saddr' | 'ip daddr' | 'ip protocol'
  | 'ip6 saddr' | 'ip6 daddr' | 'ip6 nexthdr'
  | 'meta l4proto' | 'meta nfproto'
  | 'tcp dport' | 'udp dport' | 'th dport' | 'tcp sport' | 'udp sport'
  | 'icmp type' | 'icmpv6 type'
  | 'iifname' | 'oifname' | 'iifgroup' | 'oifgroup'
  | 'ct state' | 'ct status';

export type CtState = 'invalid' | 'established' | 'related' | 'new' | 'untracked';

export type Value =
  | { kind: 'int'; n: number }
  /** Symbolic constants nft knows by name: `tcp`, `icmpv6`, `admin-prohibited`, `echo-request`, `ipv4`. */
  | { kind: 'sym'; s: string }
  /** An address or prefix. `len` omitted = a single address. */
  | { kind: 'addr'; addr: string; len?: number }
  | { kind: 'range'; lo: number; hi: number }
  | { kind: 'str'; s: string }
  /** Interface name wildcard: `"vif*"`. */
  | { kind: 'wildcard'; prefix: string }
  | { kind: 'ct'; states: CtState[] };

/** Element keys of a set or map: one value, or a concatenation (`ip daddr . tcp dport`). */
export type Key = Value | Value[];

// ---- Rules ------------------------------------------------------------------------------------

export type Match =
  /** `field op value`; `==` with an anonymous set means membership (`tcp dport { 80, 443 }`). */
  | { kind: 'cmp'; field: Field; op: '==' | '!='; value: Value }
  | { kind: 'in-anon'; field: Field; op: '==' | '!='; values: Value[] }
  /** `field [. field…] [!=] @set` */
  | { kind: 'in-set'; fields: Field[]; op: '==' | '!='; set: string };

export type RejectWith =
  | { type: 'icmp'; code: 'admin-prohibited' | 'host-prohibited' | 'port-unreachable' | 'net-unreachable' }
  | { type: 'icmpv6'; code: 'admin-prohibited' | 'port-unreachable' | 'no-route' | 'addr-unreachable' }
  | { type: 'icmpx'; code: 'admin-prohibited' | 'port-unreachable' }
  | { type: 'tcp reset' };

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'continue' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string }
  | { kind: 'reject'; with?: RejectWith };

export type Statement =
  | { kind: 'counter' }
  /**
   * `log [prefix "…"] [group N [queue-threshold Q]]`: with a group, the packet goes to NFLOG group N
   * (read by the drop log). The kernel batches up to Q messages (default 100) into one netlink
   * message, which a reader with a small buffer cuts: the drop log asks for 1.
   */
  | { kind: 'log'; prefix?: string; group?: number; queueThreshold?: number }
  /**
   * `limit rate N/per burst B packets`: over the rate, the kernel skips the rest of the rule (as a
   * failed match). Only in rules without a verdict (validate.ts), so it never changes one; the
   * simulator, which has no clock, treats it as passing.
   */
  | { kind: 'limit'; rate: number; per: 'second' | 'minute'; burst: number }
  /** Destination NAT. `port` only with a transport match earlier in the rule. */
  | { kind: 'dnat'; family?: 'ip' | 'ip6'; addr: string; port?: number }
  | { kind: 'masquerade' }
  /** `field [. field…] vmap @map`: look up a verdict map; no element = fall through to the next rule. */
  | { kind: 'vmap'; fields: Field[]; map: string }
  | { kind: 'verdict'; verdict: Verdict };

export interface IrRule {
  matches: Match[];
  /** Executed in order; a verdict statement, if any, is last. */
  stmts: Statement[];
  origin: Origin;
  /** nft `comment "…"` on the rule (≤ 128 bytes): formatOrigin(origin) for compiled rules. */
  comment?: string;
}

// ---- Chains, sets, maps, tables ---------------------------------------------------------------

export interface BaseChainSpec {
  type: ChainType;
  hook: Hook;
  /** Numeric priority; emitted as a number (raw = -300, dstnat = -100, filter = 0, srcnat = 100). */
  priority: number;
  policy: 'accept' | 'drop';
}

export interface Chain {
  name: string;
  base?: BaseChainSpec;
  rules: IrRule[];
  comment?: string;
  /**
   * Reserved for users (Qubes' custom-input / custom-forward): qnet declares the chain so jumps
   * resolve, but never flushes or rewrites its rules. Emitted as `add chain` only.
   */
  userOwned?: boolean;
}

/** nft set/map key types. */
export type SetKeyType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto' | 'ifname' | 'mark';

export interface SetElement {
  key: Key;
  comment?: string;
}

export interface NamedSet {
  kind: 'set';
  name: string;
  /** One type, or several for a concatenation. */
  keyType: SetKeyType[];
  /** `interval` for prefixes/ranges. */
  interval: boolean;
  elements: SetElement[];
  comment?: string;
}

export interface MapElement {
  key: Key;
  /** For verdict maps. */
  verdict?: Verdict;
  comment?: string;
}

export interface NamedMap {
  kind: 'map';
  name: string;
  keyType: SetKeyType[];
  interval: boolean;
  /** Only verdict maps for now: dispatch by source address. */
  valueType: 'verdict';
  elements: MapElement[];
  comment?: string;
}

export interface Table {
  family: Family;
  name: string;
  /** Order: sets and maps are emitted before chains so references resolve. */
  sets: (NamedSet | NamedMap)[];
  chains: Chain[];
  comment?: string;
}

/** Everything qnet loads into one namespace. Tables qnet does not own are never touched. */
export interface Ruleset {
  tables: Table[];
}

// Named priorities (nft's keywords for the standard values).
export const PRIORITY = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;
