// What the compiler puts around a qube's own rules in its netvm, as rows a user can read beside
// them (the firewall editor shows them read-only): anti-spoofing and the DNS redirect before, the
// replies of allowed flows, the netvm's own input (ICMP to the gateway), and after the rules the
// default refusal and the base chain's drop of new flows to other qubes. Each row names the part
// (the origin comment of the kernel rule: `qnet:base:<part>`, or the policy) and its table and
// chain, so it can be found in `qnet nft`; a test holds each to what compile() emits.
import { gateway, gateway6, netvmName, qubeIp, qubeIp6 } from '../model/addressing.js';
import type { NetPlan } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { upstreamDns } from './compile.js';
import { FIREWALL_FORWARD, FIREWALL_TABLE, QUBES_CHAINS, QUBES_TABLE } from './names.js';

export interface ImplicitRow {
  /** Before the qube's rules (a packet meets it first) or after them. */
  place: 'before' | 'after';
  /** The origin of the kernel rule: a base part (`replies`, `dns-dnat` …) or `policy`. */
  part: string;
  /** The netvm that enforces it, and where: `qubes-firewall forward`, `qubes input` … */
  node: string;
  chain: string;
  action: 'accept' | 'drop' | 'reject' | 'dnat';
  /** What it matches, in words. */
  match: string;
  /** What it means for the qube's rules. */
  note: string;
}

/** The rows around `qube`'s rules; [] when it has no netvm (nothing enforces rules for it). */
export function implicitRows(model: Model, plan: NetPlan, qube: string): ImplicitRow[] {
  const q = model.qubes.get(qube);
  const nvName = q ? netvmName(model, q) : null;
  const nv = nvName === null ? undefined : model.qubes.get(nvName);
  if (!q || !nv) return [];
  const node = nv.name;
  const at = (table: string, chain: string) => `${table} ${chain}`;
  const own = [qubeIp(model, q), qubeIp6(model, q)].filter((a): a is string => a !== null);
  const gw = [gateway(model, q), gateway6(model, q)].filter((a): a is string => a !== null);
  const { upstream4 } = upstreamDns({ model, plan }, nv);
  const rows: ImplicitRow[] = [
    {
      place: 'before', part: 'antispoof', node, chain: at(QUBES_TABLE, QUBES_CHAINS.antispoof), action: 'drop',
      match: `from ${qube} with a source other than ${own.join(', ') || 'its address'}`,
      note: 'anti-spoofing: a qube sends only with its own address, before any rule is looked at',
    },
  ];
  if (plan.virtualDns.length)
    rows.push(
      upstream4.length
        ? {
            place: 'before', part: 'dns-dnat', node, chain: at(QUBES_TABLE, QUBES_CHAINS.dnatDns), action: 'dnat',
            match: `udp/tcp port 53 to ${plan.virtualDns.join(', ')} → ${upstream4.join(', ')}`,
            note: 'DNS to the virtual resolvers goes to the netvm\'s upstream; it passes only if a rule accepts it (specialtarget=dns)',
          }
        : {
            place: 'before', part: 'dns-no-upstream', node, chain: at(QUBES_TABLE, QUBES_CHAINS.dnatDns), action: 'drop',
            match: `udp/tcp port 53 to ${plan.virtualDns.join(', ')}`,
            note: `${node} has no DNS servers: DNS is dropped whatever the rules say`,
          },
    );
  rows.push(
    {
      place: 'before', part: 'icmp-from-clients', node, chain: at(QUBES_TABLE, QUBES_CHAINS.input), action: 'accept',
      match: `ICMP to ${node} itself${gw.length ? ` (${gw.join(', ')})` : ''}`,
      note: 'the gateway answers ping; ICMP anywhere else is up to the rules',
    },
    {
      place: 'before', part: 'refuse-clients', node, chain: at(QUBES_TABLE, QUBES_CHAINS.input), action: 'reject',
      match: `anything else to ${node} itself`,
      note: 'the netvm offers no service to its clients (host-prohibited)',
    },
    {
      place: 'before', part: 'replies', node, chain: at(FIREWALL_TABLE, FIREWALL_FORWARD), action: 'accept',
      match: 'established, related',
      note: 'replies and related packets of flows already allowed; a tightening edit cuts the flows it no longer allows',
    },
    {
      place: 'after', part: 'policy', node, chain: at(FIREWALL_TABLE, FIREWALL_FORWARD), action: 'reject',
      match: 'anything no rule matched',
      note: 'the default: refused with ICMP admin-prohibited (fast failure, as Qubes)',
    },
    {
      place: 'after', part: 'no-new-flows-to-clients', node, chain: at(QUBES_TABLE, QUBES_CHAINS.forward), action: 'drop',
      match: `new flows to other qubes behind ${node}`,
      note: 'dropped even where a rule accepts them, unless a connection allows them (qnet connections)',
    },
  );
  return rows;
}
