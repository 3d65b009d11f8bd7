// The blocked fallback (EXAMPLES.md Example 12): when a node refuses its new rules twice (delta,
// then full load), the clients whose chains changed get one chain each that rejects everything
// (admin-prohibited, as `action=drop` does), their sets go, and every other object stays exactly
// as it was. A failure leaves a qube blocked, never open.
import type { IrRule, Ruleset } from '../../ir/types.js';
import { formatOrigin } from '../../model/origin.js';
import { qubeIp, qubeIp6 } from '../../model/addressing.js';
import type { Model } from '../../model/qube.js';
import { clientChain, clientOwns, isFirewallTable } from '../names.js';

function rejectAll(qube: string, v6: boolean): IrRule {
  const origin = { kind: 'base', part: 'blocked', qube } as const;
  return {
    matches: [],
    stmts: [{ kind: 'verdict', verdict: { kind: 'reject', with: v6 ? { type: 'icmpv6', code: 'admin-prohibited' } : { type: 'icmp', code: 'admin-prohibited' } } }],
    origin,
    comment: formatOrigin(origin),
  };
}

/** The ruleset with these clients' chains reduced to one reject, and what else they owned removed. */
export function blockClients(rs: Ruleset, model: Model, clients: readonly string[]): Ruleset {
  const chains = new Map<string, string>(); // client chain → its qube
  for (const name of clients) {
    const q = model.qubes.get(name);
    if (q) for (const a of [qubeIp(model, q), qubeIp6(model, q)]) if (a) chains.set(clientChain(a), name);
  }
  const owners = [...chains.keys()].map(clientOwns);
  const owned = (n: string) => owners.some((owns) => owns(n));
  return {
    tables: rs.tables.map((t) =>
      !isFirewallTable(t.name)
        ? t
        : {
            ...t,
            sets: t.sets.filter((s) => !owned(s.name)),
            chains: t.chains.filter((c) => !owned(c.name) || chains.has(c.name)).map((c) => (chains.has(c.name) ? { ...c, rules: [rejectAll(chains.get(c.name)!, t.family === 'ip6')] } : c)),
          },
    ),
  };
}
