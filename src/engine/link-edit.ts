// The link-edit path: only connections and port forwards changed (an add or a remove). The changed
// links' keys are compiled alone and patched into what each node on their paths holds
// (compile/link-patch.ts), so the delta is those chains and map elements, and sys-net and the
// firewall qubes, which carry every link, are not compiled again. False when it cannot take this
// path (no converge yet, connection routes to change, a map or chain to appear or vanish, a node
// not loaded): the caller converges.
import { patchLinks } from '../compile/link-patch.js';
import type { Model } from '../model/qube.js';
import { runningPlan } from './converge.js';
import type { EngineCore } from './types.js';

export class LinkEditor {
  constructor(private readonly core: EngineCore) {}

  /** `before`: the model this engine converged to, which differs from `model` only in its links. */
  async apply(model: Model, before: Model): Promise<boolean> {
    const { core } = this;
    const was = core.plan;
    if (!was) return false;
    // Links change a plan only in the netvms' routes for connections: those are converge's to make.
    const plan = runningPlan(core, model);
    if (JSON.stringify(plan) !== JSON.stringify(was)) return false;
    // The patch replaces keys in what nodes hold: an overlay's leftovers go first.
    if (core.mirror.needsTidy) await core.loader.tidy(model);
    const patch = patchLinks({ plan, resolutions: core.dns.resolutions, now: core.deps.now() }, before, model, (n) => core.mirror.applied.get(n));
    if (!patch) return false;
    for (const d of patch.diagnostics) if (d.severity === 'warning') core.emit({ type: 'warning', diag: d });
    // Nodes load in parallel (each its own nft transaction); a removed link's flows are cut on
    // every hop that tracked them, as converge does.
    await Promise.all(
      [...patch.rulesets].map(async ([node, after]) => {
        const held = core.mirror.applied.get(node)!;
        if (await core.loader.apply(model, node, held, after)) await core.flows.cutLinks(model, node, { plan: was, rules: held }, { plan, rules: after });
      }),
    );
    return true;
  }
}
