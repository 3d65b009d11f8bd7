// The link-edit path: only connections and port forwards changed (an add or a remove). The changed
// links' keys are compiled alone and patched into what each node on their paths holds
// (compile/link-patch.ts), so the delta is those chains and map elements, and sys-net and the
// firewall qubes, which carry every link, are not compiled again:
// * the daemon's engine patches what it loaded;
// * the offline CLI's fresh engine assumes the kernel holds compile() of the model before the
//   change, and needs of it only the `qubes` tables of the nodes on the path (links live there).
// False when it cannot take this path (no converge yet, connection routes to change, a map or
// chain to appear or vanish, a node not loaded or left untidy): the caller converges.
import { compileQubesTables } from '../compile/compile.js';
import { patchLinks } from '../compile/link-patch.js';
import { changedConnections } from '../model/connection.js';
import type { Model } from '../model/qube.js';
import { linkRoutesHold } from '../model/topology.js';
import { runningPlan } from './converge.js';
import type { EngineCore } from './types.js';

export class LinkEditor {
  constructor(private readonly core: EngineCore) {}

  /** `before`: the model this engine converged to, which differs from `model` only in its links. */
  async apply(model: Model, before: Model): Promise<boolean> {
    const { core } = this;
    const plan = core.plan;
    if (!plan) return false;
    // Links change a plan only in the netvms' routes for connections: those are converge's to make,
    // and otherwise the plan loaded stands. Only the routes toward the changed connections' ends
    // are looked at (the whole plan, made again and compared, was 6-7 ms at 1,000 connections).
    if (!linkRoutesHold(model, plan, changedConnections(model, before))) return false;
    // The patch replaces keys in what nodes hold: an overlay's leftovers go first.
    if (core.mirror.needsTidy) await core.loader.tidy(model);
    const patch = patchLinks({ plan, resolutions: core.dns.resolutions, now: core.deps.now() }, before, model, (n) => core.mirror.applied.get(n));
    if (!patch) return false;
    for (const d of patch.diagnostics) if (d.severity === 'warning') core.emit({ type: 'warning', diag: d });
    // Nodes load in parallel (each its own nft transaction). The netvms on the path keep an nft
    // session (the daemon's, ready and warm: they carry every link). An app qube at the end of a
    // link is loaded with nft -f, and its session opened after (keep 'next'): opening one is a
    // process start and a first exchange (20-40 ms, the slowest load of an add), more than one
    // nft -f, and the removal that likely comes next then finds it ready. Then, every load done, a
    // removed link's flows are cut on every hop that tracked them, as converge does.
    const loaded = await Promise.all(
      [...patch.rulesets].map(async ([node, after]) => {
        const held = core.mirror.applied.get(node)!;
        const keep = model.qubes.get(node)?.provides_network === true ? true : 'next';
        return { node, held, after, ok: await core.loader.apply(model, node, held, after, after, keep) };
      }),
    );
    for (const { node, held, after, ok } of loaded) if (ok) await core.flows.cutLinks(model, node, { plan, rules: held }, { plan, rules: after });
    return true;
  }

  /**
   * The offline path: the kernel holds compile(`before`), which differs from `model` only in its
   * links. Each node on the changed links' paths gets one delta of its `qubes` tables. False where
   * the daemon's path would be, or when a load fails (that node is unchanged: nft is atomic).
   */
  async applyAssumed(model: Model, before: Model): Promise<boolean> {
    const { core } = this;
    const plan = runningPlan(core, model);
    if (!linkRoutesHold(before, plan, changedConnections(model, before))) return false;
    const now = core.deps.now();
    // A node a daemon left untidy holds more than compile(): converge loads it whole.
    const leftovers = await core.mirror.readUntidyFile();
    const held = compileQubesTables({ model: before, plan, resolutions: core.dns.resolutions, now });
    const patch = patchLinks({ plan, resolutions: core.dns.resolutions, now }, before, model, (n) => (leftovers.has(n) ? undefined : held(n)));
    if (!patch) return false;
    for (const d of patch.diagnostics) if (d.severity === 'warning') core.emit({ type: 'warning', diag: d });
    const loaded = await Promise.all(
      [...patch.rulesets].map(async ([node, after]) => {
        const was = held(node)!;
        core.handled++;
        try {
          await core.deps.backend.apply(node, was, after);
        } catch {
          return null;
        }
        core.loader.markApplied(model, node, after, now);
        core.emit({ type: 'applied', node, full: false });
        return { node, was, after };
      }),
    );
    // A node refused its delta (and holds what it held: nft is atomic). The converge that follows
    // assumes compile(before) everywhere: the nodes patched already are named in the untidy file,
    // so it loads them whole, as it does a dead daemon's leftovers.
    if (loaded.includes(null)) {
      await core.mirror.writeUntidyFile([...leftovers, ...loaded.flatMap((x) => (x ? [x.node] : []))]);
      return false;
    }
    // Judged by the `qubes` tables, where links live: what a removed link let in is cut.
    for (const x of loaded) await core.flows.cutLinks(model, x!.node, { plan, rules: x!.was }, { plan, rules: x!.after });
    return true;
  }
}
