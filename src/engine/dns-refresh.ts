// The DNS answers the kernel's sets hold: names rules use are resolved when new and again when
// their TTL runs out; the daemon's refresh timer asks nextRefresh() when to look again, and only
// the qubes whose rules name a changed answer are recompiled (through the rule-edit path).
// The answers are kept, with their expiry, in a file of the run directory (beside the untidy
// file): a fresh engine (the offline CLI's, one per command) reuses what the last engine or the
// daemon resolved while the TTL lasts. The kernel's sets were built from those answers, so "the
// kernel holds compile(before)" stays exact, and an edit does not wait for DNS.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname } from 'node:path';
import { namesToResolve } from '../compile/compile.js';
import type { Resolution, Resolver } from '../compile/dns.js';
import { warning, type Diagnostic } from '../model/diagnostics.js';
import type { Model } from '../model/qube.js';
import { effectiveRules } from '../model/rule.js';

/** Answers asked for at `now`, not yet recorded (DnsAnswers.lookup). */
export interface Lookup {
  now: number;
  answers: ReadonlyMap<string, Resolution>;
}

export class DnsAnswers {
  readonly resolutions = new Map<string, Resolution>();
  /** When each name's answer runs out (now + TTL), for the refresh timer. */
  private readonly expiresAt = new Map<string, number>();

  private loaded?: Promise<void>;

  constructor(
    private readonly resolver: Resolver,
    private readonly warn: (d: Diagnostic) => void,
    /** Where answers are kept between engines (see above); none: in memory only. */
    private readonly file?: string,
  ) {}

  /**
   * The answers a previous engine kept (once, before the first resolve). Expired ones too: they are
   * what the kernel's sets were built from (resolve() asks again for them; resolveMissing() not).
   */
  private load(): Promise<void> {
    return (this.loaded ??= (async () => {
      if (!this.file) return;
      for (const [r, at] of await readAnswers(this.file))
        if (!this.resolutions.has(r.name)) {
          this.resolutions.set(r.name, r);
          this.expiresAt.set(r.name, at);
        }
    })());
  }

  /**
   * Resolve the names rules use (of `only`'s qubes, or all): new names now, known names when their
   * TTL has run out (`all`: every name now). Returns the names whose answer is new or differs from the one held.
   */
  async resolve(model: Model, now: number, only?: ReadonlySet<string>, all = false): Promise<Set<string>> {
    return this.record(await this.ask(namesToResolve(model, now, only), now, all));
  }

  /**
   * The asking half of resolve(), for `names` (those the rules in effect use; the daemon keeps
   * them, see daemon/rule-index.ts): what the resolver answers for the ones due, held nowhere yet.
   * The daemon asks outside its queue of changes (a lookup can take long) and records inside it.
   */
  async ask(names: readonly string[], now: number, all = false): Promise<Lookup> {
    await this.load();
    const due = names.filter((n) => all || !this.resolutions.has(n) || this.expiresAt.get(n)! <= now);
    return { now, answers: due.length ? await this.resolver.resolveAll(due) : new Map() };
  }

  /** The recording half: hold the answers (and keep them in the file); the names whose answer is new or differs. */
  async record({ now, answers }: Lookup): Promise<Set<string>> {
    const changed = new Set<string>();
    if (!answers.size) return changed;
    for (const [n, r] of answers) {
      const old = this.resolutions.get(n);
      if (!old || old.a.join() !== r.a.join() || old.aaaa.join() !== r.aaaa.join() || old.error !== r.error) changed.add(n);
      this.resolutions.set(n, r);
      this.expiresAt.set(n, now + r.ttl);
      if (r.error) this.warn(warning('QNET4001', `cannot resolve '${n}' (${r.error}): the rules that use it are disabled`));
    }
    if (this.file) await writeAnswers(this.file, [...this.resolutions.values()].map((r) => [r, this.expiresAt.get(r.name)!] as const));
    return changed;
  }

  /**
   * Resolve only the names that have no answer at all, keeping expired ones: what the kernel was
   * built from (the offline engine compiles the model before an edit with these).
   */
  async resolveMissing(model: Model, now: number, only?: ReadonlySet<string>): Promise<void> {
    await this.load();
    if (namesToResolve(model, now, only).some((n) => !this.resolutions.has(n))) await this.resolve(model, now, only);
  }

  /** When the answer for `name` runs out and is asked again (seconds since the epoch). */
  expiry(name: string): number | undefined {
    return this.expiresAt.get(name);
  }

  /** Seconds until the next answer expires, or undefined (at least 1). */
  nextRefresh(now: number): number | undefined {
    let min: number | undefined;
    for (const t of this.expiresAt.values()) min = Math.min(min ?? Infinity, t - now);
    return min === undefined ? undefined : Math.max(1, min);
  }
}

/** The qubes whose rules in effect name one of these hosts. */
export function qubesNaming(model: Model, names: ReadonlySet<string>, now: number): string[] {
  return [...model.qubes.values()]
    .filter((q) => effectiveRules(q.rules, now).some((r) => r.dsthost?.type === 'dsthost' && names.has(r.dsthost.text)))
    .map((q) => q.name);
}

/** More would be a file nobody but qnet wrote: ignored as a whole. */
const MAX_ANSWERS_BYTES = 8 * 1024 * 1024;

type Kept = readonly [Resolution, number];

/**
 * The kept answers. The file is root's, but its addresses reach nft sets: every entry is checked
 * (addresses that parse, a finite TTL and expiry) and a file that does not parse is ignored, as if
 * there were none (the names are then resolved again).
 */
async function readAnswers(file: string): Promise<Kept[]> {
  let json: unknown;
  try {
    const text = await readFile(file, 'utf8');
    if (text.length > MAX_ANSWERS_BYTES) return [];
    json = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { answers?: unknown }).answers)) return [];
  const out: Kept[] = [];
  for (const e of (json as { answers: unknown[] }).answers) {
    const o = e as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) continue;
    const { name, a, aaaa, ttl, error, expiresAt } = o;
    const addrs = (x: unknown, ok: (s: string) => boolean) => Array.isArray(x) && x.every((s) => typeof s === 'string' && ok(s));
    if (typeof name !== 'string' || name.length > 253 || !addrs(a, isIPv4) || !addrs(aaaa, isIPv6)) continue;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0 || typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) continue;
    if (error !== undefined && (typeof error !== 'string' || error.length > 500)) continue;
    out.push([{ name, a: a as string[], aaaa: aaaa as string[], ttl, ...(error !== undefined ? { error: error as string } : {}) }, expiresAt]);
  }
  return out;
}

/** Written whole through a temporary file and a rename: a reader sees the old answers or the new. */
async function writeAnswers(file: string, kept: readonly Kept[]): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o755 });
    const answers = kept.map(([r, expiresAt]) => ({ ...r, expiresAt }));
    await writeFile(tmp, JSON.stringify({ answers }) + '\n', { mode: 0o644 });
    await rename(tmp, file);
  } catch {
    // Only a cache: the next engine resolves again.
    await rm(tmp, { force: true }).catch(() => {});
  }
}
