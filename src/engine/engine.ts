// The engine keeps the kernel (through a Backend) in step with the model. Every operation is:
// change the model, then converge — bring namespaces up or down, (re)link clients, compile, load
// each node's delta, cut flows the new rules forbid. The daemon keeps one Engine for its lifetime
// (so it remembers what is loaded and sends deltas); the offline CLI makes one per command and
// tells it which model the kernel already holds.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Backend, Flow } from '../backend/backend.js';
import { compile, compileClient, namesToResolve, type ClientFragment, type CompileInput } from '../compile/compile.js';
import type { Resolution, Resolver } from '../compile/dns.js';
import { clientChain, clientOwns, FIREWALL_TABLE } from '../compile/names.js';
import type { Chain, NamedMap, NamedSet, Ruleset, Table } from '../ir/types.js';
import { diffTransaction, sameSet } from '../ir/diff.js';
import { netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { WORLD_NODE, type NetPlan, type UplinkKind } from '../model/netplan.js';
import type { Model, Qube } from '../model/qube.js';
import { effectiveRules, type RuleList } from '../model/rule.js';
import { onlyOpens } from '../model/firewall-ops.js';
import { clientsOf, netvmChain, planNetwork, vifName, type PlanOptions } from '../model/topology.js';
import { evalHook } from '../sim/evaluate.js';
import { PROTO } from '../sim/packet.js';

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
  | { type: 'warning'; diag: Diagnostic };

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
  now: () => number;
  emit?: (e: EngineEvent) => void;
  world?: WorldControl;
  /**
   * Load rule edits additions-only (ir/diff.ts overlayTransaction: no RCU wait in nft) and remove
   * what they leave behind later, with tidy(). For the daemon, which stays to tidy up.
   */
  overlay?: boolean;
  /**
   * A file naming the nodes whose kernel holds an overlay's leftovers, one per line: written before
   * an overlay loads, removed once tidy. If the daemon dies in between, whoever converges next (the
   * offline CLI) reads it and loads those nodes whole instead of assuming they hold compile()'s
   * ruleset. Namespaces do not outlive a reboot, so a plain write is enough.
   */
  untidyFile?: string;
}

export interface ConvergeOptions {
  /** What the kernel holds already (offline CLI: the model before this command's change). */
  assume?: Model;
}


/** Overlays before an edit tidies up first (a burst of edits leaves this many clients' old rules at most). */
const MAX_OVERLAYS = 32;

export class Engine {
  /** What is loaded in each node, as far as this engine knows; deltas are computed against it. */
  readonly applied = new Map<string, Ruleset>();
  /**
   * Nodes an overlay left untidy. `applied` has what such a node holds (live rules with dead ones
   * below, sets under `-gN` names beside unused ones); `live` is what it behaves as, and
   * `canonical` the same under compile()'s names, which tidy() loads.
   */
  private readonly untidy = new Map<string, { live: Ruleset; canonical: Ruleset }>();
  /** Overlays loaded since the last tidy(): each leaves a client's old rules and sets behind. */
  private overlays = 0;
  /** Per client qube: how its rules stand in its netvm; per app qube: its own input rules. */
  readonly status = new Map<string, ApplyStatus>();
  readonly resolutions = new Map<string, Resolution>();
  /** When each name's answer runs out (now + TTL), for the refresh timer. */
  private readonly expiresAt = new Map<string, number>();
  /** The plan of the last converge: what is up and linked (for rule-only edits). */
  private plan?: NetPlan;
  /** How many applies were handled, successful or not (Qubes' qubes-firewall-handled counter). */
  handled = 0;
  lastDiagnostics: Diagnostic[] = [];

  constructor(private readonly deps: EngineDeps) {}

  private emit(e: EngineEvent): void {
    this.deps.emit?.(e);
  }

  // ---- Lifecycle ------------------------------------------------------------------------------

