// Hand-built rulesets that mirror what a Qubes R4.2 qube runs (reference qubes-firewall.md §4.4,
// §5.2): `ip qubes` (antispoof in raw prerouting, dnat-dns, input, forward, masquerade) and
// `ip qubes-firewall` (forward with per-client chains `qbs-10-137-0-3`). Used by the simulator's
// scenario tests and the benchmark until compiled fixtures replace them.
import type { Chain, IrRule, Match, Ruleset, Statement, Table } from '../../ir/types.js';
import { netvmName } from '../../model/addressing.js';
import { defaultLayout } from '../../model/layout.js';
import type { NetPlan } from '../../model/netplan.js';
import { VIRTUAL_DNS } from '../../model/netplan.js';
import type { Model } from '../../model/qube.js';
import { effectiveRules, type Rule } from '../../model/rule.js';
import { planNetwork } from '../../model/topology.js';
import type { World } from '../walk.js';
import {
  ACCEPT, ADMIN_PROHIBITED, addr, base, chain, COUNTER, ct, dnat, DROP, eq, inAnon, inSet, int, jump, MASQUERADE, ne, reject, rule, set,
  str, sym, table, vmap, vmapOf, wild,
} from './ir-build.js';

/** Qubes' chain name for a client address (qubesagent/firewall.py chain_for_addr). */
export const qbsChain = (ip: string) => `qbs-${ip.replace(/[.:]/g, '-')}`;

export interface Client {
  name: string;
  ip: string;
  vif: string;
  /** Effective rules (no file = one accept rule). */
  rules: Rule[];
}

export interface NetvmOptions {
  clients: Client[];
  /** Upstream resolvers the virtual DNS addresses are DNATed to; empty = `dport 53 drop` (no servers). */
  upstreamDns: readonly string[];
  /** Without the qubes-firewall table: the daemon stopped cleanly (§4.6 fail-open). */
  firewallTable?: boolean;
  /** How forward dispatches to client chains: a verdict map (qnet) or Qubes' linear jumps. */
  dispatch?: 'vmap' | 'linear';
}

/** Qubes' prepare_rules for IPv4: one Qubes rule → nft rules in the client's chain. */
export function qubesRulesToIr(qube: string, rules: Rule[]): IrRule[] {
  const out: IrRule[] = [];
  rules.forEach((r, i) => {
    const origin = { kind: 'rule', qube, index: i } as const;
    const verdict: Statement = r.action === 'accept' ? ACCEPT : reject(ADMIN_PROHIBITED);
    const m: Match[] = [];
    if (r.proto) m.push(eq('ip protocol', sym(r.proto)));
    if (r.dsthost?.type === 'dst6') return;
    if (r.dsthost?.type === 'dst4') m.push(eq('ip daddr', addr(r.dsthost.addr, r.dsthost.prefix)));
    let ports = r.dstports;
    if (r.specialtarget === 'dns') {
      if (ports && !(ports.start === 53 && ports.end === 53)) return; // Qubes skips it silently
      ports = { start: 53, end: 53 };
      m.push(inAnon('ip daddr', VIRTUAL_DNS.map((a) => addr(a, 32))));
    }
    if (r.icmptype !== undefined) m.push(eq('icmp type', int(r.icmptype)));
    const port = ports ? (ports.start === ports.end ? int(ports.start) : { kind: 'range' as const, lo: ports.start, hi: ports.end }) : undefined;
    if (port && !r.proto) {
      out.push(rule(origin, [...m, eq('tcp dport', port)], verdict), rule(origin, [...m, eq('udp dport', port)], verdict));
    } else if (port) out.push(rule(origin, [...m, eq(r.proto === 'udp' ? 'udp dport' : 'tcp dport', port)], verdict));
    else out.push(rule(origin, m, verdict));
  });
  // read_rules appends {'action': policy}; the policy is always drop, i.e. reject admin-prohibited.
  out.push(rule({ kind: 'policy', qube }, [], reject(ADMIN_PROHIBITED)));
  return out;
}

