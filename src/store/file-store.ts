// The state directory as the store (layout in paths.ts). Reads are plain reads; every change goes
// through update(): lock, read, change, write only the files whose bytes differ, each atomically.
// A rule edit (effect {kind:'rules'}) reads qubes.json and the edited qubes' files only (a links
// change, effect {kind:'links'}, qubes.json only); any other
// qube's rules are read the moment something asks for them, and are never written unasked.
//
// One broken firewall.xml is that qube's problem only: load() hands the qube out blocked (`rules`
// = [], `rulesProblem` = the file and what is wrong) and every other qube works as usual. The
// broken file is never written or removed by an update unless the update replaced that qube's rules
// wholesale (replaceRules in rules-problem.ts clears the mark; then the file is written fresh). A
// rename or class change moves its bytes as they are; removing the qube removes it.
//
// Codes: QNET3001/3002 lock (lock.ts); QNET3010/3011 qubes.json (qubes-file.ts); a broken
// firewall.xml keeps the code its parser gave (in rulesProblem); QNET3022 a change that would write
// an invalid model; QNET3023 a file that cannot be read or written (permissions, disk full, a
// directory or FIFO in the way, too big); QNET3024 a change to rules that are unknown.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import type { Effect } from '../model/effect.js';
import type { Model, Qube, QubeClass } from '../model/qube.js';
import { rekeyQube } from '../model/ops.js';
import { BugError, QnetError } from '../model/result.js';
import { isExpired, type Rule } from '../model/rule.js';
import { isCode, mkdirDurable, removeDirIfEmpty, removeFileDurable, writeFileAtomic } from './atomic.js';
import { appendFirewallXml, formatFirewallXml, readFirewallXml } from './firewall-xml.js';
import { acquireLock, DEFAULT_LOCK_WAIT_MS, type Lock } from './lock.js';
import { assertValidModel, cloneData, cloneModel, emptyModel, sameData, type StoreOptions } from './memory-store.js';
import { firewallFilePath, lockFilePath, qubesFilePath } from './paths.js';
import { formatQubesFile, parseQubesFileIsolating, sameQubeEntry } from './qubes-file.js';
import { rulesUnknown } from './rules-problem.js';
import { MAX_FIREWALL_BYTES, MAX_QUBES_BYTES, oneLine, readStateFile, readStateFileSync, StateFileError } from './state-file.js';
import type { Store } from './store.js';

export const STORE_IO = 'QNET3023';

/** One qube's firewall.xml as it is on disk, and the rules read from it (never handed out). */
interface RulesOnDisk {
  qid: number;
  name: string;
  klass: QubeClass;
  path: string;
  /** The file's bytes; null = no file (accept everything), or a broken file that could not be read. */
  raw: Buffer | null;
  rules: Rule[] | null;
  /** `raw` is exactly `formatFirewallXml(rules)`: rules added at the end can be appended to it. */
  canonical: boolean;
  /** The file is there but broken: `rules` is [] (blocked) and the file is left as it is. */
  problem?: Diagnostic;
}

/** What one qube's file holds, as read (or cached). */
interface ReadRules {
  raw: Buffer | null;
  rules: Rule[] | null;
  canonical: boolean;
  problem?: Diagnostic;
}

export interface FileStoreOptions extends StoreOptions {
  /** How long update() waits for another writer's lock (default 10 s). */
  lockWaitMs?: number;
  /** Called once per update that has to wait, with the pid holding the lock (null when unknown). */
  onLockWait?: (holderPid: number | null) => void;
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
  private readonly parsed = new Map<string, { key: string; raw: Buffer; rules: Rule[]; canonical: boolean; problem?: Diagnostic }>();
  /** qubes.json as last parsed, reused while its stat key holds (as `parsed`); handed out as copies. */
  private qubesParsed?: { key: string; text: string; model: Model };
  private tail: Promise<unknown> = Promise.resolve();
  private readonly lockWaitMs: number;
  private readonly onLockWait?: (holderPid: number | null) => void;
  /** The lock taken by holdLock(): while set, updates do not take it again. */
  private held?: Lock;

