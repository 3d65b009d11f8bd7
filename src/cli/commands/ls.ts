// qnet ls [-n]: qvm-ls' columns (default NAME STATE CLASS LABEL TEMPLATE NETVM; -n / --format network
// NAME STATE NETVM IP IPBACK GATEWAY), sorted by name, `-` for none, aligned like `column -t`.
import type { Command } from 'commander';
import { gateway, netvmName, qubeIp, qubeIp6 } from '../../model/addressing.js';
import type { Model, Qube } from '../../model/qube.js';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

const FORMATS = {
  simple: ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE', 'NETVM'],
  network: ['NAME', 'STATE', 'NETVM', 'IP', 'IPBACK', 'GATEWAY'],
} as const;

const dash = (v: string | null | undefined) => (v === null || v === undefined || v === '' ? '-' : v);

function cell(m: Model, q: Qube, col: string): string {
  switch (col) {
    case 'NAME': return q.name;
    case 'STATE': return isDetached(m, q) ? 'Detached' : q.state;
    case 'CLASS': return q.klass;
    case 'LABEL': return q.label;
    case 'TEMPLATE': return '-';
    case 'NETVM': return dash(netvmName(m, q));
    case 'IP': return dash(qubeIp(m, q));
    case 'IPBACK': return '-'; // an R3 column; R4 has no such property, so Qubes prints '-'
    case 'GATEWAY': return dash(gateway(m, q));
    default: return '-';
  }
}

/** Running, but its netvm is not: its link is gone until the netvm starts again (then it is reattached). */
function isDetached(m: Model, q: Qube): boolean {
  const nv = netvmName(m, q);
  return q.state === 'Running' && nv !== null && m.qubes.get(nv)?.state !== 'Running';
}

/** One qube as a JSON object: every field of both formats, with null for none. */
function qubeJson(m: Model, q: Qube, status?: { state: string; diag?: { message: string } }) {
  return {
    name: q.name,
    qid: q.qid,
    state: q.state,
    detached: isDetached(m, q),
    ...(status ? { rules: status.state, ...(status.diag ? { rules_problem: status.diag.message } : {}) } : {}),
    class: q.klass,
    label: q.label,
    netvm: netvmName(m, q),
    netvm_is_default: q.netvm === undefined,
    provides_network: q.provides_network,
    ip: qubeIp(m, q),
    ip6: qubeIp6(m, q),
    gateway: gateway(m, q),
    features: q.features,
  };
}

export function registerLs(program: Command, ctx: Ctx): void {
  program
    .command('ls')
    .description('list qubes (qvm-ls); -n shows the network view')
    .argument('[names...]', 'only these qubes')
    .option('-n, --network', 'network columns: NAME STATE NETVM IP IPBACK GATEWAY (same as --format network)')
    .option('-o, --format <format>', 'simple, network or json')
    .option('--json', 'JSON output (same as --format json)')
    .action(async (names: string[], o: { network?: boolean; format?: string; json?: boolean }) => {
      if (o.format && !['simple', 'network', 'json'].includes(o.format))
        throw new UsageError(`unknown format '${o.format}'`, 'simple, network, json');
      const m = await ctx.store().load();
      let qubes = [...m.qubes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      if (names.length) {
        const missing = names.filter((n) => !m.qubes.has(n));
        if (missing.length) throw new UsageError(`no such qube: ${missing.join(', ')}`);
        qubes = qubes.filter((q) => names.includes(q.name));
      }
      const status = ctx.applyStatus();
      if (wantsJson(o)) return void ctx.io.out(json(qubes.map((q) => qubeJson(m, q, status?.get(q.name)))));
      const cols = o.network || o.format === 'network' ? FORMATS.network : FORMATS.simple;
      ctx.io.out(formatTable([[...cols], ...qubes.map((q) => cols.map((c) => cell(m, q, c)))]));
    });
}