/** `table ip qubes` (§5.2): the same base in every qube; netvms add antispoof elements and dnat-dns. */
export function qubesBaseTable(opts: { clients: Client[]; upstreamDns?: readonly string[] | undefined; masquerade?: boolean }): Table {
  const { clients } = opts;
  const chains: Chain[] = [
    chain('prerouting', [
      rule('base: antispoof', [eq('iifgroup', int(2))], jump('antispoof')),
      rule('base: downstream source from upstream', [inSet(['ip saddr'], 'downstream')], COUNTER, DROP),
    ], base('filter', 'prerouting', -300)),
    chain('antispoof', [
      rule('base: antispoof allowed', [inSet(['iifname', 'ip saddr'], 'allowed')], ACCEPT),
      rule('base: antispoof', [], COUNTER, DROP),
    ]),
    chain('postrouting', [
      rule('base: no masquerade to downstream', [eq('oifgroup', int(2))], ACCEPT),
      rule('base: no masquerade on lo', [eq('oifname', str('lo'))], ACCEPT),
      rule('base: masquerade', [], MASQUERADE),
    ], base('nat', 'postrouting', 100)),
    chain('input', [
      rule('base: custom-input', [], jump('custom-input')),
      rule('base: ct invalid', [eq('ct state', ct('invalid'))], DROP),
      rule('base: dhcp from downstream', [eq('iifgroup', int(2)), eq('udp dport', int(68))], DROP),
      rule('base: established', [eq('ct state', ct('established', 'related'))], ACCEPT),
      rule('base: icmp from downstream', [eq('iifgroup', int(2)), eq('meta l4proto', sym('icmp'))], ACCEPT),
      rule('base: lo', [eq('iifname', str('lo'))], ACCEPT),
      rule('base: host-prohibited', [eq('iifgroup', int(2))], reject({ type: 'icmp', code: 'host-prohibited' })),
    ], base('filter', 'input', 0, 'drop')),
    chain('forward', [
      rule('base: custom-forward', [], jump('custom-forward')),
      rule('base: ct invalid', [eq('ct state', ct('invalid'))], DROP),
      rule('base: established', [eq('ct state', ct('established', 'related'))], ACCEPT),
      rule('base: new flows to downstream qubes', [eq('oifgroup', int(2))], COUNTER, DROP),
    ], base('filter', 'forward', 0, 'accept')),
    chain('custom-input', []),
    chain('custom-forward', []),
  ];
  // App qubes have nothing to masquerade for (no vifs); leaving the chain out keeps a spoofed source as sent.
  if (opts.masquerade === false) chains.splice(chains.findIndex((c) => c.name === 'postrouting'), 1);
  if (opts.upstreamDns !== undefined) {
    const dns: IrRule[] = [];
    VIRTUAL_DNS.forEach((v, i) => {
      const up = opts.upstreamDns![i % Math.max(1, opts.upstreamDns!.length)];
      for (const proto of ['udp', 'tcp'] as const) {
        const m = [eq('ip daddr', addr(v)), eq(`${proto} dport`, int(53))];
        dns.push(up === undefined ? rule('dns: no upstream', m, DROP) : rule(`dns dnat ${v}`, m, dnat(up)));
      }
    });
    chains.splice(2, 0, chain('dnat-dns', dns, base('nat', 'prerouting', -100)));
  }
  return table('ip', 'qubes', chains, [
    set('downstream', ['ipv4_addr'], false, clients.map((c) => addr(c.ip))),
    set('allowed', ['ifname', 'ipv4_addr'], false, clients.map((c) => [str(c.vif), addr(c.ip)])),
  ]);
}

