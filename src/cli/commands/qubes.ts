// Creating and removing qubes: qnet init / create / remove / rename / clone, and qubes-prefs for
// the global default_netvm (Qubes' qvm-create, qvm-remove, qvm-clone, qubes-prefs).
import type { Command } from 'commander';
import { diag } from '../../model/diagnostics.js';
import { defaultLayout } from '../../model/layout.js';
import { LABELS, QUBE_CLASSES } from '../../model/qube.js';
import { cloneQube, createQube, isLabel, isQubeClass, removeQube, renameQube, setDefaultNetvm } from '../../model/ops.js';
import { QnetError } from '../../model/result.js';
import { isUplink } from '../../model/topology.js';
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
    .description('show or set global properties (qubes-prefs): default_netvm, uplink')
    .argument('[property]', 'default_netvm or uplink')
    .argument('[value]', 'default_netvm: a qube that provides network, or none; uplink: world, none, veth-host, move:DEV')
    .option('--json', 'JSON output')
    .addHelpText(
      'after',
      `
uplink — how the top netvm (sys-net) reaches the outside:
  world       a namespace qnet creates as a stand-in internet (the default; never touches the host)
  none        no outside at all
  veth-host   a veth into the host namespace with NAT there (real use; changes the host's network)
  move:DEV    move the physical interface DEV into sys-net (real use; the host loses DEV)`,
    )
    .action(async (prop: string | undefined, value: string | undefined, o: { json?: boolean }) => {
      const p = prop?.replace(/-/g, '_');
      if (p !== undefined && p !== 'default_netvm' && p !== 'uplink') throw new UsageError(`no such property: '${prop}'`, 'default_netvm, uplink');
      if (value !== undefined) {
        if (p === 'uplink') {
          if (!isUplink(value)) throw new UsageError(`'${value}' is not an uplink`, 'world, none, veth-host, move:DEV');
          await ctx.store().update((m) => {
            if ([...m.qubes.values()].some((q) => q.state === 'Running'))
              throw new QnetError(diag('QNET2105', 'the uplink cannot change while qubes run', { hint: 'qnet shutdown --all first' }));
            m.uplink = value;
          });
        } else await ctx.store().update((m) => setDefaultNetvm(m, value === '' || value.toLowerCase() === 'none' ? null : value));
        return;
      }
      const m = await ctx.store().load();
      const props = { default_netvm: { value: m.default_netvm ?? '', isDefault: false }, uplink: { value: m.uplink ?? 'world', isDefault: m.uplink === undefined } };
      if (wantsJson(o)) return void ctx.io.out(json(p ? { [p]: props[p as keyof typeof props].value } : { default_netvm: m.default_netvm, uplink: props.uplink.value }));
      if (p) return void ctx.io.out(props[p as keyof typeof props].value ? `${props[p as keyof typeof props].value}\n` : '');
      for (const [k, v] of Object.entries(props)) ctx.io.out(`${k.padEnd(13)}  ${v.isDefault ? 'D' : '-'}  ${v.value}\n`.replace(/ +\n$/, '\n'));
    });
}
