// qnet ls [-n]: qvm-ls' columns (default NAME STATE CLASS LABEL TEMPLATE NETVM; -n / --format network
// NAME STATE NETVM IP IPBACK GATEWAY), sorted by name, `-` for none, aligned like `column -t`.
import type { Command } from 'commander';
import type { QubeView } from '../../ops/views.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

const FORMATS = {
  simple: ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE', 'NETVM'],
  network: ['NAME', 'STATE', 'NETVM', 'IP', 'IPBACK', 'GATEWAY'],
} as const;

const dash = (v: string | null | undefined) => (v === null || v === undefined || v === '' ? '-' : v);

function cell(q: QubeView, col: string): string {
  switch (col) {
    case 'NAME': return q.name;
    case 'STATE': return q.detached ? 'Detached' : q.state;
    case 'CLASS': return q.class;
    case 'LABEL': return q.label;
    case 'TEMPLATE': return '-';
    case 'NETVM': return dash(q.netvm);
    case 'IP': return dash(q.ip);
    case 'IPBACK': return '-'; // an R3 column; R4 has no such property, so Qubes prints '-'
    case 'GATEWAY': return dash(q.gateway);
    default: return '-';
  }
}

/** The qvm-ls table of these qubes (also what `qnet demo` shows). */
export function lsTable(qubes: readonly QubeView[], network: boolean): string {
  const cols = network ? FORMATS.network : FORMATS.simple;
  return formatTable([[...cols], ...qubes.map((q) => cols.map((c) => cell(q, c)))]);
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
      const { value: qubes, warnings } = await ctx.call<QubeView[]>('qubes.list', names.length ? { names } : {});
      printWarnings(ctx.io, warnings); // broken rules files, qubes.json entries left out
      if (wantsJson(o)) return void ctx.io.out(json(qubes));
      ctx.io.out(lsTable(qubes, !!o.network || o.format === 'network'));
    });
}
