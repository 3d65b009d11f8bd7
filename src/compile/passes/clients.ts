// Pass: who a node forwards for, from the plan (its vif interfaces, Qubes group 2) and their
// addresses from the model. Only qubes in the plan count: a halted client has no link.
import { qubeIp, qubeIp6 } from '../../model/addressing.js';
import type { NetNode } from '../../model/netplan.js';
import type { Qube } from '../../model/qube.js';
import { canonicalAddr } from '../addr.js';
import type { CompileContext } from '../context.js';

export interface Client {
  qube: Qube;
  /** The netvm-side interface: `vif<qid>.0`. */
  vif: string;
  ip: string | null;
  ip6: string | null;
}

/** A client's qube, if `i` is the netvm's side of its link. */
const clientAt = (ctx: CompileContext, i: NetNode['ifaces'][number]): Qube | undefined => (i.group === 2 && i.peer ? ctx.model.qubes.get(i.peer.node) : undefined);

/** How many clients clientsOfNode() gives, without making them. */
export const countClients = (ctx: CompileContext, node: NetNode): number => node.ifaces.filter((i) => clientAt(ctx, i)).length;

/** `only`: just that client (a rule edit recompiles one of a thousand). */
export function clientsOfNode(ctx: CompileContext, node: NetNode, only?: string): Client[] {
  const out: Client[] = [];
  for (const i of node.ifaces) {
    if (only !== undefined && i.peer?.node !== only) continue;
    const q = clientAt(ctx, i);
    if (!q) continue;
    const ip = qubeIp(ctx.model, q);
    const ip6 = qubeIp6(ctx.model, q);
    out.push({ qube: q, vif: i.name, ip: ip === null ? null : canonicalAddr(ip), ip6: ip6 === null ? null : canonicalAddr(ip6) });
  }
  return out.sort((a, b) => a.qube.qid - b.qube.qid || a.qube.name.localeCompare(b.qube.name));
}
