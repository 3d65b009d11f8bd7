// Pass: table `qubes-firewall`, the per-client outbound rules a netvm enforces (reference §4.4).
// Qubes jumps from `forward` through a linear list `ip saddr X jump qbs-X`, one rule per client;
// qnet (layout 'qnet') looks the source up once in the verdict map `dispatch`, so the cost per
// packet does not grow with the number of clients. 'qubes-linear' keeps Qubes' shape exactly
// (and one nft rule per atom), as the benchmark baseline.
import type { Chain, IrRule, NamedMap, NamedSet, Table } from '../../ir/types.js';
import { PRIORITY } from '../../ir/types.js';
import { effectiveRules } from '../../model/rule.js';
import type { CompileContext, IpFamily } from '../context.js';
import { clientChain, DISPATCH_MAP, FIREWALL_FORWARD, FIREWALL_TABLE, formatOrigin } from '../names.js';
import { addrValue, atomRule, verdictOf } from './atom-rule.js';
import { accept, addr, ct, isNot, jump, rule } from './build.js';
import type { Client } from './clients.js';
import { lowerRule, type Atom } from './lower.js';
import { packAtoms } from './pack.js';
import { withDropLog } from './drop-log.js';
import { toPrefix } from '../addr.js';

export function firewallTable(ctx: CompileContext, f: IpFamily, clients: Client[], dnsTargets: readonly string[]): Table {
  const saddr = f === 'ip' ? 'ip saddr' : 'ip6 saddr';
  const mine = clients.flatMap((c) => {
    const a = f === 'ip' ? c.ip : c.ip6;
    return a === null ? [] : [{ client: c, addr: a, chain: clientChain(a) }];
  });
  const sets: (NamedSet | NamedMap)[] = [];
  const chains: Chain[] = [];
  const forwardRules: IrRule[] = [
    rule('replies', [ct('established', 'related')], accept),
    rule('not-from-a-client', [isNot('iifname', { kind: 'wildcard', prefix: 'vif' })], accept),
  ];
  if (ctx.layout === 'qnet') {
    sets.push({
      kind: 'map',
      name: DISPATCH_MAP,
      keyType: [f === 'ip' ? 'ipv4_addr' : 'ipv6_addr'],
      interval: false,
      valueType: 'verdict',
      elements: mine.map((m) => ({ key: addr(m.addr), verdict: { kind: 'jump', chain: m.chain }, comment: m.client.qube.name })),
    });
    forwardRules.push(rule('dispatch', [], { kind: 'vmap', fields: [saddr], map: DISPATCH_MAP }));
  } else {
    for (const m of mine) forwardRules.push(rule({ kind: 'base', part: 'dispatch', qube: m.client.qube.name }, [{ kind: 'cmp', field: saddr, op: '==', value: addrValue(toPrefix(m.addr)!) }], jump(m.chain)));
  }
  chains.push({
    name: FIREWALL_FORWARD,
    // Before Qubes' base forward chain (`qubes`, priority 0): in Qubes both sit at 0 and
    // qubes-firewall, registered later at service start, runs first — so a qube's own rules answer
    // (admin-prohibited) before the base chain's silent drop of new flows to other qubes. Stated as
    // a priority here, so the order never depends on which table was loaded last.
    base: { type: 'filter', hook: 'forward', priority: PRIORITY.filter - 1, policy: 'drop' },
    rules: forwardRules,
  });
  for (const m of mine) {
    const frag = clientFragment(ctx, f, m.client, m.chain, dnsTargets);
    sets.push(...frag.sets);
    chains.push(frag.chain);
  }
  return { family: f, name: FIREWALL_TABLE, sets, chains };
}

/**
 * One client's part of `qubes-firewall`: its chain and the sets its rules were packed into. The
 * engine recompiles just this when only that qube's rules changed (a rule edit touches one chain
 * and its sets, never the other clients').
 */
export function clientFragment(ctx: CompileContext, f: IpFamily, client: Client, chain: string, dnsTargets: readonly string[]): { chain: Chain; sets: NamedSet[] } {
  const qube = client.qube.name;
  const atoms: Atom[] = [];
  effectiveRules(client.qube.rules, ctx.now).forEach((r, i) => atoms.push(...lowerRule(ctx, { family: f, qube, dnsTargets }, r, i)));
  const policy: IrRule = {
    matches: [],
    stmts: [{ kind: 'counter' }, { kind: 'verdict', verdict: verdictOf(f, 'reject') }],
    origin: { kind: 'policy', qube },
    comment: formatOrigin({ kind: 'policy', qube }),
  };
  if (ctx.layout === 'qnet') {
    const packed = packAtoms(f, qube, chain, atoms);
    return { chain: { name: chain, rules: withDropLog([...packed.rules, policy]), comment: qube }, sets: packed.sets };
  }
  return { chain: { name: chain, rules: withDropLog([...atoms.map((a) => atomRule(f, qube, a)), policy]) }, sets: [] };
}
