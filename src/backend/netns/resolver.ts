// Resolvers for names in rules (dsthost=NAME). Qubes resolves inside the net qube, so the answer is the
// one the qube's traffic would get; NetnsResolver does the same by running resolve-main inside a
// namespace (one spawn per batch, or the daemon's long-lived one: resolver-session.ts). SystemResolver asks from the host, for the real `veth-host` uplink.
// Both gather raw per-family answers and turn them into Resolutions here, in toResolution, once.
import { Resolver as DnsResolver } from 'node:dns/promises';
import type { RecordWithTtl } from 'node:dns';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resolution, Resolver } from '../../compile/dns.js';
import { runLimited } from './limit.js';
import type { Runner } from './runner.js';

/** One family's outcome: the records, or node:dns's error code (ENODATA, ENOTFOUND, ETIMEOUT…). */
export type FamilyAnswer = { records: { address: string; ttl: number }[] } | { code: string };

export interface RawAnswer {
  name: string;
  a: FamilyAnswer;
  aaaa: FamilyAnswer;
}

export interface ResolutionPolicy {
  /** Answers are refreshed no sooner than this (seconds): a TTL of 0 must not spin the refresher. */
  ttlFloor: number;
  /** …and no later than this. */
  ttlCeiling: number;
  /** When failed names are retried (seconds). */
  errorTtl: number;
}

const DEFAULT_POLICY: ResolutionPolicy = { ttlFloor: 5, ttlCeiling: 86_400, errorTtl: 30 };

export interface ResolverOptions extends Partial<ResolutionPolicy> {
  /** DNS servers (`192.0.2.53`, `[2001:db8::53]:53`); default: the resolv.conf of where it runs. */
  servers?: readonly string[];
  /** Bound on a whole batch, in ms (default 10 s); names still pending then fail as `timeout`. */
  timeoutMs?: number;
  /** Per query attempt, in ms (default 2 s), and attempts per server (default 2). */
  attemptTimeoutMs?: number;
  tries?: number;
}

/** What resolve-main reads on stdin. */
export interface ResolveRequest {
  names: string[];
  servers?: string[];
  attemptTimeoutMs: number;
  tries: number;
  deadlineMs: number;
}

/** The part of node:dns/promises' Resolver used here; tests fake it. */
export interface DnsClient {
  resolve4(hostname: string, options: { ttl: true }): Promise<RecordWithTtl[]>;
  resolve6(hostname: string, options: { ttl: true }): Promise<RecordWithTtl[]>;
}

// RFC 1123 host names; `_` is allowed because real zones use it. Checked before any query, so a
// malformed dsthost is reported as such rather than as a resolver failure.
const NAME_RE = /^(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

export function isValidDnsName(name: string): boolean {
  return NAME_RE.test(name);
}

async function queryFamily(q: Promise<RecordWithTtl[]>): Promise<FamilyAnswer> {
  try {
    return { records: (await q).map((r) => ({ address: r.address, ttl: r.ttl })) };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? 'EFAIL' };
  }
}

/** A and AAAA for one name, independently. */
export async function queryName(client: DnsClient, name: string): Promise<RawAnswer> {
  if (!isValidDnsName(name)) return { name, a: { code: 'EBADNAME' }, aaaa: { code: 'EBADNAME' } };
  // A trailing dot makes the name absolute: c-ares would otherwise also try the search domains of
  // resolv.conf after an NXDOMAIN, and a rule's dsthost is always meant as a full name.
  const fqdn = name.endsWith('.') ? name : `${name}.`;
  const [a, aaaa] = await Promise.all([
    queryFamily(client.resolve4(fqdn, { ttl: true })),
    queryFamily(client.resolve6(fqdn, { ttl: true })),
  ]);
  return { name, a, aaaa };
}

/** Many names with a bounded number in flight; results in input order (queryName never throws). */
export function queryNames(client: DnsClient, names: readonly string[], concurrency = 32): Promise<RawAnswer[]> {
  return runLimited(
    names.map((n) => () => queryName(client, n)),
    concurrency,
  );
}