  constructor(
    readonly dir: string,
    opts: FileStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.lockWaitMs = opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    if (opts.onLockWait) this.onLockWait = opts.onLockWait;
  }

  /**
   * Take the writer lock for as long as the caller likes (the daemon: its whole life), marked
   * role=daemon so other writers give up at once, naming its pid. Until the lock is released,
   * this store's updates run under it without taking it again.
   */
  async holdLock(): Promise<Lock> {
    if (this.held) return this.held;
    await io(this.dir, 'create', () => mkdirDurable(this.dir));
    const opts = { waitMs: this.lockWaitMs, role: 'daemon' as const, ...(this.onLockWait ? { onWait: this.onLockWait } : {}) };
    const lock = await io(lockFilePath(this.dir), 'lock', () => acquireLock(this.dir, opts));
    const held: Lock = {
      path: lock.path,
      release: async () => {
        if (this.held === held) delete this.held;
        await lock.release();
      },
    };
    this.held = held;
    return held;
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
    const { model } = await this.readQubes();
    const q = model.qubes.get(name);
    // A qube whose entry is broken: say why, rather than "no such qube".
    const problem = model.problems?.find((d) => d.qube === name);
    if (!q && problem) throw new QnetError(problem);
    if (!q) return undefined;
    const r = await this.readRules(this.rulesPath(q.name, q.klass), q.name);
    return { ...cloneData({ ...q, rules: null }), rules: r.rules && r.rules.slice(), ...(r.problem ? { rulesProblem: { ...r.problem } } : {}) };
  }

