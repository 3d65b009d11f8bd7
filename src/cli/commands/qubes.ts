// Creating and removing qubes: qnet init / create / remove / rename / clone, and qubes-prefs for
// the global default_netvm and uplink (Qubes' qvm-create, qvm-remove, qvm-clone, qubes-prefs).
import type { Command } from 'commander';
import { LABELS, QUBE_CLASSES } from '../../model/qube.js';
import { isLabel, isQubeClass } from '../../model/ops.js';
import { isUplink } from '../../model/topology.js';
import type { GlobalPrefsView } from '../../ops/qubes.js';
import type { Ctx } from '../context.js';
import { diag } from '../../model/diagnostics.js';
import { QnetError } from '../../model/result.js';
import { oneLine, UsageError } from '../errors.js';
import { json, wantsJson } from '../table.js';

/** `none` or an empty word means no netvm, as qvm-prefs reads it. */
const netvmWord = (v: string): string | null => (v === '' || v.toLowerCase() === 'none' ? null : v);

export function registerQubes(program: Command, ctx: Ctx): void {
  program
    .command('init')
    .description('create the layout of a fresh Qubes install: sys-net, sys-firewall, work, personal, untrusted, vault')
    .action(async () => {
      await ctx.call('qubes.init', {}, 'change');
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
      const input = { name, class: o.class, label: o.label, provides_network: o.providesNetwork ?? false, ...(o.netvm !== undefined ? { netvm: netvmWord(o.netvm) } : {}) };
      await ctx.call('qubes.create', input, 'change');
    });

  program
    .command('remove')
    .description('remove qubes and their rules (qvm-remove); asks first unless --force')
    .argument('<name...>', 'qubes to remove')
    .option('-f, --force', 'do not ask (needed without a terminal, as for qvm-remove)')
    .action(async (names: string[], o: { force?: boolean }) => {
      // As qvm-remove: a y/N question on the terminal; without one, only --force removes.
      if (!o.force && !ctx.globalOpts().dryRun) {
        const shown = names.map((n) => `  ${oneLine(n)}\n`).join('');
        const yes = await ctx.io.confirm(`This will completely remove the selected qube(s) and their firewall rules:\n${shown}Are you sure? [y/N] `);
        if (yes === null) throw new QnetError(diag('QNET9003', 'not removing without a yes: there is no terminal to ask on', { hint: 'qnet remove --force' }));
        if (!yes) throw new QnetError(diag('QNET9003', 'remove cancelled: nothing was removed'));
      }
      await ctx.call('qubes.remove', { names }, 'change');
    });

  program
    .command('rename')
    .description('rename a halted qube, keeping its rules and every reference to it')
    .argument('<old>')
    .argument('<new>')
    .action(async (from: string, to: string) => void (await ctx.call('qubes.rename', { from, to }, 'change')));

  program
    .command('clone')
    .description('copy a qube with its properties, features and rules (qvm-clone)')
    .argument('<src>')
    .argument('<dst>')
    .action(async (from: string, to: string) => void (await ctx.call('qubes.clone', { from, to }, 'change')));

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
          await ctx.call('global.set', { property: 'uplink', value }, 'change');
        } else await ctx.call('global.set', { property: 'default_netvm', value: netvmWord(value) }, 'change');
        return;
      }
      const { value: g } = await ctx.call<GlobalPrefsView>('global.get', {});
      const props = { default_netvm: { value: g.default_netvm ?? '', isDefault: false }, uplink: { value: g.uplink, isDefault: g.uplink_is_default } };
      if (wantsJson(o)) return void ctx.io.out(json(p ? { [p]: props[p as keyof typeof props].value } : { default_netvm: g.default_netvm, uplink: g.uplink }));
      if (p) return void ctx.io.out(props[p as keyof typeof props].value ? `${props[p as keyof typeof props].value}\n` : '');
      for (const [k, v] of Object.entries(props)) ctx.io.out(`${k.padEnd(13)}  ${v.isDefault ? 'D' : '-'}  ${v.value}\n`.replace(/ +\n$/, '\n'));
    });
}
