// Pass: table `qubes`, the base rules of every qube (reference §5.2: qubes-ipv4.nft / qubes-ipv6.nft,
// qubes-antispoof.nft, qubes-setup-dnat-to-ns). Shared with the user: `custom-input` and
// `custom-forward` are declared here and left empty for them.
import type { Chain, IrRule, NamedMap, NamedSet, Statement, Table } from '../../ir/types.js';
import { PRIORITY } from '../../ir/types.js';
import type { Qube } from '../../model/qube.js';
import type { CompileContext, IpFamily } from '../context.js';
import {
  ALLOWED_SET,
  CUSTOM_FORWARD,
  CUSTOM_INPUT,
  DOWNSTREAM_SET,
  FORWARD_PORTS_SET,
  LINKS_UP_SET,
  QUBES_CHAINS as C,
  QUBES_TABLE,
} from '../names.js';
import { DNS_PORT } from './lower.js';
import { accept, addr, counter, ct, drop, goto, inSet, int, is, jump, reject, rule, str, sym } from './build.js';
import type { Client } from './clients.js';
import { linksOf } from './links.js';

const userChain = (name: string): Chain => ({ name, rules: [], userOwned: true });
const ret: Statement = { kind: 'verdict', verdict: { kind: 'return' } };

/**
 * Accepts for inbound connections to this qube (qnet Connections and PortForwards, links.ts).
 * They sit after `established,related accept` and before the final refusal, in both app qubes and
 * netvms: nothing reaches a qube unless something says so (DESIGN.md).
 */
export function inboundAccepts(ctx: CompileContext, q: Qube, f: IpFamily): IrRule[] {
  return linksOf(ctx, q.name, f).input;
}

/** An app qube: refuse new inbound connections; user rules first. */
export function appQubesTable(ctx: CompileContext, q: Qube, f: IpFamily): Table {
  const input: Chain = {
    name: C.input,
    base: { type: 'filter', hook: 'input', priority: PRIORITY.filter, policy: 'drop' },
    rules: [
      rule('custom-input', [], jump(CUSTOM_INPUT)),
      rule('drop-invalid', [ct('invalid')], drop),
      rule('replies', [ct('established', 'related')], accept),
      rule('loopback', [is('iifname', str('lo'))], accept),
      ...neighbourDiscovery(f),
      ...inboundAccepts(ctx, q, f),
    ],
  };
  // The flat layout's maps and the chains their elements jump to (links.ts, flat-links.ts).
  const links = linksOf(ctx, q.name, f);
  return { family: f, name: QUBES_TABLE, sets: [...links.maps], chains: [userChain(CUSTOM_INPUT), input, ...links.chains] };
}

/** IPv6 does not work without neighbour discovery, which arrives on every interface (ICMPv6). */
function neighbourDiscovery(f: IpFamily): IrRule[] {
  return f === 'ip6' ? [rule('icmpv6-nd', [is('meta l4proto', sym('icmpv6'))], accept)] : [];
}

export interface NetvmBase {
  clients: Client[];
  /** Where 10.139.1.1/2 are DNATed to (IPv4 only, as Qubes does); [] = drop DNS to them. */
  dnsUpstream: readonly string[];
  virtualDns: readonly string[];
}