/** `table ip qubes-firewall` (§4.4, §4.5). */
export function qubesFirewallTable(clients: Client[], dispatch: 'vmap' | 'linear' = 'vmap'): Table {
  const ips = clients.map((c) => addr(c.ip));
  const forward: IrRule[] = [
    rule('qubes-firewall: established', [eq('ct state', ct('established', 'related'))], ACCEPT),
    rule('qubes-firewall: from upstream', [ne('iifname', wild('vif'))], ACCEPT),
  ];
  if (dispatch === 'vmap') forward.push(rule('qubes-firewall: dispatch', [], vmap(['ip saddr'], 'dispatch')));
  else for (const c of clients) forward.push(rule(`qubes-firewall: ${c.name}`, [eq('ip saddr', addr(c.ip))], jump(qbsChain(c.ip))));
  const connected = clients.length ? [rule('qubes-firewall: connected ip from upstream', [ne('iifname', wild('vif')), inAnon('ip saddr', ips)], DROP)] : [];
  const connectedOut = clients.length ? [rule('qubes-firewall: connected ip leaving upstream', [ne('oifname', wild('vif')), inAnon('ip daddr', ips)], DROP)] : [];
  return table('ip', 'qubes-firewall', [
    chain('forward', forward, base('filter', 'forward', 0, 'drop')),
    chain('prerouting', connected, base('filter', 'prerouting', -300)),
    chain('postrouting', connectedOut, base('filter', 'postrouting', -300)),
    ...clients.map((c) => chain(qbsChain(c.ip), qubesRulesToIr(c.name, c.rules))),
  ], dispatch === 'vmap' ? [vmapOf('dispatch', ['ipv4_addr'], false, clients.map((c) => [addr(c.ip), { kind: 'jump', chain: qbsChain(c.ip) }]))] : []);
}

export function netvmRuleset(o: NetvmOptions): Ruleset {
  const tables = [qubesBaseTable({ clients: o.clients, upstreamDns: o.upstreamDns })];
  if (o.firewallTable !== false) tables.push(qubesFirewallTable(o.clients, o.dispatch));
  return { tables };
}

export function appQubeRuleset(): Ruleset {
  return { tables: [qubesBaseTable({ clients: [], masquerade: false })] };
}

export interface QubesWorldOptions {
  model?: Model;
  /** Replace qubes' rule lists (null = no firewall file = accept all). */
  rules?: Record<string, Rule[] | null>;
  /** Netvms whose qubes-firewall table is gone. */
  withoutFirewallTable?: string[];
  /** The top netvm's upstream resolvers (default: the plan's, 192.0.2.53). */
  upstreamDns?: string[];
  dispatch?: 'vmap' | 'linear';
  now?: number;
}

/** Build every running qube's ruleset for a model, Qubes-style. */
export function qubesRulesets(model: Model, plan: NetPlan, o: QubesWorldOptions = {}): Map<string, Ruleset> {
  const out = new Map<string, Ruleset>();
  for (const n of plan.nodes) {
    if (n.kind === 'world') continue;
    const q = model.qubes.get(n.name);
    if (!q) continue;
    if (!q.provides_network) {
      out.set(n.name, appQubeRuleset());
      continue;
    }
    const clients: Client[] = [];
    for (const i of n.ifaces) {
      if (i.group !== 2 || !i.peer) continue;
      const peer = plan.nodes.find((x) => x.name === i.peer!.node);
      const cq = model.qubes.get(i.peer.node);
      const ip = peer?.ifaces.find((x) => x.name === i.peer!.iface)?.addrs.find((a) => !a.addr.includes(':'))?.addr;
      if (!cq || !ip) continue;
      clients.push({ name: cq.name, ip, vif: i.name, rules: effectiveRules(cq.rules, o.now ?? 0) });
    }
    const top = netvmName(model, q) === null;
    out.set(n.name, netvmRuleset({
      clients,
      upstreamDns: top ? (o.upstreamDns ?? plan.upstreamDns) : [...VIRTUAL_DNS],
      firewallTable: !(o.withoutFirewallTable ?? []).includes(n.name),
      dispatch: o.dispatch ?? 'vmap',
    }));
  }
  return out;
}

/** The default layout (sys-net, sys-firewall, work, personal, untrusted, vault) with Qubes' rulesets. */
export function qubesWorld(o: QubesWorldOptions = {}): World & { model: Model } {
  const model = o.model ?? defaultLayout();
  for (const [name, rules] of Object.entries(o.rules ?? {})) {
    const q = model.qubes.get(name);
    if (!q) throw new Error(`no qube ${name}`);
    model.qubes.set(name, { ...q, rules });
  }
  const plan = planNetwork(model, { uplink: 'world' });
  return { model, plan, rulesets: qubesRulesets(model, plan, o) };
}
