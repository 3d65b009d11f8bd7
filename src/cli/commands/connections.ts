// qnet connect A B [--proto P] [--port N[-M]] [--both-ways] [--comment T] | connect --list [-v]
// qnet connections [-v] | qnet disconnect ID | disconnect A B [--proto P] [--port N[-M]]
// qnet forward add VM --proto tcp|udp --port N [--to-port M] [--from CIDR]… [--on IFACE]…
// qnet forward list [-v] | forward del ID | forward del VM --proto P --port N
// Words to an op's input, the call, the print; nothing else (docs/architecture.md).
import type { Command } from 'commander';
import type { ConnectionView, ForwardView, HopCount } from '../../ops/connections.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function portNum(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`${name}: '${v}' is not a port (1-65535)`);
  return Number(v);
}

function connProto(v: string | undefined): 'tcp' | 'udp' | 'icmp' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'tcp' && v !== 'udp' && v !== 'icmp') throw new UsageError(`unknown protocol '${v}'`, 'tcp, udp or icmp');
  return v;
}

/**
 * The listing's rows; with -v each entry is followed by one row per hop (`iptables -L -v -n`):
 * packets and bytes its rules counted there, `-` where the hop is not running.
 */
function rowsWithHops(head: string[], entries: { cells: string[]; hops?: HopCount[] }[], verbose: boolean): string {
  if (!verbose) return formatTable([head, ...entries.map((e) => e.cells)]);
  const pad = head.map(() => '');
  const rows = [[...head, 'HOP', 'PKTS', 'BYTES']];
  for (const e of entries) {
    const hops = e.hops ?? [];
    if (!hops.length) rows.push([...e.cells, '-', '-', '-']);
    hops.forEach((h, k) => rows.push([...(k === 0 ? e.cells : pad), h.node, h.packets === null ? '-' : `${h.packets}`, h.bytes === null ? '-' : `${h.bytes}`]));
  }
  return formatTable(rows);
}

/** `-v` after the command may land on the program's own -v (commander parses global options first). */
const verbose = (ctx: Ctx, o: { verbose?: boolean }): boolean => !!o.verbose || !!ctx.globalOpts().verbose;

async function listConnections(ctx: Ctx, o: { json?: boolean; verbose?: boolean }): Promise<void> {
  o = { ...o, verbose: verbose(ctx, o) };
  const { value, warnings } = await ctx.call<ConnectionView[]>('connections.list', o.verbose ? { verbose: true } : {});
  printWarnings(ctx.io, warnings);
  if (wantsJson(o)) return void ctx.io.out(json(value));
  if (!value.length) return void ctx.io.out('no connections (qnet connect A B)\n');
  ctx.io.out(
    rowsWithHops(
      ['ID', 'CONNECTION', 'STATE', 'COMMENT'],
      value.map((c) => ({ cells: [c.id, c.text, c.active ? 'active' : `inactive: ${c.why ?? ''}`, c.comment ?? ''], ...(c.hops ? { hops: c.hops } : {}) })),
      !!o.verbose,
    ),
  );
}

