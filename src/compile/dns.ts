// DNS names in rules. Resolution is I/O and happens before compiling (the engine or CLI calls a
// Resolver); the compiler is pure and takes the answers as input. Unlike Qubes (reference §7.9), a
// name that fails disables only the rules that use it, and each family is independent: a name with
// no AAAA record simply contributes nothing to the ip6 side.

export interface Resolution {
  name: string;
  /** IPv4 addresses (A records), deduplicated and sorted for deterministic output. */
  a: string[];
  /** IPv6 addresses (AAAA records), deduplicated and sorted. */
  aaaa: string[];
  /** Seconds until the answer should be refreshed (the smallest TTL seen; a floor applies). */
  ttl: number;
  /** Set when the name could not be resolved at all (NXDOMAIN, timeout…): the rule is disabled. */
  error?: string;
  /** When it is asked again (seconds since the epoch), where the holder of the answer knows (a daemon's engine). */
  expiresAt?: number;
}

export type Resolutions = ReadonlyMap<string, Resolution>;

export interface Resolver {
  /** Resolve many names at once (one batch per compile). Never rejects: failures are per name. */
  resolveAll(names: readonly string[]): Promise<Map<string, Resolution>>;
  /** Start what answering takes ahead of the first batch (the daemon's long-lived resolver). */
  prepare?(): Promise<void>;
}

/** A fixed table of answers: tests, the simulator backend, and offline checks. */
export class StaticResolver implements Resolver {
  constructor(private readonly table: Record<string, { a?: string[]; aaaa?: string[]; ttl?: number }>) {}

  async resolveAll(names: readonly string[]): Promise<Map<string, Resolution>> {
    const out = new Map<string, Resolution>();
    for (const name of names) {
      const e = this.table[name];
      out.set(
        name,
        e
          ? { name, a: [...(e.a ?? [])].sort(), aaaa: [...(e.aaaa ?? [])].sort(), ttl: e.ttl ?? 300 }
          : { name, a: [], aaaa: [], ttl: 60, error: 'NXDOMAIN' },
      );
    }
    return out;
  }
}