/** A qube that provides network: anti-spoofing, DNS DNAT, masquerade, input and forward policy. */
export function netvmQubesTable(ctx: CompileContext, q: Qube, f: IpFamily, nb: NetvmBase): Table {
  const v6 = f === 'ip6';
  const saddr = v6 ? 'ip6 saddr' : 'ip saddr';
  const addrs = nb.clients.map((c) => (v6 ? c.ip6 : c.ip)).filter((x, i, a): x is string => x !== null && a.indexOf(x) === i);
  const pairs = nb.clients.flatMap((c) => {
    const a = v6 ? c.ip6 : c.ip;
    return a === null ? [] : [{ key: [str(c.vif), addr(a)], comment: c.qube.name }];
  });
  const links = linksOf(ctx, q.name, f);
  for (const x of links.allowed) pairs.push({ key: [str(x.vif), addr(x.addr)], comment: x.qube });
  const addrType = v6 ? 'ipv6_addr' : 'ipv4_addr';
  const sets: (NamedSet | NamedMap)[] = [
    { kind: 'set', name: DOWNSTREAM_SET, keyType: [addrType], interval: false, elements: addrs.map((a) => ({ key: addr(a) })) },
    { kind: 'set', name: ALLOWED_SET, keyType: ['ifname', addrType], interval: false, elements: pairs },
  ];
  const fromVif = is('iifgroup', int(2));
  const chains: Chain[] = [
    userChain(CUSTOM_INPUT),
    userChain(CUSTOM_FORWARD),
    {
      // raw priority: before conntrack, so a spoofed packet never creates a flow.
      name: C.prerouting,
      base: { type: 'filter', hook: 'prerouting', priority: PRIORITY.raw, policy: 'accept' },
      rules: [
        rule('antispoof', [fromVif], goto(C.antispoof)),
        rule('antispoof', [inSet([saddr], DOWNSTREAM_SET)], counter, drop),
      ],
    },
    {
      name: C.antispoof,
      rules: [
        rule('antispoof', [inSet(['iifname', saddr], ALLOWED_SET)], accept),
        // Link-local sources are never forwarded; a client needs them for neighbour discovery.
        ...(v6 ? [rule('antispoof-link-local', [is('ip6 saddr', { kind: 'addr', addr: 'fe80::', len: 10 })], accept)] : []),
        rule('antispoof', [], counter, drop),
      ],
    },
  ];
  if (!v6) chains.push(dnatDns(nb));
  // Connections and forwards (links.ts) cost ordinary traffic one comparison or set lookup per
  // chain, however many there are: their rule lists are reached only by the packets they concern.
  if (links.dnat.length) {
    sets.push({ kind: 'set', name: FORWARD_PORTS_SET, keyType: ['inet_proto', 'inet_service'], interval: false, elements: links.ports.map(([p, n]) => ({ key: [sym(p), int(n)] })) });
    chains.push({
      name: C.dnatForwards,
      base: { type: 'nat', hook: 'prerouting', priority: PRIORITY.dstnat, policy: 'accept' },
      rules: [
        rule('forwards', [fromVif], ret),
        rule('forwards', [{ kind: 'in-set', fields: ['meta l4proto', 'th dport'], op: '!=', set: FORWARD_PORTS_SET }], ret),
        ...links.dnat,
      ],
    });
  }
  if (links.up.length) {
    sets.push({ kind: 'set', name: LINKS_UP_SET, keyType: [addrType], interval: false, elements: links.upDests.map((a) => ({ key: addr(a) })) });
    chains.push({ name: C.linksUp, rules: links.up });
  }
  if (links.down.length) chains.push({ name: C.linksDown, rules: links.down });
  // The flat layout's maps (declared with the sets) and the chains their elements jump to.
  sets.push(...links.maps);
  chains.push(...links.chains);
  chains.push(
    {
      name: C.postrouting,
      base: { type: 'nat', hook: 'postrouting', priority: PRIORITY.srcnat, policy: 'accept' },
      rules: [
        rule('masquerade', [is('oifgroup', int(2))], accept),
        rule('masquerade', [is('oifname', str('lo'))], accept),
        rule('masquerade', [], { kind: 'masquerade' }),
      ],
    },
    {
      name: C.input,
      base: { type: 'filter', hook: 'input', priority: PRIORITY.filter, policy: 'drop' },
      rules: [
        rule('custom-input', [], jump(CUSTOM_INPUT)),
        rule('drop-invalid', [ct('invalid')], drop),
        ...(v6 ? [] : [rule('no-dhcp-from-clients', [fromVif, is('udp dport', int(68))], drop)]),
        rule('replies', [ct('established', 'related')], accept),
        rule('icmp-from-clients', [fromVif, v6 ? is('meta l4proto', sym('icmpv6')) : is('ip protocol', sym('icmp'))], accept),
        rule('loopback', [is('iifname', str('lo'))], accept),
        ...neighbourDiscovery(f),
        ...inboundAccepts(ctx, q, f),
        rule(
          'refuse-clients',
          [fromVif],
          reject(v6 ? { type: 'icmpv6', code: 'admin-prohibited' } : { type: 'icmp', code: 'host-prohibited' }),
        ),
      ],
    },
    {
      // Policy accept: the per-client decision is qubes-firewall's; this chain only forbids new
      // flows towards any downstream qube (inter-qube and unsolicited inbound, reference §4.6).
      name: C.forward,
      base: { type: 'filter', hook: 'forward', priority: PRIORITY.filter, policy: 'accept' },
      rules: [
        rule('custom-forward', [], jump(CUSTOM_FORWARD)),
        rule('drop-invalid', [ct('invalid')], drop),
        rule('replies', [ct('established', 'related')], accept),
        ...(links.up.length ? [rule('connections', [inSet([v6 ? 'ip6 daddr' : 'ip daddr'], LINKS_UP_SET)], jump(C.linksUp))] : []),
        ...(links.down.length ? [rule('connections', [is('oifgroup', int(2))], jump(C.linksDown))] : []),
        rule('no-new-flows-to-clients', [is('oifgroup', int(2))], counter, drop),
      ],
    },
  );
  return { family: f, name: QUBES_TABLE, sets, chains };
}

/** qubes-setup-dnat-to-ns: each virtual resolver paired round-robin with an upstream one. */
function dnatDns(nb: NetvmBase): Chain {
  const rules: IrRule[] = [];
  nb.virtualDns.forEach((v, i) => {
    const up = nb.dnsUpstream.length ? nb.dnsUpstream[i % nb.dnsUpstream.length]! : null;
    for (const l4 of ['udp', 'tcp'] as const) {
      const m = [is('ip daddr', addr(v)), is(l4 === 'udp' ? 'udp dport' : 'tcp dport', int(DNS_PORT))];
      rules.push(up === null ? rule('dns-no-upstream', m, drop) : rule('dns-dnat', m, { kind: 'dnat', addr: up }));
    }
  });
  return { name: C.dnatDns, base: { type: 'nat', hook: 'prerouting', priority: PRIORITY.dstnat, policy: 'accept' }, rules };
}
