// Converge: make the kernel match the model. Namespaces (stop what should not run, start what
// should, netvms before clients), the world, links (reattach clients whose netvm came back, follow
// netvm changes), then every running node's rules as one delta each, and flows the new rules
// forbid cut. Also noticing deaths: a qube whose namespace is gone is halted, never re-created.
import { compile } from '../compile/compile.js';
import { changedClients } from '../compile/fragments.js';
import { diffTransaction } from '../ir/diff.js';
import type { Ruleset } from '../ir/types.js';
import { gateway, gateway6, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import { WORLD_NODE, type NetPlan } from '../model/netplan.js';
import type { Model, Qube } from '../model/qube.js';
import { netvmChain, planNetwork } from '../model/topology.js';
import type { ConvergeOptions, EngineCore } from './types.js';

type Compiled = ReturnType<typeof compile>;

/** The plan of the model's running qubes, as converge makes it (and EngineCore.plan keeps it). */
export function runningPlan(core: EngineCore, model: Model): NetPlan {
  const runningAll = [...model.qubes.values()].filter((q) => q.state === 'Running');
  const plan = planNetwork(model, { ...core.deps.planOptions, uplink: core.deps.uplink, only: new Set(runningAll.map((q) => q.name)) });
  // A running qube without network (vault) still gets a namespace: a stack of its own, no links.
  const inPlan = new Set(plan.nodes.map((n) => n.name));
  for (const q of runningAll) if (!inPlan.has(q.name)) plan.nodes.push({ name: q.name, kind: 'qube', ifaces: [], routes: [], forwarding: false });
  return plan;
}

/** What a client's uplink is made of besides its netvm: its addresses and its gateways. */
const linkAddrs = (model: Model, q: Qube) => JSON.stringify([qubeIp(model, q), qubeIp6(model, q), gateway(model, q), gateway6(model, q)]);

export class Converger {
  /** Per running netvm, the connection routes last made there (JSON), so unchanged ones cost nothing. */
  private readonly linkRoutes = new Map<string, string>();
  /** Per running client, linkAddrs() of its uplink as last made or adopted. */
  private readonly linked = new Map<string, string>();
  constructor(private readonly core: EngineCore) {}

  /** Mark running qubes whose namespace is gone as halted (killed, namespace deleted). */
  async noticeDeaths(model: Model, live?: ReadonlySet<string>, onlyLoaded = false): Promise<string[]> {
    const { core } = this;
    live ??= await core.deps.backend.live();
    const died = [...model.qubes.values()].filter((q) => q.state === 'Running' && !live.has(q.name) && (!onlyLoaded || core.mirror.applied.has(q.name)));
    for (const q of died) {
      q.state = 'Halted';
      core.mirror.applied.delete(q.name);
    }
    if (died.length) {
      await core.drops?.stop(died.map((q) => q.name)); // its reader would keep the namespace, links and all
      core.emit({ type: 'died', qubes: died.map((q) => q.name) });
      const detached = [...model.qubes.values()].filter((c) => c.state === 'Running' && died.some((d) => d.name === netvmName(model, c)));
      if (detached.length) core.emit({ type: 'detached', qubes: detached.map((q) => q.name) });
    }
    return died.map((q) => q.name);
  }

  async converge(model: Model, opts: ConvergeOptions): Promise<void> {
    const { core } = this;
    const { backend } = core.deps;
    // One look at the kernel for the whole converge. A qube this engine loaded whose namespace is
    // gone now died in the meantime: it is reported dead, never silently re-created.
    const live = await backend.live();
    await this.noticeDeaths(model, live, true);
    const runningAll = [...model.qubes.values()].filter((q) => q.state === 'Running');
    const runningNames = new Set(runningAll.map((q) => q.name));
    const plan = runningPlan(core, model);
    const needWorld = plan.nodes.some((n) => n.name === WORLD_NODE);

    const stop = [...live].filter((n) => n !== WORLD_NODE && !runningNames.has(n));
    if (stop.length) {
      await core.drops?.stop(stop); // a reader holds its namespace
      await backend.tearDown(stop);
      for (const n of stop) {
        core.mirror.applied.delete(n);
        this.linked.delete(n);
      }
      core.emit({ type: 'stopped', qubes: stop });
    }
    if (needWorld && !live.has(WORLD_NODE)) await core.deps.world?.ensure(plan);
    if (!needWorld && live.has(WORLD_NODE)) await core.deps.world?.destroy();
    const start = runningAll
      .filter((q) => !live.has(q.name))
      .sort((a, b) => netvmChain(model, a).length - netvmChain(model, b).length)
      .map((q) => q.name);
    let early: Compiled | undefined;
    if (start.length) {
      // Rules go in with the namespace (names not yet resolved are off until the next step).
      const compiled = (early = compile({ model, plan, resolutions: core.dns.resolutions, now: core.deps.now(), shardClients: core.deps.shardClients }));
      const rules = new Map(start.filter((n) => compiled.rulesets.has(n)).map((n) => [n, compiled.rulesets.get(n)!] as const));
      await backend.bringUp(plan, start, rules);
      for (const [n, rs] of rules) core.mirror.applied.set(n, rs);
      core.emit({ type: 'started', qubes: start });
    }

    const netvms = [...runningNames].filter((n) => model.qubes.get(n)?.provides_network);
    const links = await backend.links(needWorld ? [...netvms, WORLD_NODE] : netvms);
    const reattached: string[] = [];
    for (const q of runningAll) {
      const nv = qubeIp(model, q) === null ? null : netvmName(model, q);
      if (nv === null || !runningNames.has(nv)) continue;
      // An address changed while it runs (prefs ip, or its netvm's): the uplink is made again. What
      // the kernel holds is what this engine made, else the model it was told the kernel holds.
      const want = linkAddrs(model, q);
      const was = opts.assume?.qubes.get(q.name);
      const known = start.includes(q.name) ? want : this.linked.get(q.name) ?? (was?.state === 'Running' ? linkAddrs(opts.assume!, was) : want);
      this.linked.set(q.name, want);
      if (links.get(q.name) !== nv || known !== want) {
        await backend.relink(plan, q.name);
        this.linkRoutes.delete(nv); // a new vif: the routes through it are made again below
      }
      // A client that was running before its netvm (re)started has been reattached.
      if (start.includes(nv) && !start.includes(q.name)) reattached.push(q.name);
    }
    if (reattached.length) core.emit({ type: 'reattached', qubes: reattached });
    for (const n of [...stop, ...start]) this.linkRoutes.delete(n);
    // Connection routes change with connections, addresses and netvms, not with links: kept in step
    // on every running netvm whose wanted set differs from what this engine last made (or is unknown).
    for (const n of plan.nodes) {
      if (n.kind !== 'qube' || !n.forwarding) continue;
      const want = JSON.stringify(n.routes.filter((r) => r.forLink));
      if (this.linkRoutes.get(n.name) === want) continue;
      await backend.syncLinkRoutes(plan, n.name);
      this.linkRoutes.set(n.name, want);
    }

    // The routes flows took before this converge: a flow whose way out changes is judged anew.
    const planBefore = core.plan ?? (opts.assume ? this.planOf(opts.assume, plan) : plan);
    core.plan = plan;
    await this.applyRules(model, plan, planBefore, opts, early);
    // After the rules: a netvm's first logged drop already names what it holds now.
    await core.drops?.sync(model, new Set([...live, ...start].filter((n) => !stop.includes(n))));
  }

  /** Compile for the running nodes and load each node's delta; then cut forbidden flows. */
  private async applyRules(model: Model, plan: NetPlan, planBefore: NetPlan, opts: ConvergeOptions, early?: Compiled): Promise<void> {
    const { core } = this;
    const now = core.deps.now();
    const answersChanged = (await core.dns.resolve(model, now)).size > 0;
    // A start compiled everything moments ago; compile again only if DNS said something new.
    const { rulesets, diagnostics } = early && !answersChanged ? early : compile({ model, plan, resolutions: core.dns.resolutions, now, shardClients: core.deps.shardClients });
    core.lastDiagnostics = diagnostics;
    for (const d of diagnostics) if (d.severity === 'warning') core.emit({ type: 'warning', diag: d });
    const assumed = opts.assume ? this.compileAssumed(opts.assume, plan, now) : undefined;
    // A daemon that died before tidying left nodes that hold more than compile() gives: those are
    // loaded whole (and the file goes once they are).
    const leftovers = opts.assume ? await core.mirror.readUntidyFile() : new Set<string>();
    for (const n of leftovers) assumed?.delete(n);
    const cleaned = new Set<string>();
    for (const [node, after] of rulesets) {
      const before = core.mirror.applied.get(node) ?? assumed?.get(node) ?? null;
      if (before && diffTransaction(before, after).size === 0) {
        core.mirror.applied.set(node, before); // what is loaded, object for object
        continue;
      }
      const ok = await core.loader.apply(model, node, before, after);
      if (ok) cleaned.add(node);
      // A node loaded from scratch has no flows to judge from before.
      if (ok && before) {
        await core.flows.cut(model, node, after, changedClients(model, node, before, after));
        await core.flows.cutLinks(model, node, { plan: planBefore, rules: before }, { plan, rules: after });
      }
    }
    if (leftovers.size) await core.mirror.writeUntidyFile([...leftovers].filter((n) => rulesets.has(n) && !cleaned.has(n)));
  }

  /** What the kernel holds when it holds compile(assume): the offline CLI's starting point. */
  private compileAssumed(assume: Model, plan: NetPlan, now: number): Map<string, Ruleset> {
    const p = this.planOf(assume, plan);
    return compile({ model: assume, plan: p, resolutions: this.core.dns.resolutions, now, shardClients: this.core.deps.shardClients }).rulesets;
  }

  /** The plan of `m`'s running qubes, with `plan`'s uplink. */
  private planOf(m: Model, plan: NetPlan): NetPlan {
    const running = new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    return planNetwork(m, { ...this.core.deps.planOptions, uplink: plan.uplink, only: running });
  }
}