const ERROR_TEXT: Record<string, string> = {
  ENOTFOUND: 'NXDOMAIN',
  ETIMEOUT: 'timeout',
  ECANCELLED: 'timeout',
  ESERVFAIL: 'SERVFAIL',
  EREFUSED: 'REFUSED',
  ECONNREFUSED: 'connection refused by the DNS server',
  EBADNAME: 'invalid DNS name',
  ENODATA: 'no A or AAAA records',
};

const errorText = (code: string): string => ERROR_TEXT[code] ?? code;
const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, n));

/**
 * Raw answers → Resolution. Families are independent: ENODATA is an empty family, not an error. The
 * name is an error only when no family gave an address. When one family answered and the other failed
 * transiently, the answer is used and refreshed soon (ttlFloor) so the missing family is retried.
 */
export function toResolution(raw: RawAnswer, policy: ResolutionPolicy = DEFAULT_POLICY): Resolution {
  const addrs = (f: FamilyAnswer): string[] => ('records' in f ? [...new Set(f.records.map((r) => r.address))].sort() : []);
  const a = addrs(raw.a);
  const aaaa = addrs(raw.aaaa);
  const failures = [raw.a, raw.aaaa].flatMap((f) => ('code' in f ? [f.code] : []));
  const errorTtl = clamp(policy.errorTtl, policy.ttlFloor, policy.ttlCeiling);
  if (a.length === 0 && aaaa.length === 0) {
    // NXDOMAIN says most about the name; otherwise the first real failure; ENODATA twice means the
    // name exists but has no addresses.
    const code = failures.find((c) => c === 'ENOTFOUND') ?? failures.find((c) => c !== 'ENODATA') ?? 'ENODATA';
    return { name: raw.name, a, aaaa, ttl: errorTtl, error: errorText(code) };
  }
  const ttls = [raw.a, raw.aaaa].flatMap((f) => ('records' in f ? f.records.map((r) => r.ttl) : []));
  const transient = failures.some((c) => c !== 'ENODATA' && c !== 'ENOTFOUND');
  const ttl = transient ? policy.ttlFloor : clamp(Math.min(...ttls), policy.ttlFloor, policy.ttlCeiling);
  return { name: raw.name, a, aaaa, ttl };
}

function policyOf(opts: Partial<ResolutionPolicy>): ResolutionPolicy {
  return {
    ttlFloor: opts.ttlFloor ?? DEFAULT_POLICY.ttlFloor,
    ttlCeiling: opts.ttlCeiling ?? DEFAULT_POLICY.ttlCeiling,
    errorTtl: opts.errorTtl ?? DEFAULT_POLICY.errorTtl,
  };
}

function failAll(names: readonly string[], error: string, policy: ResolutionPolicy): Map<string, Resolution> {
  const ttl = clamp(policy.errorTtl, policy.ttlFloor, policy.ttlCeiling);
  return new Map(names.map((name) => [name, { name, a: [], aaaa: [], ttl, error }]));
}

const isFamily = (f: unknown): f is FamilyAnswer =>
  typeof f === 'object' && f !== null &&
  (('records' in f && Array.isArray(f.records)) || ('code' in f && typeof f.code === 'string'));

/** The child's output crosses a process boundary: check its shape before trusting it. */
function isRawAnswer(x: unknown): x is RawAnswer {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  return typeof r.name === 'string' && isFamily(r.a) && isFamily(r.aaaa);
}

function collect(names: readonly string[], raws: readonly RawAnswer[], policy: ResolutionPolicy): Map<string, Resolution> {
  const byName = new Map(raws.map((r) => [r.name, r]));
  const out = new Map<string, Resolution>();
  for (const name of names) {
    const raw = byName.get(name);
    out.set(name, raw ? toResolution(raw, policy) : { name, a: [], aaaa: [], ttl: policy.ttlFloor, error: 'no answer from the resolver' });
  }
  return out;
}

/** The node:dns Resolver both sides use, so in-process and in-namespace answers are produced alike. */
function makeDnsClient(servers: readonly string[] | undefined, attemptTimeoutMs: number, tries: number): DnsResolver {
  const r = new DnsResolver({ timeout: attemptTimeoutMs, tries });
  if (servers && servers.length > 0) r.setServers([...servers]);
  return r;
}

