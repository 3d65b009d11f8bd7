// Pass: table `qubes-firewall`, the per-client outbound rules a netvm enforces (reference §4.4).
// Qubes jumps from `forward` through a linear list `ip saddr X jump qbs-X`, one rule per client;
// qnet (layout 'qnet') looks the source up once in the verdict map `dispatch`, so the cost per
// packet does not grow with the number of clients, and past FIREWALL_SHARD_CLIENTS clients spreads
// the client chains over shard tables, so that a commit's check of every reachable rule covers one
// shard (see firewallTables). 'qubes-linear' keeps Qubes' shape exactly (and one nft rule per
// atom), as the benchmark baseline.
import type { Chain, IrRule, NamedMap, NamedSet, Table } from '../../ir/types.js';
import { PRIORITY } from '../../ir/types.js';
import { effectiveRules } from '../../model/rule.js';
import type { CompileContext, IpFamily } from '../context.js';
import { clientChain, DISPATCH_MAP, FIREWALL_CLIENTS_SET, FIREWALL_FORWARD, FIREWALL_TABLE, firewallShards, firewallShardTable, firewallTableFor, formatOrigin } from '../names.js';
import { addrValue, atomRule, verdictOf } from './atom-rule.js';
import { accept, addr, ct, isNot, jump, rule } from './build.js';
import type { Client } from './clients.js';
import { lowerRule, type Atom } from './lower.js';
import { packAtoms } from './pack.js';
import { withDropLog } from './drop-log.js';
import { toPrefix } from '../addr.js';

/**
 * The family's firewall tables. Past FIREWALL_SHARD_CLIENTS clients (layout 'qnet', firewallShardsFor):
 * the client chains are spread over tables `qubes-firewall-N` (firewallTableFor), each with its own
 * forward base chain (policy accept) and dispatch map; `qubes-firewall` keeps the policy drop and
 * accepts only a client's source (`@clients`), so an unknown source is still dropped there. Every
 * base chain runs and a drop in any is final (§4.6): a client's packet passes the guard, then its
 * own chain in its shard, and the other shards' policy.
 */
export function firewallTables(ctx: CompileContext, f: IpFamily, clients: Client[], dnsTargets: readonly string[]): Table[] {
  const shards = firewallShardsFor(ctx, clients.length);
  const saddr = f === 'ip' ? 'ip saddr' : 'ip6 saddr';
  const keyType = f === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const mine = clients.flatMap((c) => {
    const a = f === 'ip' ? c.ip : c.ip6;
    return a === null ? [] : [{ client: c, addr: a, chain: clientChain(a), table: firewallTableFor(a, shards) }];
  });
  const head = (): IrRule[] => [rule('replies', [ct('established', 'related')], accept), rule('not-from-a-client', [isNot('iifname', { kind: 'wildcard', prefix: 'vif' })], accept)];
  const tables = new Map<string, Table>();
  const table = (name: string, policy: 'accept' | 'drop', rules: IrRule[], sets: (NamedSet | NamedMap)[] = []): void => {
    // Before Qubes' base forward chain (`qubes`, priority 0): in Qubes both sit at 0 and
    // qubes-firewall, registered later at service start, runs first — so a qube's own rules answer
    // (admin-prohibited) before the base chain's silent drop of new flows to other qubes. Stated as
    // a priority here, so the order never depends on which table was loaded last.
    tables.set(name, { family: f, name, sets, chains: [{ name: FIREWALL_FORWARD, base: { type: 'filter', hook: 'forward', priority: PRIORITY.filter - 1, policy }, rules }] });
  };
  const dispatch = (members: typeof mine): NamedMap => ({
    kind: 'map',
    name: DISPATCH_MAP,
    keyType: [keyType],
    interval: false,
    valueType: 'verdict',
    elements: members.map((m) => ({ key: addr(m.addr), verdict: { kind: 'jump', chain: m.chain }, comment: m.client.qube.name })),
  });
  if (ctx.layout !== 'qnet') {
    const rules = head();
    for (const m of mine) rules.push(rule({ kind: 'base', part: 'dispatch', qube: m.client.qube.name }, [{ kind: 'cmp', field: saddr, op: '==', value: addrValue(toPrefix(m.addr)!) }], jump(m.chain)));
    table(FIREWALL_TABLE, 'drop', rules);
  } else if (shards <= 1) {
    table(FIREWALL_TABLE, 'drop', [...head(), rule('dispatch', [], { kind: 'vmap', fields: [saddr], map: DISPATCH_MAP })], [dispatch(mine)]);
  } else {
    const known: NamedSet = { kind: 'set', name: FIREWALL_CLIENTS_SET, keyType: [keyType], interval: false, elements: mine.map((m) => ({ key: addr(m.addr), comment: m.client.qube.name })) };
    table(FIREWALL_TABLE, 'drop', [...head(), rule('known-client', [{ kind: 'in-set', fields: [saddr], op: '==', set: FIREWALL_CLIENTS_SET }], accept)], [known]);
    for (let i = 0; i < shards; i++) {
      const name = firewallShardTable(i);
      const members = mine.filter((m) => m.table === name);
      table(name, 'accept', [...head(), rule('dispatch', [], { kind: 'vmap', fields: [saddr], map: DISPATCH_MAP })], [dispatch(members)]);
    }
  }
  for (const m of mine) {
    const t = tables.get(m.table)!;
    const frag = clientFragment(ctx, f, m.client, m.chain, dnsTargets);
    t.sets.push(...frag.sets);
    t.chains.push(frag.chain);
  }
  return [...tables.values()];
}

/** How many firewall tables a netvm with `clients` clients gets: shards in layout 'qnet' only. */
export function firewallShardsFor(ctx: CompileContext, clients: number): number {
  return ctx.layout === 'qnet' ? firewallShards(clients, ctx.shardClients) : 1;
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