export function registerConnections(program: Command, ctx: Ctx): void {
  program
    .command('connect')
    .description('let qube A open connections to qube B through every hop between them (one way unless --both-ways)')
    .argument('[a]', 'the qube that opens connections')
    .argument('[b]', 'the qube it may reach')
    .option('-p, --proto <proto>', 'tcp, udp or icmp (default: any)')
    .option('--port <n[-m]>', 'destination port or range (tcp and udp)')
    .option('--both-ways', 'B may open connections to A too')
    .option('--comment <text>', 'a note kept with it')
    .option('--list', 'list the connections (same as qnet connections)')
    .option('-v, --verbose', 'with --list: packets and bytes per hop')
    .option('--json', 'JSON output')
    .addHelpText('after', '\nExamples:\n  qnet connect work personal --proto tcp --port 22\n  qnet connect work vault-web --both-ways\n  qnet connect --list')
    .action(async (a: string | undefined, b: string | undefined, o: { proto?: string; port?: string; bothWays?: boolean; comment?: string; list?: boolean; verbose?: boolean; json?: boolean }) => {
      if (o.list) return listConnections(ctx, o);
      if (!a || !b) throw new UsageError('connect needs two qubes', 'qnet connect A B, or qnet connect --list');
      const proto = connProto(o.proto);
      if (o.port !== undefined && proto !== 'tcp' && proto !== 'udp') throw new UsageError('--port needs --proto tcp or udp');
      const input = { from: a, to: b, ...(proto ? { proto } : {}), ...(o.port !== undefined ? { ports: o.port } : {}), bothWays: !!o.bothWays, ...(o.comment !== undefined ? { comment: o.comment } : {}) };
      const { value, warnings } = await ctx.call<ConnectionView>('connections.add', input, 'change');
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(value));
      ctx.io.out(`${value.id}: ${value.text}${value.active ? '' : ` (inactive: ${value.why})`}\n`);
    });

  program
    .command('connections')
    .description('list the connections between qubes')
    .option('-v, --verbose', 'packets and bytes per hop')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean; verbose?: boolean }) => listConnections(ctx, o));

  program
    .command('disconnect')
    .description('remove a connection: by its id, or by the words it was made with')
    .argument('<a-or-id>', 'a connection id (c1) or the qube A')
    .argument('[b]', 'the qube B')
    .option('-p, --proto <proto>', 'tcp, udp or icmp')
    .option('--port <n[-m]>', 'destination port or range')
    .action(async (a: string, b: string | undefined, o: { proto?: string; port?: string }) => {
      const proto = connProto(o.proto);
      const input = b === undefined ? { id: a } : { from: a, to: b, ...(proto ? { proto } : {}), ...(o.port !== undefined ? { ports: o.port } : {}) };
      const { value, warnings } = await ctx.call<{ removed: string[] }>('connections.del', input, 'change');
      printWarnings(ctx.io, warnings);
      ctx.io.out(`removed ${value.removed.join(', ')}\n`);
    });

  const fwd = program.command('forward').description('port forwards from the outside world to a qube, through every hop');
  fwd
    .command('add')
    .description("offer a qube's port on its top netvm's uplink")
    .argument('<vm>', 'the qube that listens')
    .requiredOption('-p, --proto <proto>', 'tcp or udp')
    .requiredOption('--port <n>', 'the port the outside connects to')
    .option('--to-port <m>', 'the port the qube listens on (default: --port)')
    .option('--from <cidr>', 'allow only this source range (repeatable)', collect)
    .option('--on <iface>', "the top netvm's interface to offer it on (repeatable; default its uplink)", collect)
    .option('--comment <text>', 'a note kept with it')
    .option('--json', 'JSON output')
    .action(async (vm: string, o: { proto: string; port: string; toPort?: string; from?: string[]; on?: string[]; comment?: string; json?: boolean }) => {
      if (o.proto !== 'tcp' && o.proto !== 'udp') throw new UsageError(`a forward is tcp or udp, not '${o.proto}'`);
      const toPort = portNum('--to-port', o.toPort);
      const input = { qube: vm, proto: o.proto, port: portNum('--port', o.port)!, ...(toPort !== undefined ? { toPort } : {}), from: o.from ?? [], on: o.on ?? [], ...(o.comment !== undefined ? { comment: o.comment } : {}) };
      const { value, warnings } = await ctx.call<ForwardView>('forwards.add', input, 'change');
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(value));
      ctx.io.out(`${value.id}: ${describeForward(value)}${value.active ? '' : ` (inactive: ${value.why})`}\n`);
    });
  fwd
    .command('list')
    .description('list the port forwards')
    .option('-v, --verbose', 'packets and bytes per hop')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean; verbose?: boolean }) => {
      o = { ...o, verbose: verbose(ctx, o) };
      const { value, warnings } = await ctx.call<ForwardView[]>('forwards.list', o.verbose ? { verbose: true } : {});
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(value));
      if (!value.length) return void ctx.io.out('no port forwards (qnet forward add VM --proto tcp --port N)\n');
      ctx.io.out(
        rowsWithHops(
          ['ID', 'FORWARD', 'FROM', 'STATE', 'COMMENT'],
          value.map((f) => ({ cells: [f.id, describeForward(f), f.from.length ? f.from.join(',') : 'any', f.active ? 'active' : `inactive: ${f.why ?? ''}`, f.comment ?? ''], ...(f.hops ? { hops: f.hops } : {}) })),
          !!o.verbose,
        ),
      );
    });
  fwd
    .command('del')
    .description('remove a port forward: by its id, or by qube, --proto and --port')
    .argument('<vm-or-id>', 'a forward id (f1) or the qube')
    .option('-p, --proto <proto>', 'tcp or udp')
    .option('--port <n>', 'the outside port')
    .action(async (x: string, o: { proto?: string; port?: string }) => {
      let input: unknown = { id: x };
      if (o.proto !== undefined || o.port !== undefined) {
        if (o.proto !== 'tcp' && o.proto !== 'udp') throw new UsageError('forward del VM needs --proto tcp|udp and --port N');
        input = { qube: x, proto: o.proto, port: portNum('--port', o.port ?? '') };
      }
      const { value, warnings } = await ctx.call<{ removed: string[] }>('forwards.del', input, 'change');
      printWarnings(ctx.io, warnings);
      ctx.io.out(`removed ${value.removed.join(', ')}\n`);
    });
}

function describeForward(f: ForwardView): string {
  const on = f.on.length ? ` on ${f.on.join(',')}` : '';
  return `${f.top ?? '(no netvm)'}${on} ${f.proto}/${f.port} → ${f.qube}:${f.toPort ?? f.port}`;
}
