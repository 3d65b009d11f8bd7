// Running qubes: qnet start / shutdown / kill (qvm-start, qvm-shutdown, qvm-kill), qnet run
// (qvm-run: a program inside the qube's namespace), and qnet counters (packets per rule per hop).
import type { Command } from 'commander';
import { netvmName } from '../../model/addressing.js';
import { diag } from '../../model/diagnostics.js';
import { getQube } from '../../model/ops.js';
import type { Model } from '../../model/qube.js';
import { QnetError } from '../../model/result.js';
import { netvmChain, runningClients, startSet } from '../../model/topology.js';
import { DaemonClient } from '../../daemon/client.js';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

/** Names to stop, refusing a netvm with running clients (that are not stopping too) unless forced. */
function shutdownSet(model: Model, names: readonly string[], force: boolean): string[] {
  for (const n of names) getQube(model, n);
  const stopping = new Set(names);
  if (!force)
    for (const n of names) {
      const users = runningClients(model, n).filter((c) => !stopping.has(c.name));
      if (users.length)
        throw new QnetError(
          diag('QNET2101', `there are other qubes connected to ${n}: ${users.map((u) => u.name).join(', ')}`, {
            qube: n,
            hint: `shut them down first, or use --force (they stay running, detached)`,
          }),
        );
    }
  return names.filter((n) => model.qubes.get(n)!.state === 'Running');
}

export function registerLifecycle(program: Command, ctx: Ctx): void {
  program
    .command('start')
    .description('start qubes, and their netvm chains first (qvm-start)')
    .argument('<name...>', 'qubes to start')
    .action(async (names: string[]) => {
      await ctx.runtime({ start: true });
      await ctx.store().update((m) => {
        for (const n of names) {
          const q = getQube(m, n);
          if (q.klass === 'TemplateVM') throw new QnetError(diag('QNET2102', `${n} is a template: templates are not started here`, { qube: n }));
        }
        for (const q of startSet(m, names)) q.state = 'Running';
      });
    });

  program
    .command('shutdown')
    .description('stop qubes (qvm-shutdown); a netvm with running clients refuses unless --force')
    .argument('[name...]', 'qubes to stop')
    .option('--all', 'stop every running qube (clients first)')
    .option('--force', 'stop a netvm even though clients use it (they stay running, detached)')
    .action(async (names: string[], o: { all?: boolean; force?: boolean }) => {
      if (!o.all && !names.length) throw new UsageError('name the qubes to stop, or use --all');
      await ctx.store().update((m) => {
        const all = o.all ? [...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name) : names;
        for (const n of shutdownSet(m, all, !!o.force || !!o.all)) m.qubes.get(n)!.state = 'Halted';
      });
    });

  program
    .command('kill')
    .description('stop qubes at once, without the running-clients check (qvm-kill)')
    .argument('<name...>', 'qubes to kill')
    .action(async (names: string[]) => {
      await ctx.store().update((m) => {
        for (const n of names) getQube(m, n).state = 'Halted';
      });
    });

  program
    .command('run')
    .description('run a program inside a qube, starting it (and its netvms) first (qvm-run)')
    .argument('<vm>', 'qube')
    .argument('<command...>', 'the program and its arguments (put -- before them)')
    .option('-u, --user <user>', 'run as this user (default root, as qvm-run -u root)')
    .option('--no-autostart', 'fail instead of starting a halted qube')
    .usage('VM [--user U] -- CMD...')
    .action(async (vm: string, argv: string[], o: { user?: string; autostart: boolean }) => {
      const m0 = await ctx.store().load();
      if (getQube(m0, vm).state !== 'Running') {
        if (!o.autostart) throw new QnetError(diag('QNET2103', `${vm} is not running`, { hint: `qnet start ${vm}` }));
        const viaDaemon = await DaemonClient.connect(ctx.stateDir());
        if (viaDaemon) {
          const r = await viaDaemon.cli(['start', vm]);
          if (r.code !== 0) throw new QnetError(diag('QNET2104', `cannot start ${vm}: ${r.stderr.trim()}`));
        } else {
          await ctx.runtime({ start: true });
          await ctx.store().update((m) => {
            for (const q of startSet(m, [vm])) q.state = 'Running';
          });
        }
      }
      const backend = await ctx.netns();
      ctx.setExitCode(await backend.exec(vm, argv, o.user ? { user: o.user } : {}));
    });

  program
    .command('counters')
    .description("packets and bytes per rule, per hop of the qube's netvm chain, mapped back to its rules")
    .argument('<vm>', 'qube')
    .option('--all', 'also the base rules (anti-spoofing, replies, …) of each hop')
    .option('--json', 'JSON output')
    .action(async (vm: string, o: { all?: boolean; json?: boolean }) => {
      const m = await ctx.store().load();
      const q = getQube(m, vm);
      if (q.state !== 'Running') throw new QnetError(diag('QNET2103', `${vm} is not running`, { hint: `qnet start ${vm}` }));
      const backend = await ctx.backend();
      const hops = [q, ...netvmChain(m, q)].filter((h) => h.state === 'Running');
      const rows: { hop: string; chain: string; rule: string; packets: number; bytes: number }[] = [];
      for (const hop of hops) {
        // In its first netvm a qube's traffic meets its own rules; further up it travels as its
        // netvm's (masqueraded), so there the netvm's rules count it.
        const whose = hop === q ? vm : netvmName(m, q) === hop.name ? vm : hops[hops.indexOf(hop) - 1]!.name;
        for (const c of await backend.counters(hop.name)) {
          const mine = c.origin.startsWith(`${whose} rule`) || c.origin.startsWith(`policy: ${whose} `);
          if (mine || (o.all && c.origin.startsWith('base:')))
            rows.push({ hop: hop.name, chain: `${c.family} ${c.table} ${c.chain}`, rule: c.origin, packets: c.packets, bytes: c.bytes });
        }
      }
      if (wantsJson(o)) return void ctx.io.out(json(rows));
      ctx.io.out(formatTable([['HOP', 'CHAIN', 'RULE', 'PACKETS', 'BYTES'], ...rows.map((r) => [r.hop, r.chain, r.rule, String(r.packets), String(r.bytes)])]));
    });
}