  /** Mark running qubes whose namespace is gone as halted (killed, namespace deleted). */
  async noticeDeaths(model: Model, live?: ReadonlySet<string>, onlyLoaded = false): Promise<string[]> {
    live ??= await this.deps.backend.live();
    const died = [...model.qubes.values()].filter(
      (q) => q.state === 'Running' && !live.has(q.name) && (!onlyLoaded || this.applied.has(q.name)),
    );
    for (const q of died) {
      q.state = 'Halted';
      this.applied.delete(q.name);
    }
    if (died.length) {
      this.emit({ type: 'died', qubes: died.map((q) => q.name) });
      const detached = [...model.qubes.values()].filter(
        (c) => c.state === 'Running' && died.some((d) => d.name === netvmName(model, c)),
      );
      if (detached.length) this.emit({ type: 'detached', qubes: detached.map((q) => q.name) });
    }
    return died.map((q) => q.name);
  }

  // ---- Converge -------------------------------------------------------------------------------

  /**
   * Make the kernel match the model: namespaces, links, rules, flows. Rule failures do not throw:
   * the affected qube is blocked (fail closed) and the failure is recorded and emitted.
   */
  async converge(model: Model, opts: ConvergeOptions = {}): Promise<void> {
    const { backend } = this.deps;
    // One look at the kernel for the whole converge. A qube this engine loaded whose namespace is
    // gone now died in the meantime: it is reported dead, never silently re-created.
    const live = await backend.live();
    await this.noticeDeaths(model, live, true);
    const runningAll = [...model.qubes.values()].filter((q) => q.state === 'Running');
    const runningNames = new Set(runningAll.map((q) => q.name));
    const running = runningAll.filter((q) => qubeIp(model, q) !== null);
    const plan = planNetwork(model, { ...this.deps.planOptions, uplink: this.deps.uplink, only: runningNames });
    // A running qube without network (vault) still gets a namespace: a stack of its own, no links.
    for (const q of runningAll)
      if (!plan.nodes.some((n) => n.name === q.name))
        plan.nodes.push({ name: q.name, kind: 'qube', ifaces: [], routes: [], forwarding: false });
    const needWorld = plan.nodes.some((n) => n.name === WORLD_NODE);

    // Namespaces: stop what should not run, start what should (netvms before clients).
    const stop = [...live].filter((n) => n !== WORLD_NODE && !runningNames.has(n));
    if (stop.length) {
      await backend.tearDown(stop);
      for (const n of stop) this.applied.delete(n);
      this.emit({ type: 'stopped', qubes: stop });
    }
    if (needWorld && !live.has(WORLD_NODE)) await this.deps.world?.ensure(plan);
    if (!needWorld && live.has(WORLD_NODE)) await this.deps.world?.destroy();
    const start = [...model.qubes.values()]
      .filter((q) => runningNames.has(q.name) && !live.has(q.name))
      .sort((a, b) => netvmChain(model, a).length - netvmChain(model, b).length)
      .map((q) => q.name);
    let early: ReturnType<typeof compile> | undefined;
    if (start.length) {
      // Rules go in with the namespace (names not yet resolved are off until the next step).
      early = compile({ model, plan, resolutions: this.resolutions, now: this.deps.now() });
      const rules = new Map(start.filter((n) => early!.rulesets.has(n)).map((n) => [n, early!.rulesets.get(n)!] as const));
      await backend.bringUp(plan, start, rules);
      for (const [n, rs] of rules) this.applied.set(n, rs);
      this.emit({ type: 'started', qubes: start });
    }

    // Links: reattach clients whose netvm came back, follow netvm changes.
    const netvms = [...runningNames].filter((n) => model.qubes.get(n)?.provides_network);
    const links = await backend.links(needWorld ? [...netvms, WORLD_NODE] : netvms);
    const reattached: string[] = [];
    for (const q of running) {
      const nv = netvmName(model, q);
      const want = nv !== null && runningNames.has(nv) ? nv : null;
      if (want === null) continue;
      if (links.get(q.name) !== want) await backend.relink(plan, q.name);
      // A client that was running before its netvm (re)started has been reattached.
      if (start.includes(want) && !start.includes(q.name)) reattached.push(q.name);
    }
    if (reattached.length) this.emit({ type: 'reattached', qubes: reattached });

    this.plan = plan;
    await this.applyRules(model, plan, opts, early);
  }

