// The compiler: model + plan + DNS answers → one IR Ruleset per qube namespace. Pure and
// deterministic: the same input gives the same Rulesets, hence the same bytes when emitted.
//
// The pipeline, as data (EXAMPLES.md Example 14); order matters where noted:
//   clients      who each node forwards for (plan vifs + model addresses)
//   dnsTargets   where specialtarget=dns points for this netvm (needs to know if it is a top netvm)
//   base         table `qubes` (app qube input policy, or the full netvm base with antispoof/DNAT)
//   lower        Qubes rules → atoms per family (after dnsTargets, resolutions are input)
//   pack         atoms → rules + sets (after lower: first-match order is only known there)
//   firewall     table `qubes-firewall` with the dispatch map and one chain per client (past
//                FIREWALL_SHARD_CLIENTS clients, the chains in shard tables: passes/firewall.ts)
import type { Chain, NamedSet, Ruleset } from '../ir/types.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { diag } from '../model/diagnostics.js';
import { netvmName } from '../model/addressing.js';
import type { Model, Qube } from '../model/qube.js';
import { effectiveRules } from '../model/rule.js';
import type { NetNode } from '../model/netplan.js';
import { makeContext, type CompileContext, type CompileInput, type IpFamily } from './context.js';
import { appQubesTable, netvmQubesTable } from './passes/base.js';
import { clientsOfNode, countClients } from './passes/clients.js';
import { clientFragment, firewallShardsFor, firewallTables } from './passes/firewall.js';
import { clientChain, firewallTableFor } from './names.js';
import { canonicalAddr } from './addr.js';

export type { CompileInput, Layout } from './context.js';

export interface CompileOutput {
  /** Keyed by qube name, in plan order. */
  rulesets: Map<string, Ruleset>;
  diagnostics: Diagnostic[];
}

const FAMILIES: readonly IpFamily[] = ['ip', 'ip6'];

export function compile(input: CompileInput): CompileOutput {
  const { ctx, diagnostics } = makeContext(input);
  const rulesets = new Map<string, Ruleset>();
  for (const node of input.plan.nodes) {
    if (node.kind !== 'qube') continue; // the world and the host run no qube rules
    const q = input.model.qubes.get(node.name);
    if (!q) {
      ctx.report(diag('QNET4010', `the network plan names '${node.name}', which is not in the model`, { hint: 'recompute the plan from the model' }));
      continue;
    }
    rulesets.set(q.name, compileQube(ctx, q, node));
  }
  return { rulesets, diagnostics };
}

/**
 * Qubes: a ProxyVM DNATs 10.139.1.x to 10.139.1.x again (forwarded up the chain); the top netvm
 * DNATs to its real upstream (reference §5.2 qubes-setup-dnat-to-ns).
 */
export function upstreamDns(ctx: Pick<CompileContext, 'model' | 'plan'>, netvm: Qube): { upstream4: string[]; upstream6: string[] } {
  const top = netvmName(ctx.model, netvm) === null;
  const upstream = top ? ctx.plan.upstreamDns.map(canonicalAddr) : [...ctx.plan.virtualDns];
  return { upstream4: upstream.filter((a) => !a.includes(':')), upstream6: upstream.filter((a) => a.includes(':')) };
}

/** `qubesOnly`: the `qubes` tables alone (see compileQubesTables). */
function compileQube(ctx: CompileContext, q: Qube, node: NetNode, qubesOnly = false): Ruleset {
  if (!q.provides_network) return { tables: FAMILIES.map((f) => appQubesTable(ctx, q, f)) };
  const clients = clientsOfNode(ctx, node);
  const { upstream4, upstream6 } = upstreamDns(ctx, q);
  const tables = [];
  for (const f of FAMILIES) {
    tables.push(netvmQubesTable(ctx, q, f, { clients, dnsUpstream: upstream4, virtualDns: ctx.plan.virtualDns }));
  }
  if (qubesOnly) return { tables };
  for (const f of FAMILIES) {
    // specialtarget=dns: the destination as the forward hook sees it, i.e. after prerouting DNAT:
    // the virtual resolvers in a ProxyVM, the upstream ones in the top netvm (§5.2 consistency note).
    tables.push(...firewallTables(ctx, f, clients, f === 'ip' ? upstream4 : upstream6));
  }
  return { tables };
}

/**
 * Just the `qubes` tables of a node, as compile() makes them (one context for every node asked, so
 * the links pass runs once): what a link edit offline needs of what the kernel holds, since links
 * live in those tables only (compile/link-patch.ts). Undefined for a node not in the plan.
 */
export function compileQubesTables(input: CompileInput): (node: string) => Ruleset | undefined {
  const { ctx } = makeContext(input);
  const done = new Map<string, Ruleset | undefined>();
  return (name) => {
    if (done.has(name)) return done.get(name);
    const node = input.plan.nodes.find((n) => n.name === name && n.kind === 'qube');
    const q = input.model.qubes.get(name);
    const rs = node && q ? compileQube(ctx, q, node, true) : undefined;
    done.set(name, rs);
    return rs;
  };
}

export interface ClientFragment {
  family: IpFamily;
  /** The firewall table its chain is in: `qubes-firewall` or a shard (firewallTableFor). */
  table: string;
  chain: Chain;
  sets: NamedSet[];
}

/**
 * Just one client's chains and sets in its netvm's `qubes-firewall` tables — what compile() would
 * put there for it, byte for byte — so that a rule edit recompiles one qube, not all of them.
 */
export function compileClient(input: CompileInput, netvm: string, client: string): { fragments: ClientFragment[]; diagnostics: Diagnostic[] } {
  const { ctx, diagnostics } = makeContext(input);
  const nv = input.model.qubes.get(netvm);
  const node = input.plan.nodes.find((n) => n.name === netvm);
  const c = node && nv ? clientsOfNode(ctx, node, client)[0] : undefined;
  if (!nv || !node || !c) return { fragments: [], diagnostics };
  const { upstream4, upstream6 } = upstreamDns(ctx, nv);
  const shards = firewallShardsFor(ctx, countClients(ctx, node));
  const fragments: ClientFragment[] = [];
  for (const f of FAMILIES) {
    const addr = f === 'ip' ? c.ip : c.ip6;
    if (addr === null) continue;
    fragments.push({ family: f, table: firewallTableFor(addr, shards), ...clientFragment(ctx, f, c, clientChain(addr), f === 'ip' ? upstream4 : upstream6) });
  }
  return { fragments, diagnostics };
}

/** The dsthost names used by rules in effect at `now`: sorted, unique. Resolve these before compile(). */
export function namesToResolve(model: Model, now: number, only?: ReadonlySet<string>): string[] {
  const names = new Set<string>();
  for (const name of only ?? model.qubes.keys()) {
    const q = model.qubes.get(name);
    if (q) for (const r of effectiveRules(q.rules, now)) if (r.dsthost?.type === 'dsthost') names.add(r.dsthost.text);
  }
  return [...names].sort();
}
