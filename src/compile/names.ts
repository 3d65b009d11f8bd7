// Every name the compiler generates comes from this module (EXAMPLES.md Example 4), so that garbage
// collection, the simulator and users' scripts agree on what qnet owns.
//
// Limits (nft scanner.l and the kernel's NFT_NAME_MAXLEN = 256 bytes with the NUL):
// * nft accepts a letter, `_` or `.` first, then letters, digits and `/-_.`; src/ir/validate.ts checks it.
// * The longest generated chain is a client chain for the longest IPv6 text, 39 characters
//   (`ffff:ffff:…:ffff`): `qbs-` + 39 = 43 bytes. A packed set adds `-` + a shape tag (≤ 3) + an
//   ordinal (≤ 7 digits for 10^7 sets): 43 + 11 = 54 bytes. Far below 255, so nothing is hashed or
//   truncated (kube-proxy must hash because its names embed user strings; ours embed addresses only).
// * Comments are cut to 128 bytes by the emitter (NFT_USERDATA_MAXLEN). Rule comments are origins
//   (`qube=work rule=3`), at most 128 bytes by construction: see model/origin.ts for the grammar.

// ---- rule comments: where each kernel rule came from ------------------------------------------
// The grammar lives in model/origin.ts because the backends parse it back and may not import the
// compiler; the compiler names comments from here like everything else it names.
export { describeOrigin, formatOrigin, parseOrigin, rulesOrigin, type Origin } from '../model/origin.js';

// ---- Qubes layout: names users and scripts rely on (reference §4.4, §4.7, §5.2) ----------------
export const QUBES_TABLE = 'qubes';
export const FIREWALL_TABLE = 'qubes-firewall';
/** Reserved for users: "Qubes OS itself will never modify them" (§4.7). qnet declares, never fills. */
export const CUSTOM_INPUT = 'custom-input';
export const CUSTOM_FORWARD = 'custom-forward';
/** Anti-spoofing sets of `qubes-antispoof.nft` (§5.2). */
export const DOWNSTREAM_SET = 'downstream';
export const ALLOWED_SET = 'allowed';
/** Destinations of connections that leave a netvm through its uplink (links-up is jumped for these). */
export const LINKS_UP_SET = 'links-up-dests';
/** `l4proto . port` of the forwards a netvm DNATs: other packets leave dnat-forwards at once. */
export const FORWARD_PORTS_SET = 'forward-ports';

/**
 * Verdict maps of the flat link layout (compile/passes/flat-links.ts): each element jumps to a chain
 * named `<prefix>_<key parts>` that holds, in their order, the rules with exactly that key.
 */
export const LINK_MAPS = {
  downConn: 'links-down-conn',
  downPair: 'links-down-pair',
  downFwd: 'links-down-fwd',
  upConn: 'links-up-conn',
  upPair: 'links-up-pair',
  upGuard: 'links-up-guard',
  dnat: 'dnat-forwards-ports',
  inputConn: 'input-conn',
  inputSource: 'input-source',
  inputFwd: 'input-fwd',
} as const;

/** The chain a link map element jumps to: key parts joined by `_` (`:` is not allowed in names). */
export function linkKeyChain(prefix: string, parts: string[]): string {
  return [prefix, ...parts].join('_').replace(/:/g, '-');
}

/** Chains of table `qubes` (§5.2); the base chains carry the hook's name as Qubes does. */
export const QUBES_CHAINS = {
  prerouting: 'prerouting',
  antispoof: 'antispoof',
  dnatDns: 'dnat-dns',
  /** Port forwards' DNAT (compile/passes/links.ts); present only in netvms a forward crosses. */
  dnatForwards: 'dnat-forwards',
  /** Accepts of connections and forwards for new flows into a client (jumped for `oifgroup 2` only). */
  linksDown: 'links-down',
  /** Upward hops of connections: their accepts and guards (jumped for their destinations only). */
  linksUp: 'links-up',
  postrouting: 'postrouting',
  input: 'input',
  forward: 'forward',
} as const;

/** The base chain of table `qubes-firewall` (§4.4). */
export const FIREWALL_FORWARD = 'forward';