  /**
   * The fast path for the commonest change: only these qubes' rules changed. Each one's chain and
   * sets are recompiled alone and patched into what its netvm has loaded; the delta is that one
   * chain and its sets (EXAMPLES.md Example 2), as an overlay when the engine has one (see
   * EngineDeps.overlay). Returns false when the engine does not know what the netvm holds (then
   * converge() does the full work).
   */
  async applyRuleEdits(model: Model, qubes: readonly string[], previous?: ReadonlyMap<string, RuleList>): Promise<boolean> {
    const plan = this.plan;
    if (!plan) return false;
    const now = this.deps.now();
    const byNetvm = new Map<string, string[]>();
    for (const name of qubes) {
      const q = model.qubes.get(name);
      const nv = q ? netvmName(model, q) : null;
      if (!q || q.state !== 'Running' || nv === null || model.qubes.get(nv)?.state !== 'Running') continue;
      if (!this.applied.has(nv)) return false;
      byNetvm.set(nv, [...(byNetvm.get(nv) ?? []), name]);
    }
    // A long burst of edits is tidied now and then, so what overlays leave stays bounded.
    if (this.overlays >= MAX_OVERLAYS) await this.tidy(model);
    await this.resolve(model, now, new Set(qubes));
    const input = { model, plan, resolutions: this.resolutions, now };
    for (const [nv, clients] of byNetvm) {
      const before = this.applied.get(nv)!;
      const pending = this.untidy.get(nv);
      let after = pending?.live ?? before;
      let canonical = pending?.canonical ?? before;
      for (const c of clients) {
        const { fragments, diagnostics } = compileClient(input, nv, c);
        for (const d of diagnostics) if (d.severity === 'warning') this.emit({ type: 'warning', diag: d });
        // An overlay keeps the kernel's sets until tidy(): new sets need names of their own. A
        // client's sets are all named after its chain, so only those are looked at.
        const mine = (rs: Ruleset, f: ClientFragment) => {
          const owns = clientOwns(f.chain.name);
          return (firewallTable(rs, f.family)?.sets ?? []).filter((x) => owns(x.name));
        };
        const apart = (f: ClientFragment) => renameSetsApart(f, new Map(mine(after, f).map((x) => [x.name, x])), new Set(mine(before, f).map((x) => x.name)));
        const live = patchClient(after, this.deps.overlay ? fragments.map(apart) : fragments);
        const named = this.deps.overlay ? patchClient(canonical, fragments) : live;
        if (!live || !named) return false;
        after = live;
        canonical = named;
      }
      // An edit that only inserts accepts or removes drops cannot forbid an open flow: no need to
      // list conntrack for it (two processes per edit otherwise).
      const mayClose = clients.filter((c) => {
        const old = previous?.get(c);
        return old === undefined || !onlyOpens(effectiveRules(old, now), effectiveRules(model.qubes.get(c)!.rules, now));
      });
      if (await this.applyNode(model, nv, before, after, canonical)) await this.cutForbiddenFlows(model, nv, after, mayClose);
    }
    return true;
  }

