// qnet features VM [FEATURE [VALUE]] [--unset]: qvm-features' words and output (a `column -t` table
// of name and value; one value alone; exit 1 when the feature is not set). qnet reads `ipv6`:
// `qnet features sys-net ipv6 1` gives sys-net and every qube behind it IPv6, as in Qubes.
import type { Command } from 'commander';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

export function registerFeatures(program: Command, ctx: Ctx): void {
  program
    .command('features')
    .description('list, show, set or unset features of a qube (qvm-features); e.g. ipv6 switches IPv6 on')
    .argument('<vm>', 'qube')
    .argument('[feature]', 'feature name, e.g. ipv6')
    .argument('[value]', "new value ('' means false to features read as booleans)")
    .option('-D, --unset', 'unset the feature (also --default, --delete)')
    .option('--default', 'same as --unset')
    .option('--delete', 'same as --unset')
    .option('--json', 'JSON output')
    .addHelpText('after', `\nExamples:\n  qnet features sys-net ipv6 1      # IPv6 for sys-net and every qube behind it\n  qnet features work ipv6 ''        # but not for work\n  qnet features work ipv6 --unset   # work inherits again`)
    .action(async (vm: string, feature: string | undefined, value: string | undefined, o: { unset?: boolean; default?: boolean; delete?: boolean; json?: boolean }) => {
      const unset = !!(o.unset || o.default || o.delete);
      if (unset && feature === undefined) throw new UsageError('--unset needs a feature');
      if (unset && value !== undefined) throw new UsageError('give either a value or --unset, not both');
      if (feature !== undefined && (value !== undefined || unset)) {
        await ctx.call('features.set', { qube: vm, feature, value: unset ? null : value! }, 'change');
        return;
      }
      if (feature !== undefined) {
        const { value: v } = await ctx.call<string>('features.get', { qube: vm, feature });
        return void ctx.io.out(wantsJson(o) ? json(v) : `${v}\n`);
      }
      const { value: all } = await ctx.call<{ name: string; value: string }[]>('features.list', { qube: vm });
      if (wantsJson(o)) return void ctx.io.out(json(Object.fromEntries(all.map((f) => [f.name, f.value]))));
      ctx.io.out(formatTable(all.map((f) => [f.name, f.value])));
    });
}
