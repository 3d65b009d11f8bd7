// Loading one node, fail closed (EXAMPLES.md Examples 2 and 12): the delta; on failure a full load;
// on failure again, the clients whose chains changed are blocked (their chain becomes one reject)
// and everyone else keeps exactly what they had. Also tidy(), which removes what overlays left.
import { changedClients } from '../compile/fragments.js';
import { FIREWALL_TABLE } from '../compile/names.js';
import { blockClients } from '../compile/passes/blocked.js';
import type { Ruleset } from '../ir/types.js';
import { diag } from '../model/diagnostics.js';
import type { Model } from '../model/qube.js';
import { clientsOf } from '../model/topology.js';
import type { EngineCore } from './types.js';

export class NodeLoader {
  constructor(private readonly core: EngineCore) {}

  /**
   * Load `after` into `node`, which holds `before` (null: unknown, load whole). With `canonical` (a
   * rule edit of an overlay engine: `after` under compile()'s set names), the delta is an overlay
   * and tidy() loads `canonical` later. `keep`: see Backend.apply. False if the node refused even
   * the blocked fallback.
   */
  async apply(model: Model, node: string, before: Ruleset | null, after: Ruleset, canonical = after, keep: boolean | 'next' = false): Promise<boolean> {
    const { core } = this;
    const { backend } = core.deps;
    const { mirror } = core;
    core.handled++;
    const at = core.deps.now();
    let firstError: unknown;
    if (canonical !== after && !mirror.untidy.has(node)) await mirror.writeUntidyFile([node]);
    for (const b of before ? [before, null] : [null]) {
      try {
        const want = b === null ? canonical : after;
        const holds = await backend.apply(node, b, want, { overlay: want !== canonical, keep });
        await mirror.loaded(node, holds, after, canonical);
        if (holds !== want) mirror.overlays++;
        this.markApplied(model, node, after, at);
        core.emit({ type: 'applied', node, full: b === null });
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
        await mirror.loaded(node, blocked, blocked, blocked);
        for (const c of suspects) {
          core.status.set(c, { state: 'blocked-fallback', at, diag: { ...d, qube: c } });
          core.emit({ type: 'blocked', qube: c, node, diag: d });
        }
        return true;
      } catch {
        // fall through: nothing changed in the node (nft transactions are atomic)
      }
    }
    for (const c of suspects.length ? suspects : [node]) core.status.set(c, { state: 'failed', at, diag: d });
    core.emit({ type: 'apply-failed', node, diag: d });
    return false;
  }

  /** The node and (for a netvm) its running clients stand applied. */
  markApplied(model: Model, node: string, rs: Ruleset, at: number): void {
    this.core.status.set(node, { state: 'applied', at });
    if (rs.tables.some((t) => t.name === FIREWALL_TABLE))
      for (const c of clientsOf(model, node)) if (c.state === 'Running') this.core.status.set(c.name, { state: 'applied', at });
  }

  /**
   * Remove what overlays left in the kernel: the dead rules below each rewritten chain's live ones
   * and the sets only they used; sets go back to compile()'s names (so the node holds exactly what
   * a full compile gives, which the offline CLI and converge assume). Behaviour does not change. A
   * failure goes the usual way (full load, then the affected clients blocked).
   */
  async tidy(model: Model): Promise<void> {
    const { mirror } = this.core;
    mirror.overlays = 0;
    for (const [node, { canonical }] of [...mirror.untidy]) {
      const holds = mirror.applied.get(node);
      mirror.untidy.delete(node);
      if (!holds) continue;
      try {
        await this.core.deps.backend.apply(node, holds, canonical);
        mirror.applied.set(node, canonical);
      } catch {
        await this.apply(model, node, holds, canonical);
      }
    }
    await mirror.writeUntidyFile();
  }
}