  /**
   * A change declared as rules-only (`effect` {kind:'rules', qubes}) reads qubes.json and only the
   * named qubes' firewall.xml: a client-only compile needs nothing else, and with a thousand qubes
   * reading the others is most of an offline edit's time (a links change, {kind:'links'}, names none). The other qubes' rules are read when
   * first asked for (see installLazyRules), or under the daemon's lock taken as this store last
   * parsed or wrote them: nothing sees a model with rules missing, and a qube whose rules were
   * never asked for, or are as they were, is not written. Anything else reads the whole state directory.
   */
  update<T>(change: (model: Model) => T | Promise<T>, effect?: Effect): Promise<T> {
    // A links-only change reads no qube's rules (links compile from addresses and netvms).
    const only = effect?.kind === 'rules' ? new Set(effect.qubes) : effect?.kind === 'links' ? new Set<string>() : undefined;
    // Updates from this process queue up; the lock file refuses writers in other processes.
    const run = this.tail.then(async () => {
      // Under a held lock the directory is there (the lock file is in it): no syscall per edit.
      if (!this.held) await io(this.dir, 'create', () => mkdirDurable(this.dir));
      return this.locked(() => (only ? this.updateRules(only, change) : this.updateAll(change)));
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async updateAll<T>(change: (model: Model) => T | Promise<T>): Promise<T> {
    const { model: read, state } = await this.read();
    const model = cloneRead(read);
    const result = await change(model);
    await this.commit(state, read, model, this.qubesTextFor(read, model, state));
    return result;
  }

  /** What qubes.json is to hold after a change: checked, or the file's own text (see below). */
  private qubesTextFor(read: Model, model: Model, state: Pick<DiskState, 'qubesText'>): string {
    // qubes.json's text as it was read passed every check when it was parsed: the same text
    // under the same keys needs no second look (a rule edit changes no qube's properties).
    const text = formatQubesFile(model);
    if (read.problems?.length) {
      // The file as read holds entries the model does not: writing it now would drop them. A
      // change that leaves the readable part as it was keeps the file's own text (not written).
      if (text !== formatQubesFile(read) || [...model.qubes].some(([k, q]) => k !== q.name)) throw brokenQubesFile(read.problems);
      return state.qubesText!;
    }
    if (text !== state.qubesText || [...model.qubes].some(([k, q]) => k !== q.name)) assertValidModel(model, text);
    return text;
  }

  /**
   * The rules-only update: the named qubes' rules are read now, every other qube's on first access
   * (a converge the engine falls back to reads them all, correctly). Qubes may change state (a netvm
   * found dead) but not name, class or existence: that is not a rule edit (BugError, nothing written).
   */
  private async updateRules<T>(only: ReadonlySet<string>, change: (model: Model) => T | Promise<T>): Promise<T> {
    const { model: read, qubesText } = await this.readQubes();
    const model = cloneModel(read); // qubes.json's qubes carry `rules: null` and no rulesProblem
    const byQid = new Map<number, RulesOnDisk>();
    const lazy: Qube[] = [];
    /** Other qubes' rules as this store last parsed or wrote them (under the daemon's lock, below). */
    const kept = new Map<Qube, RulesOnDisk>();
    const eager: Promise<void>[] = [];
    for (const q of model.qubes.values()) {
      const { qid, name, klass } = q;
      const path = this.rulesPath(name, klass);
      const other = !only.has(name);
      // Under the daemon's lifelong lock nobody else writes: what this store parsed or wrote last
      // is what another qube's file holds, taken with no stat (a thousand per edit) and no accessor
      // (installLazyRules turns an object into a slow dictionary: 4-12 ms at 1,000 qubes).
      const known = other && this.held ? this.parsed.get(path) : undefined;
      if (known && !known.problem) {
        q.rules = known.rules.slice();
        kept.set(q, { qid, name, klass, path, ...known });
        continue;
      }
      const seen = (r: ReadRules) => byQid.set(qid, { qid, name, klass, path, ...r });
      if (other) {
        lazy.push(q);
        installLazyRules(q, () => {
          const r = this.readRulesSync(path, name);
          seen(r);
          return r;
        });
        continue;
      }
      eager.push(
        this.readRules(path, name).then((r) => {
          seen(r);
          q.rules = r.rules && r.rules.slice();
          if (r.problem) q.rulesProblem = { ...r.problem };
        }),
      );
    }
    await Promise.all(eager);
    const result = await change(model);
    // Most rule edits change no entry: qubes.json as read, without formatting a thousand qubes.
    const same = qubesText !== null && model.default_netvm === read.default_netvm && model.uplink === read.uplink && model.qubes.size === read.qubes.size &&
      sameData(model.connections ?? [], read.connections ?? []) && sameData(model.forwards ?? [], read.forwards ?? []) &&
      [...model.qubes].every(([k, q]) => { const r = read.qubes.get(k); return r !== undefined && sameQubeEntry(q, r); });
    const text = same ? qubesText : this.qubesTextFor(read, model, { qubesText });
    const untouched = new Set(lazy.filter(rulesUnread));
    for (const [q, disk] of kept) {
      if (q.rulesProblem === undefined && sameItems(q.rules, disk.rules)) untouched.add(q);
      else byQid.set(q.qid, disk); // changed after all: written as any read qube's
    }
    const moved = model.qubes.size !== read.qubes.size || [...model.qubes].some(([k, q]) => {
      const was = read.qubes.get(k);
      return k !== q.name || was?.qid !== q.qid || was.klass !== q.klass;
    });
    if (moved) throw new BugError(`a change declared as ${only.size ? `a rule edit of ${[...only].join(', ')}` : 'a links change'} added, removed or renamed qubes`);
    await this.commitOnce({ qubesText, byQid }, model, text, untouched);
    return result;
  }

  /** readRules, synchronously (for installLazyRules). */
  private readRulesSync(path: string, qube: string): ReadRules {
    const known = this.cached(path, qube);
    if (known) return known;
    const key = statKey(path);
    let raw: Buffer | null;
    try {
      raw = readStateFileSync(path, MAX_FIREWALL_BYTES);
    } catch (e) {
      return { raw: null, rules: [], canonical: false, problem: rulesProblem(path, qube, reasonOf(e)) };
    }
    if (raw === null) return { raw: null, rules: null, canonical: false };
    return this.parseRules(path, qube, raw, key ?? '');
  }

  /** The globals of qubes.json (default_netvm, uplink): what wiring an engine needs, no rules read. */
  async loadGlobals(): Promise<Pick<Model, 'default_netvm' | 'uplink'>> {
    const { model } = await this.readQubes();
    return { default_netvm: model.default_netvm, ...(model.uplink !== undefined ? { uplink: model.uplink } : {}) };
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held) return fn();
    const opts = { waitMs: this.lockWaitMs, ...(this.onLockWait ? { onWait: this.onLockWait } : {}) };
    const lock = await io(lockFilePath(this.dir), 'lock', () => acquireLock(this.dir, opts));
    try {
      return await fn();
    } finally {
      await lock.release();
    }
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
    const bytes = await readBounded(qpath, MAX_QUBES_BYTES);
    if (bytes === null) return { model: emptyModel(), qubesText: null };
    const qubesText = bytes.toString('utf8');
    const r = parseQubesFileIsolating(qubesText, qpath);
    if (!r.ok) throw brokenFile(r.error);
    const model = r.value.problems.length ? { ...r.value.model, problems: r.value.problems } : r.value.model;
    if (key !== null) this.qubesParsed = { key, text: qubesText, model };
    return { model, qubesText };
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
      const take = (r: ReadRules) => {
        q.rules = r.rules;
        if (r.problem) q.rulesProblem = r.problem;
        byQid.set(q.qid, { qid: q.qid, name: q.name, klass: q.klass, path, ...r });
      };
      const known = this.cached(path, q.name);
      if (known) take(known);
      else misses.push(this.readRules(path, q.name).then(take));
    }
    await Promise.all(misses);
    const live = new Set([...byQid.values()].map((d) => d.path));
    for (const p of this.parsed.keys()) if (!live.has(p)) this.parsed.delete(p);
    return { model, state: { qubesText, byQid } };
  }

  /**
   * What `path` holds without reading it (no file, or unchanged since it was parsed); undefined when
   * it has to be read. A path that cannot even be stat'ed (its directory unreadable) is a problem.
   */
  private cached(path: string, qube: string): ReadRules | undefined {
    let key: string | null;
    try {
      key = statKey(path);
    } catch (e) {
      return { raw: null, rules: [], canonical: false, problem: rulesProblem(path, qube, reasonOf(e)) };
    }
    if (key === null) return { raw: null, rules: null, canonical: false };
    const hit = this.parsed.get(path);
    return hit && hit.key === key ? hit : undefined;
  }

  /**
   * One qube's rules from its file. Never throws for the file's sake: a file that is not a regular
   * file, too big, unreadable or not a valid firewall.xml gives `rules` [] and a problem (blocked).
   */
  private async readRules(path: string, qube: string): Promise<ReadRules> {
    const known = this.cached(path, qube);
    if (known) return known;
    const key = statKey(path); // cached() just stat'ed it without an error
    let raw: Buffer | null;
    try {
      raw = await readStateFile(path, MAX_FIREWALL_BYTES);
    } catch (e) {
      return { raw: null, rules: [], canonical: false, problem: rulesProblem(path, qube, reasonOf(e)) };
    }
    if (raw === null) return { raw: null, rules: null, canonical: false };
    return this.parseRules(path, qube, raw, key ?? '');
  }

  private parseRules(path: string, qube: string, raw: Buffer, key: string): ReadRules {
    const hit = this.parsed.get(path);
    if (hit && (hit.raw === raw || hit.raw.equals(raw))) {
      hit.key = key;
      return hit;
    }
    const r = readFirewallXml(raw.toString('utf8'));
    // A broken file is cached too (by its stat key), so a big one is not parsed again every time.
    const entry = r.ok
      ? // A version 1 file stays as it is on disk until this qube's rules change (then it is written as 2).
        { key, raw, rules: freezeRules(r.value.rules), canonical: r.value.canonical }
      : {
          key,
          raw,
          rules: [] as Rule[],
          canonical: false,
          problem: {
            ...rulesProblem(path, qube, `${r.error.ruleIndex === undefined ? '' : `rule ${r.error.ruleIndex}: `}${r.error.message}`),
            code: r.error.code,
          },
        };
    if (key) this.parsed.set(path, entry);
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
  private async commitOnce(state: DiskState, model: Model, text?: string, untouched?: ReadonlySet<Qube>): Promise<DiskState> {
    const nowSec = this.now() / 1000;
    const writes: { path: string; data: Buffer; dirThere?: boolean }[] = [];
    /** Files written from a rule list whose parse is that list (see below): cached as parsed. */
    const written = new Map<string, { raw: Buffer; rules: Rule[] }>();
    const removes: string[] = [];
    const byQid = new Map<number, RulesOnDisk>();
    for (const q of model.qubes.values()) {
      if (untouched?.has(q)) continue; // rules never read (a rules-only update): the file stays as it is
      const path = this.rulesPath(q.name, q.klass);
      const prev = state.byQid.get(q.qid);
      const moved = prev === undefined || prev.path !== path;
      if (q.rulesProblem) {
        // Still marked: the change did not replace the rules, so the file stays exactly as it is
        // (moved as bytes with a rename). Rules edited under the mark were edited blind: refused.
        if (prev?.problem === undefined || q.rules === null || q.rules.length !== 0) throw new QnetError(rulesUnknown(q));
        if (moved) {
          if (prev.raw === null)
            throw new QnetError({ ...rulesUnknown(q), message: `${prev.path}: cannot move a file qnet cannot read (${prev.problem.message})` });
          writes.push({ path, data: prev.raw });
        }
        byQid.set(q.qid, { ...prev, qid: q.qid, name: q.name, klass: q.klass, path });
        continue;
      }
      // Comparing data first spares formatting a big unchanged list; bytes decide in the end. A
      // broken file's [] is not its content: replaced rules are always written.
      const same = prev !== undefined && prev.problem === undefined && (sameItems(q.rules, prev.rules) || sameData(q.rules, prev.rules));
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
        // Rewritten in place: its directory is there (no mkdir on a rule edit's path).
        if (moved || prev.raw === null || !prev.raw.equals(raw)) writes.push({ path, data: raw, dirThere: !moved && prev.raw !== null });
        // What reading these bytes back gives is these rules (no rule expires, so none was dropped):
        // kept as parsed, so the next load of a big list does not parse it again after every edit.
        if (!q.rules.some((r) => r.expire !== undefined)) written.set(path, { raw, rules: q.rules.slice() });
      }
      // The state returned only feeds the second commit of a two-step change, whose model is private.
      byQid.set(q.qid, { qid: q.qid, name: q.name, klass: q.klass, path, raw, rules: q.rules, canonical });
    }
    const used = new Set([...byQid.values()].map((d) => d.path));
    // A removed qube's broken file goes with it, unless it is not a file we could read (a directory,
    // a FIFO, no permission): that was put there by hand and is left to the hand.
    const stale = [...state.byQid.values()].filter((d) => !used.has(d.path) && !(d.problem && d.raw === null)).map((d) => d.path);
    const qubesText = text ?? formatQubesFile(model);
    const qubesChanged = qubesText !== (state.qubesText ?? formatQubesFile(emptyModel()));

    // 1. rule files
    await Promise.all(
      writes.map(({ path, data, dirThere }) =>
        io(path, 'write', async () => {
          if (!dirThere) await mkdirDurable(dirname(path));
          await writeFileAtomic(path, data);
        }),
      ),
    );
    await Promise.all(removes.map((p) => this.removeRules(p)));
    // 2. the switch
    if (qubesChanged) {
      await io(qubesFilePath(this.dir), 'write', () => writeFileAtomic(qubesFilePath(this.dir), qubesText));
      // The lock held for good (the daemon): nobody else writes, so the next change will read these
      // bytes. Parsed now, once this change is answered, not at the start of the next one (≈ 10 ms
      // with 2,000 links, in front of the kernel). A failure here only means that read parses.
      if (this.held) setImmediate(() => void this.readQubes().catch(() => {}));
    }
    // 3. leftovers
    await Promise.all(stale.map((p) => this.removeRules(p)));
    for (const p of [...writes.map((w) => w.path), ...removes, ...stale]) {
      const w = written.get(p);
      const key = w ? statKey(p) : null;
      if (w && key) this.parsed.set(p, { key, raw: w.raw, rules: freezeRules(w.rules), canonical: true });
      else this.parsed.delete(p);
    }
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
 * Rules read on first access (a rules-only update's other qubes): `q.rules` and `q.rulesProblem`
 * become accessors that call `read` once, on the first get, set or copy (spread, clone, JSON), and
 * turn into plain data. The read is synchronous (a getter cannot wait) and goes through the parse
 * cache; while the update runs it is made under the writer lock. A model handed on after the update
 * (the daemon keeps the last one) reads the file as it is then: under the daemon's lifelong lock,
 * what the updates left. A mark removed before the read (replaceRules) stays removed. The accessor
 * functions are shared (`this` is the qube): a thousand qubes per update cost no closures.
 */
const unread = new WeakMap<Qube, () => ReadRules>();

function installLazyRules(q: Qube, read: () => ReadRules): void {
  unread.set(q, read);
  Object.defineProperty(q, 'rules', RULES_ACCESSOR);
  Object.defineProperty(q, 'rulesProblem', PROBLEM_ACCESSOR);
}

function rulesUnread(q: Qube): boolean {
  return unread.has(q);
}

function readLazyRules(q: Qube): void {
  const read = unread.get(q);
  if (!read) return;
  const r = read();
  unread.delete(q);
  const data = (key: 'rules' | 'rulesProblem', value: unknown) => Object.defineProperty(q, key, { value, writable: true, enumerable: true, configurable: true });
  const markKept = Object.getOwnPropertyDescriptor(q, 'rulesProblem')?.get === PROBLEM_ACCESSOR.get;
  data('rules', r.rules && r.rules.slice());
  if (markKept) {
    if (r.problem) data('rulesProblem', { ...r.problem });
    else delete q.rulesProblem;
  }
}

/** An accessor of a lazy key: read, then the plain property (never this accessor again). */
function lazyAccessor(key: 'rules' | 'rulesProblem'): PropertyDescriptor {
  return {
    get(this: Qube) {
      if (!unread.has(this)) return undefined; // not a lazy qube (an object made from one by prototype)
      readLazyRules(this);
      return this[key];
    },
    set(this: Qube, v: unknown) {
      readLazyRules(this);
      if (!unread.has(this)) Object.defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
    },
    enumerable: true,
    configurable: true,
  };
}
const RULES_ACCESSOR = lazyAccessor('rules');
const PROBLEM_ACCESSOR = lazyAccessor('rulesProblem');

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

/** A state file that must be readable for anything to work (qubes.json): refused in one line. */
async function readBounded(path: string, max: number): Promise<Buffer | null> {
  try {
    return await readStateFile(path, max);
  } catch (e) {
    if (e instanceof StateFileError) throw new QnetError(diag(STORE_IO, oneLine(e.message), { file: path }));
    throw ioError(path, 'read', e);
  }
}

/** The mark on a qube whose file is broken: the file and what is wrong, one line. */
function rulesProblem(path: string, qube: string, reason: string): Diagnostic {
  return diag(STORE_IO, oneLine(`${path}: ${reason}`), {
    file: path,
    qube,
    hint: 'the qube is blocked until the file is fixed by hand or its rules are replaced',
  });
}

function reasonOf(e: unknown): string {
  if (e instanceof StateFileError) return e.reason;
  if (isCode(e, 'EACCES') || isCode(e, 'EPERM')) return 'cannot read: permission denied';
  return `cannot read: ${e instanceof QnetError || e instanceof Error ? e.message : String(e)}`;
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

function brokenQubesFile(problems: Diagnostic[]): QnetError {
  const [first] = problems;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new QnetError({
    ...first!,
    code: STORE_IO,
    message: `${first!.message}${more}; this change would rewrite the file without the entries qnet cannot read`,
    hint: 'fix the file by hand first; changes to rules of other qubes still work',
  });
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
