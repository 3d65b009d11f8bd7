// Creating and removing qubes: qnet init / create / remove / rename / clone, and qubes-prefs for
// the global default_netvm (Qubes' qvm-create, qvm-remove, qvm-clone, qubes-prefs).
import type { Command } from 'commander';
import { diag } from '../../model/diagnostics.js';
import { defaultLayout } from '../../model/layout.js';
import { LABELS, QUBE_CLASSES } from '../../model/qube.js';
import { cloneQube, createQube, isLabel, isQubeClass, removeQube, renameQube, setDefaultNetvm } from '../../model/ops.js';
import { QnetError } from '../../model/result.js';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { json, wantsJson } from '../table.js';

export function registerQubes(program: Command, ctx: Ctx): void {
  program
    .command('init')
    .description('create the layout of a fresh Qubes install: sys-net, sys-firewall, work, personal, untrusted, vault')
    .action(async () => {
      await ctx.store().update((m) => {
        if (m.qubes.size)
          throw new QnetError(
            diag('QNET3101', `${ctx.stateDir()} already has ${m.qubes.size} qubes`, {
              hint: 'use another --state directory, or remove the qubes first',
            }),
          );
        const fresh = defaultLayout();
        m.default_netvm = fresh.default_netvm;
        m.qubes = fresh.qubes;
      });
      ctx.io.out(`initialised ${ctx.stateDir()}: sys-net, sys-firewall (default netvm), work, personal, untrusted, vault\n`);
    });

  program
    .command('create')
    .description('create a new qube (qvm-create)')
    .argument('<name>', 'qube name: a letter, then letters, digits, _ . -; at most 31 characters')
    .option('--class <class>', `qube class: ${QUBE_CLASSES.join(', ')}`, 'AppVM')
    .option('--label <label>', `label: ${LABELS.join(', ')}`, 'red')
    .option('--netvm <netvm>', 'netvm: a qube that provides network, or none (default: the global default_netvm)')
    .option('--provides-network', 'this qube provides network to others (a net or firewall qube)')
    .action(async (name: string, o: { class: string; label: string; netvm?: string; providesNetwork?: boolean }) => {
      if (!isQubeClass(o.class)) throw new UsageError(`unknown class '${o.class}'`, QUBE_CLASSES.join(', '));
      if (!isLabel(o.label)) throw new UsageError(`unknown label '${o.label}'`, LABELS.join(', '));
      const netvm = o.netvm === undefined ? undefined : o.netvm === '' || o.netvm.toLowerCase() === 'none' ? null : o.netvm;
      await ctx.store().update((m) =>
        createQube(m, {
          name,
          klass: o.class as never,
          label: o.label as never,
          provides_network: o.providesNetwork ?? false,
          ...(netvm !== undefined ? { netvm } : {}),
        }),
      );
    });

  program
    .command('remove')
    .description('remove qubes and their rules (qvm-remove)')
    .argument('<name...>', 'qubes to remove')
    .action(async (names: string[]) => {
      await ctx.store().update((m) => names.forEach((n) => removeQube(m, n)));
    });

  program
    .command('rename')
    .description('rename a halted qube, keeping its rules and every reference to it')
    .argument('<old>')
    .argument('<new>')
    .action(async (oldName: string, newName: string) => {
      await ctx.store().update((m) => renameQube(m, oldName, newName));
    });

  program
    .command('clone')
    .description('copy a qube with its properties, features and rules (qvm-clone)')
    .argument('<src>')
    .argument('<dst>')
    .action(async (src: string, dst: string) => {
      await ctx.store().update((m) => void cloneQube(m, src, dst));
    });

  program
    .command('qubes-prefs')
    .description('show or set global properties (qubes-prefs): default_netvm')
    .argument('[property]', 'default_netvm')
    .argument('[value]', 'a qube that provides network, or none')
    .option('--json', 'JSON output')
    .action(async (prop: string | undefined, value: string | undefined, o: { json?: boolean }) => {
      if (prop !== undefined && prop.replace(/-/g, '_') !== 'default_netvm')
        throw new UsageError(`no such property: '${prop}'`, 'default_netvm');
      if (value !== undefined) {
        await ctx.store().update((m) => setDefaultNetvm(m, value === '' || value.toLowerCase() === 'none' ? null : value));
        return;
      }
      const m = await ctx.store().load();
      if (wantsJson(o)) ctx.io.out(json({ default_netvm: m.default_netvm }));
      else if (prop) ctx.io.out(m.default_netvm === null ? '' : `${m.default_netvm}\n`);
      else ctx.io.out(`default_netvm  -  ${m.default_netvm ?? ''}\n`);
    });
}
