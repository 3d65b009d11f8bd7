// The sim executor: the Backend operations on in-memory state, which the simulator then runs packets
// through. Like knftables' Fake (EXAMPLES.md Example 6) it applies the very transactions the netns
// backend sends, with the kernel's rules (ir/apply.ts), and refuses what the kernel would refuse: a
// refused transaction changes nothing, and links need both ends to exist.
import { applyTransaction } from '../../ir/apply.js';
import { loadTransaction } from '../../ir/diff.js';
import { assertValidRuleset } from '../../ir/validate.js';
import type { Ruleset } from '../../ir/types.js';
import type { NetPlan } from '../../model/netplan.js';
import { parseOrigin } from '../../model/origin.js';
import { forgetFlows, newSimState, simulate, type SimResult, type SimState } from '../../sim/index.js';
import { PROTO, type Probe } from '../../sim/packet.js';
import type { Backend, Flow, RuleCounter } from '../backend.js';

export class SimBackend implements Backend {
  readonly kind = 'sim' as const;
  readonly rulesets = new Map<string, Ruleset>();
  readonly state: SimState = newSimState();
  private readonly nodes = new Set<string>();
  private readonly linkMap = new Map<string, string>();
  private plan: NetPlan | undefined;
  /** Make the next N applies to a node fail (tests of fail-closed behaviour). */
  readonly failApplies = new Map<string, number>();

  async live(): Promise<Set<string>> {
    return new Set(this.nodes);
  }

  async bringUp(plan: NetPlan, names: readonly string[], rules?: ReadonlyMap<string, Ruleset>): Promise<void> {
    this.plan = plan;
    for (const n of names) this.nodes.add(n);
    for (const n of names) {
      const rs = rules?.get(n);
      if (rs) this.rulesets.set(n, rs);
    }
    for (const n of names) {
      const up = this.peerOf(plan, n);
      if (up && this.nodes.has(up)) this.linkMap.set(n, up);
      for (const c of plan.nodes) if (this.peerOf(plan, c.name) === n && this.nodes.has(c.name)) this.linkMap.set(c.name, n);
    }
  }

  async tearDown(names: readonly string[]): Promise<void> {
    for (const n of names) {
      this.nodes.delete(n);
      this.rulesets.delete(n);
      this.linkMap.delete(n);
      for (const [c, up] of this.linkMap) if (up === n) this.linkMap.delete(c);
      this.state.conntrack.delete(n);
    }
  }

  /** The simulator routes with the plan itself: nothing to keep in step. */
  async syncLinkRoutes(plan: NetPlan): Promise<void> {
    this.plan = plan;
  }

  async relink(plan: NetPlan, client: string): Promise<void> {
    this.plan = plan;
    const up = this.peerOf(plan, client);
    if (!up || !this.nodes.has(up) || !this.nodes.has(client))
      throw new Error(`cannot link ${client} to ${up ?? 'nothing'}: both namespaces must exist`);
    this.linkMap.set(client, up);
  }

  async links(netvms: readonly string[]): Promise<Map<string, string>> {
    return new Map([...this.linkMap].filter(([, up]) => netvms.includes(up)));
  }

  /**
   * Runs exactly the transaction the netns backend would send for this (diff.ts: an overlay when
   * asked and possible, else the delta from `before`), with the kernel's rules (ir/apply.ts), on
   * what this node holds. Returns what the netns backend reports the kernel then holds.
   */
  async apply(node: string, before: Ruleset | null, after: Ruleset, opts?: { overlay?: boolean }): Promise<Ruleset> {
    if (!this.nodes.has(node)) throw new Error(`no namespace for ${node}`);
    const fails = this.failApplies.get(node) ?? 0;
    if (fails > 0) {
      this.failApplies.set(node, fails - 1);
      throw new Error(`simulated nft failure in ${node}`);
    }
    const { tx, holds } = loadTransaction(before, after, opts?.overlay);
    const held = applyTransaction(this.rulesets.get(node) ?? null, tx);
    assertValidRuleset(held, `ruleset for ${node}`); // what nft would refuse is a compiler bug
    this.rulesets.set(node, held);
    return holds;
  }

  async counters(node: string): Promise<RuleCounter[]> {
    const out: RuleCounter[] = [];
    const counted = this.state.counters.get(node);
    const rs = this.rulesets.get(node);
    if (!counted || !rs) return out;
    for (const t of rs.tables)
      for (const c of t.chains)
        for (const r of c.rules) {
          const packets = counted.get(r);
          if (packets !== undefined)
            out.push({ node, family: t.family, table: t.name, chain: c.name, comment: r.comment ?? '', origin: parseOrigin(r.comment ?? ''), packets, bytes: 0 });
        }
    return out;
  }

  async flows(node: string, family?: 4 | 6): Promise<Flow[]> {
    const t = this.state.conntrack.get(node);
    if (!t) return [];
    const seen = new Set<object>();
    const out: Flow[] = [];
    for (const ref of t.values()) {
      if (seen.has(ref.conn)) continue;
      seen.add(ref.conn);
      const c = ref.conn;
      const proto = c.l4 === 6 ? 'tcp' : c.l4 === 17 ? 'udp' : c.family === 6 ? 'icmpv6' : 'icmp';
      if (family === undefined || c.family === family)
        out.push({ family: c.family, proto, src: c.orig.src, dst: c.orig.dst, sport: c.orig.sport, dport: c.orig.dport });
    }
    return out;
  }

  /** Matches as `conntrack -D` does in the kernel backend (deleteArgv): protocol always, each port only when given. */
  async deleteFlow(node: string, f: Flow): Promise<void> {
    const l4 = (PROTO as Record<string, number>)[f.proto];
    forgetFlows(this.state, (c, n) =>
      n === node && c.l4 === l4 && c.orig.src === f.src && c.orig.dst === f.dst &&
      (f.sport === undefined || c.orig.sport === f.sport) && (f.dport === undefined || c.orig.dport === f.dport));
  }

  /** Send a probe through what is loaded now; counters and conntrack persist across probes. */
  probe(p: Probe): SimResult {
    if (!this.plan) throw new Error('nothing is running');
    // The host's namespace (veth-host) is always there; qnet never brings it up.
    const livePlan: NetPlan = { ...this.plan, nodes: this.plan.nodes.filter((n) => n.kind === 'host' || this.nodes.has(n.name)) };
    return simulate({ plan: livePlan, rulesets: this.rulesets }, p, this.state);
  }

  private peerOf(plan: NetPlan, name: string): string | undefined {
    const n = plan.nodes.find((x) => x.name === name);
    return n?.ifaces.find((i) => i.name === 'eth0')?.peer?.node;
  }
}
