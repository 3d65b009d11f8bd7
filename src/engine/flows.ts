// Tightening a rule cuts established flows it no longer allows, as Qubes R4.2 does: each flow a
// client of the netvm has open is judged as a new packet by the forward hook of the new rules; the
// refused ones are deleted from conntrack. Ports are compared as numbers (Qubes compares strings:
// reference §4.4).
import type { Backend, Flow } from '../backend/backend.js';
import type { Ruleset } from '../ir/types.js';
import type { NetPlan } from '../model/netplan.js';
import { qubeIp, qubeIp6 } from '../model/addressing.js';
import type { Model, Qube } from '../model/qube.js';
import { vifName } from '../model/topology.js';
import { evalHook, evalHookPkt } from '../sim/evaluate.js';
import { parseAddr } from '../sim/addr.js';
import { CT_BIT, CT_STATUS_BIT, PROTO, setDaddr, toPkt } from '../sim/packet.js';
import { type PNode, type PPlan, preparePlan, route } from '../sim/route.js';
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
        ...flowFields(f, l4),
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

  /**
   * Cut the flows through `node` that `before` let in as new and `after` refuses or sends out
   * another way: what a removed connection or port forward allowed, on every hop that tracked it
   * (converge calls this for each node whose rules changed). Each flow is judged as its first
   * packet was seen here: prerouting (DNAT of a forward), then input if it ends here or forward if
   * it goes on, interfaces from each side's plan. Flows the node itself opened, or that `before`
   * did not let in (a flow we cannot place), are left alone: only what the change took away goes.
   */
  async cutLinks(model: Model, node: string, before: NodeState, after: NodeState): Promise<void> {
    // Only a node that held connection or forward rules can lose what they allowed.
    if (!hasLinkRules(before.rules)) return;
    const [pb, pa] = [preparePlan(before.plan), preparePlan(after.plan)];
    const [nb, na] = [pb.nodes.get(node), pa.nodes.get(node)];
    if (!nb || !na) return;
    let owner: Map<string, string> | undefined;
    for (const f of await this.backend.flows(node)) {
      const was = judge(pb, nb, before.rules, f);
      if (was === 'skip' || was === 'refuse') continue;
      if (judge(pa, na, after.rules, f) === was) continue;
      await this.backend.deleteFlow(node, f);
      if (!owner) {
        owner = new Map();
        for (const q of model.qubes.values()) for (const a of [qubeIp(model, q), qubeIp6(model, q)]) if (a) owner.set(a, q.name);
      }
      this.emit({ type: 'flow-cut', node, flow: f, qube: owner.get(f.src) ?? node });
    }
  }
}

/** A node's rules and the plan they route with. */
export interface NodeState {
  plan: NetPlan;
  rules: Ruleset;
}

function hasLinkRules(rs: Ruleset): boolean {
  return rs.tables.some((t) => t.chains.some((c) => c.rules.some((r) => r.origin.kind === 'connection' || r.origin.kind === 'forward')));
}

/**
 * How `rs` in this node treats the first packet of `f`: `accept:IFACE` (`accept:` when it ends
 * here), 'refuse', or 'skip' when the flow is the node's own or cannot be placed.
 */
function judge(pp: PPlan, pn: PNode, rs: Ruleset, f: Flow): string {
  const l4 = (PROTO as Record<string, number>)[f.proto];
  const sa = parseAddr(f.src, f.family);
  if (l4 === undefined || sa === undefined || parseAddr(f.dst, f.family) === undefined) return 'skip';
  // The interface a packet from f.src comes in by is the one the route back to it leaves by (Qubes'
  // netvms check reverse paths: antispoofing).
  const back = route(pp, pn, sa, f.family, false);
  if (back.kind !== 'out') return 'skip';
  const p = toPkt({
    ...flowFields(f, l4),
    iifname: back.iface.name,
    iifgroup: back.iface.group,
  });
  // A DNAT in prerouting marks the flow (`ct status dnat`, which forwards' accepts match on).
  let status = 0;
  const pre = evalHookPkt(rs, 'prerouting', p, {
    ctState: CT_BIT.new,
    ctStatus: 0,
    natAllowed: true,
    nat: {
      atNatSlot(q, nat) {
        if (nat?.kind !== 'dnat') return;
        setDaddr(q, nat.addr);
        if (nat.port !== undefined) q.dport = nat.port;
        status |= CT_STATUS_BIT.dnat!;
      },
    },
  });
  if (pre.verdict !== 'accept') return 'refuse';
  const on = route(pp, pn, p.da, f.family, false);
  if (on.kind !== 'local' && on.kind !== 'out') return 'refuse';
  if (on.kind === 'out') {
    p.oif = on.iface.name;
    p.oifgroup = on.iface.group;
  }
  const r = evalHookPkt(rs, on.kind === 'local' ? 'input' : 'forward', p, { ctState: CT_BIT.new, ctStatus: status, natAllowed: false });
  return r.verdict === 'accept' ? `accept:${p.oif ?? ''}` : 'refuse';
}

/** A tracked flow's original direction as the fields of a first packet. */
function flowFields(f: Flow, l4proto: number) {
  return {
    family: f.family,
    saddr: f.src,
    daddr: f.dst,
    l4proto,
    ...(f.sport !== undefined ? { sport: f.sport } : {}),
    ...(f.dport !== undefined ? { dport: f.dport } : {}),
  };
}
