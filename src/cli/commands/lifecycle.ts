// Running qubes: qnet start / shutdown / kill (qvm-start, qvm-shutdown, qvm-kill), qnet run
// (qvm-run: a program inside the qube's namespace), and qnet counters (packets per rule per hop).
import type { Command } from 'commander';
import { diag } from '../../model/diagnostics.js';
import { QnetError } from '../../model/result.js';
import type { CounterRow } from '../../ops/lifecycle.js';
import type { QubeView } from '../../ops/views.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

export function registerLifecycle(program: Command, ctx: Ctx): void {
  program
    .command('start')
    .description('start qubes, and their netvm chains first (qvm-start)')
    .argument('<name...>', 'qubes to start')
    .action(async (qubes: string[]) => printWarnings(ctx.io, (await ctx.call('start', { qubes }, 'change')).warnings));

  program
    .command('shutdown')
    .description('stop qubes (qvm-shutdown); a netvm with running clients refuses unless --force')
    .argument('[name...]', 'qubes to stop')
    .option('--all', 'stop every running qube (clients first)')
    .option('--force', 'stop a netvm even though clients use it (they stay running, detached)')
    .action(async (qubes: string[], o: { all?: boolean; force?: boolean }) => {
      if (!o.all && !qubes.length) throw new UsageError('name the qubes to stop, or use --all');
      await ctx.call('shutdown', { qubes, all: !!o.all, force: !!o.force }, 'change');
    });

  program
    .command('kill')
    .description('stop qubes at once, without the running-clients check (qvm-kill)')
    .argument('<name...>', 'qubes to kill')
    .action(async (qubes: string[]) => void (await ctx.call('kill', { qubes }, 'change')));

  program
    .command('run')
    .description('run a program inside a qube, starting it (and its netvms) first (qvm-run)')
    .argument('<vm>', 'qube')
    .argument('<command...>', 'the program and its arguments (put -- before them)')
    .option('-u, --user <user>', 'run as this user (default root, as qvm-run -u root)')
    .option('--no-autostart', 'fail instead of starting a halted qube')
    .usage('VM [--user U] -- CMD...')
    .action(async (vm: string, argv: string[], o: { user?: string; autostart: boolean }) => {
      // A session, not an operation: it runs here, and asks the daemon (if any) only to start the qube.
      const { value: [q] } = await ctx.call<QubeView[]>('qubes.list', { names: [vm] });
      if (q!.state !== 'Running') {
        if (!o.autostart) throw new QnetError(diag('QNET2103', `${vm} is not running`, { hint: `qnet start ${vm}` }));
        printWarnings(ctx.io, (await ctx.call('start', { qubes: [vm] }, 'change')).warnings);
      }
      const { execInQube } = await import('../../ops/sessions.js');
      ctx.setExitCode(await execInQube(ctx.stateDir(), ctx.io.env, vm, argv, o.user));
    });

  program
    .command('counters')
    .description("packets and bytes per rule, per hop of the qube's netvm chain, mapped back to its rules")
    .argument('<vm>', 'qube')
    .option('--all', 'also the base rules (anti-spoofing, replies, …) of each hop')
    .option('--json', 'JSON output')
    .action(async (vm: string, o: { all?: boolean; json?: boolean }) => {
      const { value: rows } = await ctx.call<CounterRow[]>('counters', { qube: vm, all: !!o.all });
      if (wantsJson(o)) return void ctx.io.out(json(rows));
      ctx.io.out(formatTable([['HOP', 'CHAIN', 'RULE', 'PACKETS', 'BYTES'], ...rows.map((r) => [r.hop, r.chain, r.rule, String(r.packets), String(r.bytes)])]));
    });
}
