// The state directory as the store (layout in paths.ts). Reads are plain reads; every change goes
// through update(): lock, read, change, write only the files whose bytes differ, each atomically.
//
// Codes: QNET3001 lock busy (lock.ts); QNET3010/3011 qubes.json (qubes-file.ts); a broken
// firewall.xml keeps the code its parser gave; QNET3022 a change that would write an invalid model;
// QNET3023 a file that cannot be read or written (permissions, disk full, a directory in the way).
import { readFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import type { Model, Qube, QubeClass } from '../model/qube.js';
import { rekeyQube } from '../model/ops.js';
import { QnetError } from '../model/result.js';
import { isExpired, type Rule } from '../model/rule.js';
import { isCode, mkdirDurable, removeDirIfEmpty, removeFileDurable, writeFileAtomic } from './atomic.js';
import { appendFirewallXml, formatFirewallXml, readFirewallXml } from './firewall-xml.js';
import { withLock } from './lock.js';
import { assertValidModel, cloneData, cloneModel, emptyModel, sameData, type StoreOptions } from './memory-store.js';
import { firewallFilePath, qubesFilePath } from './paths.js';
import { formatQubesFile, parseQubesFile } from './qubes-file.js';
import type { Store } from './store.js';

export const STORE_IO = 'QNET3023';

/** One qube's firewall.xml as it is on disk, and the rules read from it (never handed out). */
interface RulesOnDisk {
  qid: number;
  name: string;
  klass: QubeClass;
  path: string;
  /** The file's bytes; null = no file (accept everything). */
  raw: Buffer | null;
  rules: Rule[] | null;
  /** `raw` is exactly `formatFirewallXml(rules)`: rules added at the end can be appended to it. */
  canonical: boolean;
}

/** What one read saw: the basis for deciding what a change has to write. */
interface DiskState {
  qubesText: string | null;
  byQid: Map<number, RulesOnDisk>;
}

export class FileStore implements Store {
  private readonly now: () => number;
  /**
   * Parsed rules by file path. An entry is reused without even reading the file while its stat key
   * (inode, size, mtime and ctime) is unchanged — every write qnet makes is a rename of a new
   * file, which changes them all — and otherwise while its bytes are. Every model handed out gets
   * its own lists, but the rule objects in them are frozen and shared: an in-place change of a rule
   * throws instead of corrupting the cache (editors build new rules, as every one of qnet's does).
   */
  private readonly parsed = new Map<string, { key: string; raw: Buffer; rules: Rule[]; canonical: boolean }>();
  /** qubes.json as last parsed, reused while its stat key holds (as `parsed`); handed out as copies. */
  private qubesParsed?: { key: string; text: string; model: Model };
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    opts: StoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  async load(): Promise<Model> {
    return cloneRead((await this.read()).model);
  }

  /**
   * One qube with its rules, reading only its own firewall.xml (and qubes.json): a broken file of
   * another qube does not stop it, and other qubes' big files are not parsed. Undefined when there
   * is no such qube.
   */
  async loadQube(name: string): Promise<Qube | undefined> {
    const q = (await this.readQubes()).model.qubes.get(name);
    if (!q) return undefined;
    const path = this.rulesPath(q.name, q.klass);
    const key = statKey(path);
    const hit = key === null ? undefined : this.parsed.get(path);
    const raw = key === null ? null : hit && hit.key === key ? hit.raw : await readOrNull(path);
    const rules = raw === null ? null : this.parseRules(path, q.name, raw, key!).rules;
    return { ...cloneData({ ...q, rules: null }), rules: rules && rules.slice() };
  }

  update<T>(change: (model: Model) => T | Promise<T>): Promise<T> {
    // Updates from this process queue up; the lock file refuses writers in other processes.
    const run = this.tail.then(async () => {
      await io(this.dir, 'create', () => mkdirDurable(this.dir));
      return withLock(this.dir, async () => {
        const { model: read, state } = await this.read();
        const model = cloneRead(read);
        const result = await change(model);
        // qubes.json's text as it was read passed every check when it was parsed: the same text
        // under the same keys needs no second look (a rule edit changes no qube's properties).
        const text = formatQubesFile(model);
        if (text !== state.qubesText || [...model.qubes].some(([k, q]) => k !== q.name)) assertValidModel(model, text);
        await this.commit(state, read, model, text);
        return result;
      });
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** qubes.json, parsed; the model is shared with the cache: read-only (callers copy it). */
  private readonly paths = new Map<string, string>();

  /** firewallFilePath, remembered: an update asks it for every qube, twice. */
  private rulesPath(name: string, klass: QubeClass): string {
    const k = `${klass}/${name}`;
    let p = this.paths.get(k);
    if (p === undefined) this.paths.set(k, (p = firewallFilePath(this.dir, name, klass)));
    return p;
  }

  private async readQubes(): Promise<{ model: Model; qubesText: string | null }> {
    const qpath = qubesFilePath(this.dir);
    const key = statKey(qpath);
    const hit = this.qubesParsed;
    if (key !== null && hit?.key === key) return { model: hit.model, qubesText: hit.text };
    const qubesText = await readOrNull(qpath, 'utf8');
    if (qubesText === null) return { model: emptyModel(), qubesText };
    const r = parseQubesFile(qubesText, qpath);
    if (!r.ok) throw brokenFile(r.error);
    if (key !== null) this.qubesParsed = { key, text: qubesText, model: r.value };
    return { model: r.value, qubesText };
  }

  /**
   * The model with rules shared with the parse cache: callers get a copy of it. Files whose stat key
   * is unchanged are not even opened; only the others are read, in parallel.
   */
  private async read(): Promise<{ model: Model; state: DiskState }> {
    const { model: shared, qubesText } = await this.readQubes();
    const model: Model = { ...shared, qubes: new Map() };
    const byQid = new Map<number, RulesOnDisk>();
    const misses: Promise<void>[] = [];
    for (const [name, q0] of shared.qubes) {
      const q: Qube = { ...q0 }; // the cache's qube stays as parsed
      model.qubes.set(name, q);
      const path = this.rulesPath(q.name, q.klass);
      const key = statKey(path);
      const take = (raw: Buffer | null) => {
        const parsed = raw === null ? null : this.parseRules(path, q.name, raw, key!);
        q.rules = parsed && parsed.rules;
        byQid.set(q.qid, { qid: q.qid, name: q.name, klass: q.klass, path, raw, rules: q.rules, canonical: !!parsed?.canonical });
      };
      const hit = key === null ? undefined : this.parsed.get(path);
      if (key === null) take(null);
      else if (hit && hit.key === key) take(hit.raw);
      else misses.push(readOrNull(path).then(take));
    }
    await Promise.all(misses);
    const live = new Set([...byQid.values()].map((d) => d.path));
    for (const p of this.parsed.keys()) if (!live.has(p)) this.parsed.delete(p);
    return { model, state: { qubesText, byQid } };
  }

  private parseRules(path: string, qube: string, raw: Buffer, key: string): { rules: Rule[]; canonical: boolean } {
    const hit = this.parsed.get(path);
    if (hit && (hit.raw === raw || hit.raw.equals(raw))) {
      hit.key = key;
      return hit;
    }
    const r = readFirewallXml(raw.toString('utf8'));
    if (!r.ok) {
      const at = r.error.ruleIndex === undefined ? '' : `rule ${r.error.ruleIndex}: `;
      throw brokenFile([{ ...r.error, file: path, qube, message: `${path}: ${at}${r.error.message}` }]);
    }
    // A version 1 file stays as it is on disk until this qube's rules change (then it is written as 2).
    const entry = { key, raw, rules: freezeRules(r.value.rules), canonical: r.value.canonical };
    this.parsed.set(path, entry);
    return entry;
  }

  /**
   * Write what differs between `state` (what was read) and `model`. When a qube takes over a path
   * that another qube held in `state` (a swap of names, or a removed qube's name reused in the same
   * change), writing that file early would give the old holder the wrong rules if we crashed before
   * qubes.json. So that case commits twice: first the old holders move out of the way (removed, or
   * renamed to `qnet-tmp-<qid>`), then the change itself; each commit is crash-safe on its own.
   */
  private async commit(state: DiskState, read: Model, model: Model, text: string): Promise<void> {
    const owners = new Map([...state.byQid.values()].map((d) => [d.path, d.qid]));
    const wanted = new Set([...model.qubes.values()].map((q) => q.qid));
    const blocking = new Set<number>();
    for (const q of model.qubes.values()) {
      const owner = owners.get(this.rulesPath(q.name, q.klass));
      if (owner !== undefined && owner !== q.qid) blocking.add(owner);
    }
    if (blocking.size > 0) {
      const taken = new Set([...read.qubes.keys(), ...model.qubes.keys()]);
      const mid = cloneRead(read);
      for (const q of read.qubes.values()) {
        if (!blocking.has(q.qid)) continue;
        if (!wanted.has(q.qid)) mid.qubes.delete(q.name);
        // rekeyQube, not renameQube: a temporary name must not fail on renameQube's checks (running qube).
        else rekeyQube(mid, q.name, freeName(`qnet-tmp-${q.qid}`, taken));
      }
      state = await this.commitOnce(state, mid);
    }
    await this.commitOnce(state, model, text);
  }

  /**
   * One crash-safe commit. The order of writes is what makes it so:
   *  1. Rule files first, each atomically: changed rules in place, and the files at new paths (new
   *     qubes, renamed ones, a class change between appvms/ and vm-templates/). A qube whose rules
   *     became null loses its file. Until qubes.json changes, files at new paths are orphans nobody
   *     reads, and every qube named in the old qubes.json still finds its old or new rules.
   *  2. qubes.json, atomically: the switch. Every qube it names already has its file in place.
   *  3. Only now the files of removed qubes and of old names, then their directories if empty.
   * A crash anywhere leaves each qube with its old or its new rules, never with a missing file
   * (which would read as "no firewall: accept everything"). An orphan left by a crash in 1 or 3 is
   * harmless: before any qubes.json names that path again, step 1 rewrites or removes it.
   */
  private async commitOnce(state: DiskState, model: Model, text?: string): Promise<DiskState> {
    const nowSec = this.now() / 1000;
    const writes: { path: string; data: Buffer }[] = [];
    const removes: string[] = [];
    const byQid = new Map<number, RulesOnDisk>();
    for (const q of model.qubes.values()) {
      const path = this.rulesPath(q.name, q.klass);
      const prev = state.byQid.get(q.qid);
      const moved = prev === undefined || prev.path !== path;
      // Comparing data first spares formatting a big unchanged list; bytes decide in the end.
      const same = prev !== undefined && (sameItems(q.rules, prev.rules) || sameData(q.rules, prev.rules));
      let raw: Buffer | null;
      let canonical = false;
      if (q.rules === null) {
        raw = null;
        if (moved || prev.raw !== null) removes.push(path);
      } else if (same && prev.raw !== null) {
        raw = prev.raw; // unchanged: a move copies the bytes as they are (a v1 file stays v1)
        canonical = prev.canonical;
        if (moved) writes.push({ path, data: raw });
      } else {
        // Expired rules are dropped whenever the file is written, as Qubes' Firewall.save().
        // Rules added at the end of a file in qnet's own layout are appended to its bytes: the
        // same bytes as formatting the whole list (tested), without formatting 100k rules again.
        const at = prev === undefined ? -1 : appendsTo(prev, q.rules, nowSec);
        raw =
          at >= 0
            ? appendFirewallXml(prev!.raw!, q.rules.slice(at))
            : Buffer.from(formatFirewallXml(q.rules.filter((r) => !isExpired(r, nowSec))), 'utf8');
        canonical = true;
        if (moved || prev.raw === null || !prev.raw.equals(raw)) writes.push({ path, data: raw });
      }
      // The state returned only feeds the second commit of a two-step change, whose model is private.
      byQid.set(q.qid, { qid: q.qid, name: q.name, klass: q.klass, path, raw, rules: q.rules, canonical });
    }
    const used = new Set([...byQid.values()].map((d) => d.path));
    const stale = [...state.byQid.values()].filter((d) => !used.has(d.path)).map((d) => d.path);
    const qubesText = text ?? formatQubesFile(model);
    const qubesChanged = qubesText !== (state.qubesText ?? formatQubesFile(emptyModel()));

    // 1. rule files
    await Promise.all(
      writes.map(({ path, data }) =>
        io(path, 'write', async () => {
          await mkdirDurable(dirname(path));
          await writeFileAtomic(path, data);
        }),
      ),
    );
    await Promise.all(removes.map((p) => this.removeRules(p)));
    // 2. the switch
    if (qubesChanged) await io(qubesFilePath(this.dir), 'write', () => writeFileAtomic(qubesFilePath(this.dir), qubesText));
    // 3. leftovers
    await Promise.all(stale.map((p) => this.removeRules(p)));
    for (const p of [...writes.map((w) => w.path), ...removes, ...stale]) this.parsed.delete(p);
    return { qubesText: qubesChanged ? qubesText : state.qubesText, byQid };
  }

  private removeRules(path: string): Promise<void> {
    return io(path, 'remove', async () => {
      await removeFileDurable(path);
      await removeDirIfEmpty(dirname(path));
    });
  }
}

/**
 * Where `rules` starts to differ from what `prev` holds, when the only change is rules added at the
 * end of a canonical file and no rule has expired (the whole list would be written as it is):
 * `prev.rules.length`. Otherwise -1, and the list is formatted in full.
 */
function appendsTo(prev: RulesOnDisk, rules: readonly Rule[], nowSec: number): number {
  const old = prev.rules;
  if (!prev.canonical || prev.raw === null || old === null || rules.length <= old.length) return -1;
  for (let i = 0; i < rules.length; i++) if (isExpired(rules[i]!, nowSec)) return -1;
  for (let i = 0; i < old.length; i++) if (!sameData(rules[i], old[i])) return -1;
  return old.length;
}

/**
 * A copy of a model as read: the rules, 100k of them for a big qube, have the parser's known shape
 * (flat values, `dsthost` and `dstports` objects), so they are copied without the generic walk.
 */
function cloneRead(model: Model): Model {
  const noRules = { ...model, qubes: new Map([...model.qubes].map(([name, q]) => [name, { ...q, rules: null }])) };
  const copy = cloneModel(noRules); // everything but the rules, as the model defines a copy
  // Each list is the caller's to edit (push, splice, replace); the rule objects in it are frozen and
  // shared (see `parsed`): copying 100k rule objects per command was the cost.
  for (const [name, q] of copy.qubes) q.rules = model.qubes.get(name)!.rules?.slice() ?? null;
  return copy;
}

function freezeRules(rules: Rule[]): Rule[] {
  for (const r of rules) {
    if (r.dsthost) Object.freeze(r.dsthost);
    if (r.dstports) Object.freeze(r.dstports);
    Object.freeze(r);
  }
  return rules;
}

/** The same rule objects in the same order: what an untouched qube has (its list is a copy of the cache's). */
function sameItems(a: readonly Rule[] | null, b: readonly Rule[] | null): boolean {
  if (a === null || b === null || a.length !== b.length) return a === b;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What changes whenever a file is replaced or written; null when there is no file. */
function statKey(path: string): string | null {
  try {
    // Synchronous on purpose: an update stats every qube's file, and a thousand async stats spend
    // more time queueing through libuv's thread pool than the syscalls take (≈2 µs each). Times as
    // doubles (a quarter of a µs apart at today's dates): no BigInts to make, a thousand per update.
    const st = statSync(path, { throwIfNoEntry: false });
    return st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : null;
  } catch (e) {
    if (isCode(e, 'ENOENT')) return null;
    throw ioError(path, 'read', e);
  }
}

function freeName(base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

async function readOrNull(path: string): Promise<Buffer | null>;
async function readOrNull(path: string, enc: 'utf8'): Promise<string | null>;
async function readOrNull(path: string, enc?: 'utf8'): Promise<Buffer | string | null> {
  try {
    return enc ? await readFile(path, enc) : await readFile(path);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return null;
    throw ioError(path, 'read', e);
  }
}

async function io<T>(path: string, verb: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw e instanceof QnetError ? e : ioError(path, verb, e);
  }
}

function ioError(path: string, verb: string, e: unknown): QnetError {
  const why = e instanceof Error ? e.message : String(e);
  return new QnetError(diag(STORE_IO, `${path}: cannot ${verb}: ${why}`, { file: path }));
}

/** One error for a file with one or more problems; the file is left exactly as it is. */
function brokenFile(issues: Diagnostic[]): QnetError {
  const [first] = issues;
  const more = issues.slice(1, 20).map((d) => `\n  ${d.message}`);
  if (issues.length > 20) more.push(`\n  … and ${issues.length - 20} more`);
  return new QnetError({
    ...first!,
    message: first!.message + more.join(''),
    hint: first!.hint ?? 'fix or remove the file by hand; qnet will not overwrite a file it cannot read',
  });
}