  /**
   * The rule-edit path of an engine that loaded nothing (the offline CLI): the kernel is assumed to
   * hold compile(`before`), and `model` differs from it only in some qubes' rules. Each edited
   * client is compiled alone, before and after, and its netvm gets one delta of that client's chain
   * and sets; nothing else is compiled or diffed. False (then converge, which has the fail-closed
   * ladder) when a node is named in the untidy file, a client is new to its netvm, or the load fails.
   */
  async applyRuleEditsAssumed(model: Model, before: Model): Promise<boolean> {
    const now = this.deps.now();
    const leftovers = await this.readUntidyFile();
    const byNetvm = new Map<string, string[]>();
    const only = new Set<string>();
    for (const [name, q] of model.qubes) {
      if (before.qubes.get(name)?.rules === q.rules) continue;
      const nv = netvmName(model, q);
      if (q.state !== 'Running' || nv === null || model.qubes.get(nv)?.state !== 'Running') continue;
      if (leftovers.has(nv)) return false;
      byNetvm.set(nv, [...(byNetvm.get(nv) ?? []), name]);
      only.add(name);
      for (const x of netvmChain(model, q)) only.add(x.name);
    }
    if (!byNetvm.size) return true;
    // The plan of the edited clients and their netvms only: all compileClient needs.
    const plan = planNetwork(model, { ...this.deps.planOptions, uplink: this.deps.uplink, only });
    await this.resolve(before, now, only);
    await this.resolve(model, now, only);
    for (const [nv, clients] of byNetvm) {
      const was = clientsRuleset({ model: before, plan, resolutions: this.resolutions, now }, nv, clients);
      const want = clientsRuleset({ model, plan, resolutions: this.resolutions, now }, nv, clients, (d) => this.emit({ type: 'warning', diag: d }));
      if (!was || !want) return false;
      if (diffTransaction(was, want).size === 0) continue;
      this.handled++;
      try {
        await this.deps.backend.apply(nv, was, want);
      } catch {
        return false; // nothing changed (nft is atomic): converge takes the usual ladder
      }
      this.markApplied(model, nv, want, now);
      this.emit({ type: 'applied', node: nv, full: false });
      const mayClose = clients.filter((c) => !onlyOpens(effectiveRules(before.qubes.get(c)!.rules, now), effectiveRules(model.qubes.get(c)!.rules, now)));
      if (!mayClose.length) continue;
      // Flows are judged by the node's whole forward path, so a tightening compiles the node (after
      // the load: the kernel enforces the edit meanwhile).
      const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
      const full = planNetwork(model, { ...this.deps.planOptions, uplink: this.deps.uplink, only: running });
      const node = compile({ model, plan: { ...full, nodes: full.nodes.filter((n) => n.name === nv) }, resolutions: this.resolutions, now }).rulesets.get(nv);
      if (node) await this.cutForbiddenFlows(model, nv, node, mayClose);
    }
    return true;
  }

  /** Compile for the running nodes and load each node's delta; then cut forbidden flows. */
  private async applyRules(model: Model, plan: NetPlan, opts: ConvergeOptions, early?: ReturnType<typeof compile>): Promise<void> {
    const now = this.deps.now();
    const answersChanged = (await this.resolve(model, now)).size > 0;
    // A start compiled everything moments ago; compile again only if DNS said something new.
    const { rulesets, diagnostics } = early && !answersChanged ? early : compile({ model, plan, resolutions: this.resolutions, now });
    this.lastDiagnostics = diagnostics;
    for (const d of diagnostics) if (d.severity === 'warning') this.emit({ type: 'warning', diag: d });
    const assumed = opts.assume ? this.compileAssumed(opts.assume, plan, now) : undefined;
    // A daemon that died before tidying left nodes that hold more than compile() gives: those are
    // loaded whole (and the file goes once they are).
    const leftovers = opts.assume ? await this.readUntidyFile() : new Set<string>();
    for (const n of leftovers) assumed?.delete(n);
    const cleaned = new Set<string>();

    for (const [node, after] of rulesets) {
      const before = this.applied.get(node) ?? assumed?.get(node) ?? null;
      if (before && diffTransaction(before, after).size === 0) {
        this.applied.set(node, before); // what is loaded, object for object
        continue;
      }
      const ok = await this.applyNode(model, node, before, after);
      if (ok) cleaned.add(node);
      // A node loaded from scratch has no flows to judge from before.
      if (ok && before) await this.cutForbiddenFlows(model, node, after, changedClients(model, node, before, after));
    }
    if (leftovers.size) await this.writeUntidyFile([...leftovers].filter((n) => rulesets.has(n) && !cleaned.has(n)));
  }

