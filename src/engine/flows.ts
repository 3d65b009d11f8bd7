// Tightening a rule cuts established flows it no longer allows, as Qubes R4.2 does: each flow a
// client of the netvm has open is judged as a new packet by the forward hook of the new rules; the
// refused ones are deleted from conntrack. Ports are compared as numbers (Qubes compares strings:
// reference §4.4).
import type { Backend } from '../backend/backend.js';
import type { Ruleset } from '../ir/types.js';
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Model, Qube } from '../model/qube.js';
import { vifName } from '../model/topology.js';
import { evalHook } from '../sim/evaluate.js';
import { PROTO } from '../sim/packet.js';
import type { EngineEvent } from './types.js';

export class FlowCutter {
  constructor(
    private readonly backend: Backend,
    private readonly emit: (e: EngineEvent) => void,
  ) {}

  /**
   * Cut the flows of `clients` (qube names) that `after`, loaded in `node`, refuses now. `after`
   * may be given as a function: it is then made only when a client has a flow to judge (the
   * offline path compiles the whole node for it).
   */
  async cut(model: Model, node: string, after: Ruleset | (() => Ruleset | undefined), clients: readonly string[]): Promise<void> {
    if (!clients.length) return;
    const byAddr = new Map<string, Qube>();
    for (const name of clients) {
      const q = model.qubes.get(name);
      if (q) for (const a of [qubeIp(model, q), qubeIp6(model, q)]) if (a) byAddr.set(a, q);
    }
    const families = new Set([...byAddr.keys()].map((a) => (a.includes(':') ? 6 : 4) as 4 | 6));
    const flows = (await Promise.all([...families].map((f) => this.backend.flows(node, f)))).flat();
    let rs = typeof after === 'function' ? undefined : after;
    for (const f of flows) {
      const q = byAddr.get(f.src);
      const l4 = (PROTO as Record<string, number>)[f.proto];
      if (!q || l4 === undefined) continue;
      rs ??= (after as () => Ruleset | undefined)();
      if (!rs) return;
      // The packet as the netvm's forward hook sees it: in from the client's vif (group 2), out
      // of the uplink (eth0, group 1), new.
      const r = evalHook(rs, 'forward', f.family, {
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
      await this.backend.deleteFlow(node, f);
      this.emit({ type: 'flow-cut', node, flow: f, qube: q.name });
    }
  }
}