/** Answers to resolve-main's request (also runs in-process for SystemResolver). */
export async function runRequest(req: ResolveRequest): Promise<RawAnswer[]> {
  const client = makeDnsClient(req.servers, req.attemptTimeoutMs, req.tries);
  // Cancelling makes every pending query fail with ECANCELLED, reported as a timeout.
  const timer = setTimeout(() => client.cancel(), req.deadlineMs);
  try {
    return await queryNames(client, req.names);
  } finally {
    clearTimeout(timer);
  }
}

function requestOf(names: readonly string[], opts: ResolverOptions): ResolveRequest {
  return {
    names: [...new Set(names)],
    servers: opts.servers ? [...opts.servers] : undefined,
    attemptTimeoutMs: opts.attemptTimeoutMs ?? 2000,
    tries: opts.tries ?? 2,
    deadlineMs: opts.timeoutMs ?? 10_000,
  };
}

/** Resolves from the host's own network stack (for the `veth-host` uplink). */
export class SystemResolver implements Resolver {
  private readonly policy: ResolutionPolicy;
  constructor(private readonly opts: ResolverOptions = {}) {
    this.policy = policyOf(opts);
  }

  async resolveAll(names: readonly string[]): Promise<Map<string, Resolution>> {
    const req = requestOf(names, this.opts);
    try {
      return collect(names, await runRequest(req), this.policy);
    } catch (e) {
      return failAll(names, `resolver failed: ${(e as Error).message}`, this.policy);
    }
  }
}

/**
 * The command line that runs a sibling script of this folder with node: `.js` next to the compiled
 * module, or `.ts` under tsx in development (then tsx's loader is passed by absolute URL, so the child
 * needs neither the caller's cwd nor its execArgv).
 */
export function nodeScriptArgv(base: string, moduleUrl: string = import.meta.url): string[] {
  const self = fileURLToPath(moduleUrl);
  const ext = extname(self);
  const script = join(dirname(self), `${base}${ext}`);
  const loader = ext === '.ts' ? ['--import', import.meta.resolve('tsx')] : [];
  return [process.execPath, ...loader, script];
}

/**
 * Resolves inside a network namespace (the net qube, as Qubes does): through the namespace's
 * long-lived resolver when one is given (the daemon's, resolver-session.ts), else one process per
 * batch; a session that fails costs this batch a process of its own, not its answers.
 */
export class NetnsResolver implements Resolver {
  private readonly policy: ResolutionPolicy;
  constructor(
    private readonly runner: Runner,
    private readonly netns: string,
    private readonly opts: ResolverOptions = {},
    private readonly session?: { ask(req: ResolveRequest, timeoutMs: number): Promise<unknown> },
  ) {
    this.policy = policyOf(opts);
  }

  /** The argv run inside the namespace (exposed for ScriptedRunner tests). */
  static command(): string[] {
    return nodeScriptArgv('resolve-main');
  }

  async resolveAll(names: readonly string[]): Promise<Map<string, Resolution>> {
    if (names.length === 0) return new Map();
    const req = requestOf(names, this.opts);
    const where = `resolver in ${this.netns}`;
    try {
      // The child enforces deadlineMs itself; the timeout here is the backstop (node + tsx start-up).
      const timeoutMs = req.deadlineMs + 5000;
      let out = this.session ? await this.session.ask(req, timeoutMs).catch(() => undefined) : undefined;
      if (out === undefined) {
        const r = await this.runner.run(NetnsResolver.command(), { netns: this.netns, stdin: JSON.stringify(req), timeoutMs });
        if (r.code !== 0) return failAll(names, `${where} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`, this.policy);
        out = JSON.parse(r.stdout);
      }
      const answer = out as { answers?: unknown; error?: unknown };
      if (typeof answer.error === 'string') return failAll(names, `${where} failed: ${answer.error}`, this.policy);
      if (!Array.isArray(answer.answers) || !answer.answers.every(isRawAnswer)) return failAll(names, `${where}: unexpected output`, this.policy);
      return collect(names, answer.answers, this.policy);
    } catch (e) {
      return failAll(names, `${where}: ${(e as Error).message}`, this.policy);
    }
  }
}