// ---- qnet dispatch ---------------------------------------------------------------------------
/** Verdict map from client source address to its chain: one lookup instead of a jump per client. */
export const DISPATCH_MAP = 'dispatch';

/**
 * Past this many clients a netvm's client chains are spread over shard tables (compile/passes/
 * firewall.ts): the kernel checks every rule a table's base chains reach at each commit that adds
 * a rule, so an edit then pays for its shard's clients, not for all of them.
 */
export const FIREWALL_SHARD_CLIENTS = 128;
export const FIREWALL_SHARDS_MAX = 16;
/** In a sharded `qubes-firewall`: every client's source address (the rest is dropped there). */
export const FIREWALL_CLIENTS_SET = 'clients';
const SHARD_RE = /^qubes-firewall-(0|[1-9][0-9]?)$/;

/** How many shard tables for `clients` clients (1: none, every chain in `qubes-firewall` itself). */
export function firewallShards(clients: number, perShard = FIREWALL_SHARD_CLIENTS): number {
  return Math.min(FIREWALL_SHARDS_MAX, Math.max(1, Math.ceil(clients / perShard)));
}

/** The table a client chain for `addr` (canonical) lives in, of `shards` (an FNV-1a hash of the address). */
export function firewallTableFor(addr: string, shards: number): string {
  if (shards <= 1) return FIREWALL_TABLE;
  let h = 0x811c9dc5;
  for (let i = 0; i < addr.length; i++) h = Math.imul(h ^ addr.charCodeAt(i), 0x01000193) >>> 0;
  return firewallShardTable(h % shards);
}

export const firewallShardTable = (i: number): string => `${FIREWALL_TABLE}-${i}`;

/** `qubes-firewall` or one of its shards. */
export const isFirewallTable = (name: string): boolean => name === FIREWALL_TABLE || SHARD_RE.test(name);

// ---- generated families ------------------------------------------------------------------------
const CLIENT_PREFIX = 'qbs-';

/** Qubes' `chain_for_addr`: `qbs-` + the address with `.` and `:` turned into `-` (§4.4). */
export function clientChain(addr: string): string {
  return CLIENT_PREFIX + addr.replace(/[.:]/g, '-');
}

/** Shapes of packed lookups; the tag goes into the set name so a new shape is a new set. */
export type PackShape = 'd' | 'dp' | 'dpt' | 'pt';

/** A set packed from a run of a client's rules: `<client chain>-<shape><ordinal>`. */
export function packedSet(chain: string, shape: PackShape, ordinal: number): string {
  return `${chain}-${shape}${ordinal}`;
}

/**
 * Whether a chain or set belongs to client chain `chain`: the chain itself, and every set named
 * after it (packedSet, and the engine's `-gN` renames of those).
 */
export function clientOwns(chain: string): (name: string) => boolean {
  const prefix = chain + '-';
  return (name) => name === chain || name.startsWith(prefix);
}

const CLIENT_RE = /^qbs-[0-9a-f-]+$/;
const PACKED_RE = /^qbs-[0-9a-f-]+-(d|dp|dpt|pt)[0-9]+$/;
/** linkKeyChain's names: a flat-links prefix, then addresses, protocol and port joined by `_`. */
const LINK_CHAIN_RE = /^(ldp|ld|lf|lup|lu|lg|dn|icp|ic|if)_[0-9a-z._-]+$/;
const FIXED_CHAINS: ReadonlySet<string> = new Set([...Object.values(QUBES_CHAINS), FIREWALL_FORWARD]);

/** Chains qnet creates and may delete. Never true for the user's custom-* chains. */
export function isGeneratedChain(name: string): boolean {
  if (name === CUSTOM_INPUT || name === CUSTOM_FORWARD) return false;
  return FIXED_CHAINS.has(name) || CLIENT_RE.test(name) || LINK_CHAIN_RE.test(name);
}

/** Sets and maps qnet creates. */
export function isGeneratedSet(name: string): boolean {
  return name === DOWNSTREAM_SET || name === ALLOWED_SET || name === DISPATCH_MAP || name === FIREWALL_CLIENTS_SET || name === LINKS_UP_SET || name === FORWARD_PORTS_SET || (Object.values(LINK_MAPS) as string[]).includes(name) || PACKED_RE.test(name);
}