  private async readUntidyFile(): Promise<Set<string>> {
    if (!this.deps.untidyFile) return new Set();
    const text = await readFile(this.deps.untidyFile, 'utf8').catch(() => '');
    return new Set(text.split('\n').filter(Boolean));
  }

  /** Keep the untidy file in step with `untidy` (plus `also`: about to be untidy, or still). */
  private async writeUntidyFile(also: Iterable<string> = []): Promise<void> {
    const f = this.deps.untidyFile;
    if (!f) return;
    const nodes = new Set([...this.untidy.keys(), ...also]);
    if (!nodes.size) return rm(f, { force: true });
    await mkdir(dirname(f), { recursive: true });
    await writeFile(f, [...nodes].sort().join('\n') + '\n');
  }

  private compileAssumed(assume: Model, plan: NetPlan, now: number): Map<string, Ruleset> {
    const running = new Set([...assume.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const p = planNetwork(assume, { ...this.deps.planOptions, uplink: plan.uplink, only: running });
    return compile({ model: assume, plan: p, resolutions: this.resolutions, now }).rulesets;
  }

  /**
   * Resolve the names rules use: new names now, known names when their TTL has run out. Returns the
   * names whose answer is new or differs from the one held.
   */
  async resolve(model: Model, now: number, only?: ReadonlySet<string>): Promise<Set<string>> {
    const names = namesToResolve(model, now, only);
    const due = names.filter((n) => {
      const r = this.resolutions.get(n);
      return !r || this.expiresAt.get(n)! <= now;
    });
    const changed = new Set<string>();
    if (!due.length) return changed;
    const got = await this.deps.resolver.resolveAll(due);
    for (const [n, r] of got) {
      const old = this.resolutions.get(n);
      if (!old || old.a.join() !== r.a.join() || old.aaaa.join() !== r.aaaa.join() || old.error !== r.error) changed.add(n);
      this.resolutions.set(n, r);
      this.expiresAt.set(n, now + r.ttl);
      if (r.error)
        this.emit({
          type: 'warning',
          diag: warning('QNET4101', `cannot resolve '${n}' (${r.error}): the rules that use it are disabled`),
        });
    }
    return changed;
  }

  /**
   * DNS refresh (the daemon's timer): names whose TTL ran out are asked again; only the qubes whose
   * rules name a changed answer are recompiled, through the fast path — a set's elements change,
   * nothing else is reloaded. Flows to an address a name no longer has are cut, as any tightening.
   * False when the engine cannot take the fast path (then converge).
   */
  async refreshNames(model: Model): Promise<boolean> {
    const now = this.deps.now();
    const changed = await this.resolve(model, now);
    if (!changed.size) return true;
    const users = [...model.qubes.values()]
      .filter((q) => effectiveRules(q.rules, now).some((r) => r.dsthost?.type === 'dsthost' && changed.has(r.dsthost.text)))
      .map((q) => q.name);
    return this.applyRuleEdits(model, users);
  }

  /** Seconds until the next DNS answer expires (for the daemon's refresh timer), or undefined. */
  nextDnsRefresh(now: number): number | undefined {
    let min: number | undefined;
    for (const t of this.expiresAt.values()) min = Math.min(min ?? Infinity, t - now);
    return min === undefined ? undefined : Math.max(1, min);
  }

  /**
   * Load one node (EXAMPLES.md Examples 2 and 12): delta; on failure a full load; on failure again,
   * the clients whose chains changed are blocked (their chain becomes one reject) and everyone else
   * keeps exactly what they had. With `canonical` (a rule edit of an overlay engine: `after` under
   * compile()'s set names), the delta is an overlay and tidy() loads `canonical` later.
   */
  private async applyNode(model: Model, node: string, before: Ruleset | null, after: Ruleset, canonical = after): Promise<boolean> {
    const { backend } = this.deps;
    this.handled++;
    const at = this.deps.now();
    let firstError: unknown;
    if (canonical !== after && !this.untidy.has(node)) await this.writeUntidyFile([node]);
    for (const b of before ? [before, null] : [null]) {
      try {
        const want = b === null ? canonical : after;
        const holds = await backend.apply(node, b, want, { overlay: want !== canonical });
        this.applied.set(node, holds);
        if (holds !== canonical) this.untidy.set(node, { live: after, canonical });
        else if (this.untidy.delete(node)) await this.writeUntidyFile();
        if (holds !== want) this.overlays++;
        this.markApplied(model, node, after, at);
        this.emit({ type: 'applied', node, full: b === null });
        return true;
      } catch (e) {
        firstError ??= e;
      }
    }
    const d = diag('QNET5001', `cannot load the rules of ${node}: ${(firstError as Error).message}`, { qube: node });
    const suspects = changedClients(model, node, before, after);
    if (suspects.length && before) {
      const blocked = blockClients(after, model, suspects);
      try {
        await backend.apply(node, null, blocked);
        this.applied.set(node, blocked);
        if (this.untidy.delete(node)) await this.writeUntidyFile();
        for (const c of suspects) {
          this.status.set(c, { state: 'blocked-fallback', at, diag: { ...d, qube: c } });
          this.emit({ type: 'blocked', qube: c, node, diag: d });
        }
        return true;
      } catch {
        // fall through: nothing changed in the node (nft transactions are atomic)
      }
    }
    for (const c of suspects.length ? suspects : [node]) this.status.set(c, { state: 'failed', at, diag: d });
    this.emit({ type: 'apply-failed', node, diag: d });
    return false;
  }

  /** Whether some node holds rules or sets an overlay left behind. */
  get needsTidy(): boolean {
    return this.untidy.size > 0;
  }

  /**
   * Remove what overlays left in the kernel: the dead rules below each rewritten chain's live ones
   * and the sets only they used; sets go back to compile()'s names (so the node holds exactly what
   * a full compile gives, which the offline CLI and converge assume). Behaviour does not change. A
   * failure goes the usual way (full load, then the affected clients blocked).
   */
  async tidy(model: Model): Promise<void> {
    this.overlays = 0;
    for (const [node, { canonical }] of [...this.untidy]) {
      const holds = this.applied.get(node);
      this.untidy.delete(node);
      if (!holds) continue;
      try {
        await this.deps.backend.apply(node, holds, canonical);
        this.applied.set(node, canonical);
      } catch {
        await this.applyNode(model, node, holds, canonical);
      }
    }
    await this.writeUntidyFile();
  }

  private markApplied(model: Model, node: string, rs: Ruleset, at: number): void {
    this.status.set(node, { state: 'applied', at });
    if (rs.tables.some((t) => t.name === FIREWALL_TABLE))
      for (const c of clientsOf(model, node)) if (c.state === 'Running') this.status.set(c.name, { state: 'applied', at });
  }

  /**
   * Tightening a rule cuts established flows it no longer allows, as Qubes R4.2 does: each flow a
   * client of this netvm has open is judged as a new packet by the forward hook of the new rules;
   * the refused ones are deleted from conntrack. Ports are compared as numbers (Qubes compares
   * strings: reference §4.4).
   */
  private async cutForbiddenFlows(model: Model, node: string, after: Ruleset, changed: readonly string[]): Promise<void> {
    if (!changed.length) return;
    const byAddr = new Map<string, Qube>();
    for (const name of changed) {
      const q = model.qubes.get(name)!;
      for (const a of [qubeIp(model, q), qubeIp6(model, q)]) if (a) byAddr.set(a, q);
    }
    const families = new Set([...byAddr.keys()].map((a) => (a.includes(':') ? 6 : 4) as 4 | 6));
    const flows = (await Promise.all([...families].map((f) => this.deps.backend.flows(node, f)))).flat();
    for (const f of flows) {
      const q = byAddr.get(f.src);
      if (!q) continue;
      const l4 = (PROTO as Record<string, number>)[f.proto];
      if (l4 === undefined) continue;
      const r = evalHook(after, 'forward', f.family, {
        family: f.family,
        saddr: f.src,
        daddr: f.dst,
        l4proto: l4,
        ...(f.sport !== undefined ? { sport: f.sport } : {}),
        ...(f.dport !== undefined ? { dport: f.dport } : {}),
        iifname: vifName(q),
        iifgroup: 2,
        oifname: 'eth0',
        oifgroup: 1,
        ct: 'new',
      });
      if (r.verdict === 'accept') continue;
      await this.deps.backend.deleteFlow(node, f);
      this.emit({ type: 'flow-cut', node, flow: f, qube: q.name });
    }
  }
}

/**
 * The ruleset with a client's chain and sets replaced by freshly compiled fragments; every other
 * object is shared with `rs` (the diff then skips it by reference). Null if the client has no chain
 * there yet (a new client: the full path adds it to the dispatch map too).
 */
function patchClient(rs: Ruleset, fragments: readonly ClientFragment[]): Ruleset | null {
  const tables = [...rs.tables];
  for (const fr of fragments) {
    const i = tables.findIndex((t) => t.name === FIREWALL_TABLE && t.family === fr.family);
    const t = tables[i];
    if (!t) return null;
    const at = t.chains.findIndex((c) => c.name === fr.chain.name);
    if (at < 0) return null;
    const mine = clientOwns(fr.chain.name);
    const chains = [...t.chains];
    chains[at] = fr.chain;
    tables[i] = { ...t, chains, sets: [...t.sets.filter((x) => !mine(x.name)), ...fr.sets] };
  }
  return { tables };
}

/**
 * The fragment ready for an overlay, which adds sets but cannot change one: a set the node has
 * already, the same, is the node's own object (nothing to load); one whose name the kernel uses for
 * something else is renamed to a free `<name>-g<N>` (still prefixed by the client chain's name),
 * and the rules point at the new names. `live`: the sets the node's live rules use, by name.
 */
function renameSetsApart(fr: ClientFragment, live: ReadonlyMap<string, NamedSet | NamedMap>, taken: ReadonlySet<string>): ClientFragment {
  const renamed = new Map<string, string>();
  const kept = new Map<string, NamedSet | NamedMap>();
  for (const x of fr.sets) {
    const have = live.get(x.name);
    if (have && sameSet(have, x)) kept.set(x.name, have);
    else if (taken.has(x.name)) {
      let n = 1;
      while (taken.has(`${x.name}-g${n}`)) n++;
      renamed.set(x.name, `${x.name}-g${n}`);
    }
  }
  if (!renamed.size && !kept.size) return fr;
  const to = (name: string) => renamed.get(name) ?? name;
  return {
    family: fr.family,
    sets: fr.sets.map((x) => (kept.get(x.name) as NamedSet | undefined) ?? (renamed.has(x.name) ? { ...x, name: to(x.name) } : x)),
    chain: {
      ...fr.chain,
      rules: fr.chain.rules.map((r) => ({
        ...r,
        matches: r.matches.map((m) => (m.kind === 'in-set' ? { ...m, set: to(m.set) } : m)),
        stmts: r.stmts.map((st) => (st.kind === 'vmap' ? { ...st, map: to(st.map) } : st)),
      })),
    },
  };
}

/**
 * A ruleset of just these clients' chains and sets in `netvm`'s firewall tables: what compile()
 * puts there for them. Diffed against the same for the old rules, it is the edit's delta. Null if a
 * client has no chain there (nothing to patch: the full path adds it to the dispatch map too).
 */
function clientsRuleset(input: CompileInput, netvm: string, clients: readonly string[], warn?: (d: Diagnostic) => void): Ruleset | null {
  const tables = new Map<string, Table>();
  for (const c of clients) {
    const { fragments, diagnostics } = compileClient(input, netvm, c);
    for (const d of diagnostics) if (d.severity === 'warning') warn?.(d);
    if (!fragments.length) return null;
    for (const f of fragments) {
      const t = tables.get(f.family) ?? tables.set(f.family, { family: f.family, name: FIREWALL_TABLE, sets: [], chains: [] }).get(f.family)!;
      t.chains.push(f.chain);
      t.sets.push(...f.sets);
    }
  }
  return { tables: [...tables.values()] };
}

function firewallTable(rs: Ruleset | null, family: 'ip' | 'ip6'): Table | undefined {
  return rs?.tables.find((t) => t.name === FIREWALL_TABLE && t.family === family);
}

/** Chains of a client in a firewall table: its own chain and the chains it jumps into. */
function clientChains(t: Table | undefined, chain: string): Chain[] {
  const owns = clientOwns(chain);
  return t ? t.chains.filter((c) => owns(c.name)) : [];
}

/** Clients of `node` whose firewall chains differ between two rulesets (all of them for a full load). */
function changedClients(model: Model, node: string, before: Ruleset | null, after: Ruleset): string[] {
  const out: string[] = [];
  for (const c of clientsOf(model, node)) {
    if (c.state !== 'Running') continue;
    const addrs: [string | null, 'ip' | 'ip6'][] = [
      [qubeIp(model, c), 'ip'],
      [qubeIp6(model, c), 'ip6'],
    ];
    const differs = addrs.some(([a, fam]) => {
      if (!a) return false;
      const chain = clientChain(a);
      const x = clientChains(firewallTable(before, fam), chain);
      const y = clientChains(firewallTable(after, fam), chain);
      return JSON.stringify(stripOrigins(x)) !== JSON.stringify(stripOrigins(y)) || setsDiffer(before, after, fam, chain);
    });
    if (differs) out.push(c.name);
  }
  return out;
}

function setsDiffer(a: Ruleset | null, b: Ruleset, fam: 'ip' | 'ip6', chain: string): boolean {
  const owns = clientOwns(chain);
  const pick = (rs: Ruleset | null) => JSON.stringify(firewallTable(rs, fam)?.sets.filter((s) => owns(s.name)) ?? []);
  return pick(a) !== pick(b);
}

const stripOrigins = (cs: Chain[]) => cs.map((c) => ({ ...c, rules: c.rules.map((r) => ({ m: r.matches, s: r.stmts })) }));

/** The ruleset with these clients' chains reduced to one reject (the blocked fallback). */
function blockClients(rs: Ruleset, model: Model, clients: readonly string[]): Ruleset {
  const chains = new Set<string>();
  for (const name of clients) {
    const q = model.qubes.get(name)!;
    for (const a of [qubeIp(model, q), qubeIp6(model, q)]) if (a) chains.add(clientChain(a));
  }
  return {
    tables: rs.tables.map((t) => {
      if (t.name !== FIREWALL_TABLE) return t;
      const v6 = t.family === 'ip6';
      const owners = [...chains].map(clientOwns);
      const owned = (n: string) => owners.some((owns) => owns(n));
      return {
        ...t,
        sets: t.sets.filter((s) => !owned(s.name)),
        chains: t.chains
          .filter((c) => !owned(c.name) || chains.has(c.name))
          .map((c) =>
            chains.has(c.name)
              ? {
                  ...c,
                  rules: [
                    {
                      matches: [],
                      stmts: [
                        {
                          kind: 'verdict' as const,
                          verdict: { kind: 'reject' as const, with: v6 ? { type: 'icmpv6' as const, code: 'admin-prohibited' as const } : { type: 'icmp' as const, code: 'admin-prohibited' as const } },
                        },
                      ],
                      origin: { text: `blocked: ${c.comment ?? c.name} (rules failed to load)` },
                      comment: `blocked: ${c.comment ?? c.name} (rules failed to load)`,
                    },
                  ],
                }
              : c,
          ),
      };
    }),
  };
}
