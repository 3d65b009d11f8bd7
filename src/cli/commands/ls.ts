// qnet ls: qvm-ls' columns (default NAME STATE CLASS LABEL TEMPLATE NETVM; -n / --format network
// NAME STATE NETVM IP IPBACK GATEWAY; --fields F1,F2 any of FIELDS), sorted by name, `-` for none,
// aligned like `column -t`; --raw-list (names only), --running / --halted, --tree (the netvm tree).
import type { Command } from 'commander';
import type { QubeView } from '../../ops/views.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

const FORMATS = {
  simple: ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE', 'NETVM'],
  network: ['NAME', 'STATE', 'NETVM', 'IP', 'IPBACK', 'GATEWAY'],
} as const;

/** qvm-ls field names qnet knows (qvm-ls --help-columns), for --fields. */
export const FIELDS = ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE', 'NETVM', 'IP', 'IP6', 'IPBACK', 'GATEWAY', 'QID', 'PROVIDES_NETWORK', 'FEATURES'] as const;

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
    case 'IP6': return dash(q.ip6);
    case 'IPBACK': return '-'; // an R3 column; R4 has no such property, so Qubes prints '-'
    case 'GATEWAY': return dash(q.gateway);
    case 'QID': return String(q.qid);
    case 'PROVIDES_NETWORK': return q.provides_network ? 'True' : 'False';
    case 'FEATURES': return dash(Object.keys(q.features).sort().map((k) => `${k}=${q.features[k]}`).join(','));
    default: return '-';
  }
}

/** Qubes in netvm-tree order, each with its depth: a qube under its netvm (when listed), siblings by name. */
function treeOrder(qubes: readonly QubeView[]): { q: QubeView; depth: number }[] {
  const listed = new Set(qubes.map((q) => q.name));
  const children = new Map<string | null, QubeView[]>();
  for (const q of qubes) {
    const parent = q.netvm !== null && listed.has(q.netvm) && q.netvm !== q.name ? q.netvm : null;
    children.set(parent, [...(children.get(parent) ?? []), q]);
  }
  const out: { q: QubeView; depth: number }[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const q of children.get(parent) ?? []) {
      out.push({ q, depth });
      walk(q.name, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

/** The qvm-ls table of these qubes (also what `qnet demo` shows); `tree`: names indented under their netvm as qvm-ls --tree. */
export function lsTable(qubes: readonly QubeView[], network: boolean | readonly string[], tree = false): string {
  const cols = Array.isArray(network) ? network : network ? FORMATS.network : FORMATS.simple;
  const rows = tree ? treeOrder(qubes) : qubes.map((q) => ({ q, depth: 0 }));
  const name = (q: QubeView, depth: number) => (depth ? `${'  '.repeat(depth - 1)}└─${q.name}` : q.name);
  return formatTable([[...cols], ...rows.map(({ q, depth }) => cols.map((c) => (c === 'NAME' ? name(q, depth) : cell(q, c))))]);
}

interface LsOpts {
  network?: boolean;
  format?: string;
  json?: boolean;
  rawList?: boolean;
  running?: boolean;
  halted?: boolean;
  tree?: boolean;
  fields?: string;
}

function fieldsOpt(v: string): string[] {
  const fields = v.split(',').map((f) => f.trim().toUpperCase()).filter(Boolean);
  const bad = fields.filter((f) => !(FIELDS as readonly string[]).includes(f));
  if (!fields.length || bad.length) throw new UsageError(`no such field: '${bad.join(',') || v}'`, FIELDS.join(', '));
  return fields;
}

export function registerLs(program: Command, ctx: Ctx): void {
  program
    .command('ls')
    .description('list qubes (qvm-ls); -n shows the network view')
    .argument('[names...]', 'only these qubes')
    .option('-n, --network', 'network columns: NAME STATE NETVM IP IPBACK GATEWAY (same as --format network)')
    .option('-o, --format <format>', 'simple, network or json')
    .option('--fields <fields>', `these columns, comma-separated: ${FIELDS.join(',')}`)
    .option('--raw-list', 'only the names, one per line')
    .option('--running', 'only running qubes (with --halted: both)')
    .option('--halted', 'only halted qubes')
    .option('--tree', 'qubes indented under their netvm')
    .option('--json', 'JSON output (same as --format json)')
    .action(async (names: string[], o: LsOpts) => {
      if (o.format && !['simple', 'network', 'json'].includes(o.format))
        throw new UsageError(`unknown format '${o.format}'`, 'simple, network, json');
      const fields = o.fields !== undefined ? fieldsOpt(o.fields) : undefined;
      const { value: all, warnings } = await ctx.call<QubeView[]>('qubes.list', names.length ? { names } : {});
      printWarnings(ctx.io, warnings); // broken rules files, qubes.json entries left out
      // qvm-ls: the state filters add up (--running --halted shows both).
      const states = [...(o.running ? ['Running'] : []), ...(o.halted ? ['Halted'] : [])];
      const qubes = states.length ? all.filter((q) => states.includes(q.state)) : all;
      if (wantsJson(o)) return void ctx.io.out(json(qubes));
      if (o.rawList) return void ctx.io.out(qubes.map((q) => q.name + '\n').join(''));
      ctx.io.out(lsTable(qubes, fields ?? (!!o.network || o.format === 'network'), !!o.tree));
    });
}
