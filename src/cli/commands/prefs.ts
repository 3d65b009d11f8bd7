// qnet prefs NAME [PROP [VALUE]] [--default]: qvm-prefs' words and output
// (`{name:{width}s}  D|-  {value}`, sorted; D marks a default value).
import type { Command } from 'commander';
import { PROPERTY_NAMES, propertyHelp, type PropView } from '../../model/ops.js';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { json, wantsJson } from '../table.js';

export function registerPrefs(program: Command, ctx: Ctx): void {
  program
    .command('prefs')
    .description('list, show, set or reset properties of a qube (qvm-prefs)')
    .argument('<name>', 'qube')
    .argument('[property]', `one of: ${PROPERTY_NAMES.join(', ')}`)
    .argument('[value]', 'new value (netvm: a qube or none; booleans: True/False)')
    .option('-g, --get', 'show the property (the default with a property and no value; as qvm-prefs --get)')
    .option('-D, --default', 'reset the property to its default value')
    .option('--hide-default', 'do not show properties that are set to their default value')
    .option('--help-properties', 'list the properties with a short description')
    .option('--json', 'JSON output')
    .action(async (name: string, prop: string | undefined, value: string | undefined, o: Record<string, boolean>) => {
      if (o['helpProperties']) {
        const w = Math.max(...PROPERTY_NAMES.map((p) => p.length));
        for (const p of PROPERTY_NAMES) ctx.io.out(`  ${p.padEnd(w)}  ${propertyHelp(p)}\n`);
        return;
      }
      if (o['get'] && (prop === undefined || value !== undefined || o['default'])) throw new UsageError('--get takes a qube and one property, and no value');
      if (o['default'] && value !== undefined) throw new UsageError('give either a value or --default, not both');
      if (prop !== undefined && (value !== undefined || o['default'])) {
        await ctx.call('prefs.set', { qube: name, property: prop, value: o['default'] ? null : value! }, 'change');
        return;
      }
      if (prop !== undefined) {
        const { value: v } = await ctx.call<PropView>('prefs.get', { qube: name, property: prop });
        if (wantsJson(o)) ctx.io.out(json(v));
        else if (!(o['hideDefault'] && v.isDefault) && v.value !== '') ctx.io.out(`${v.value}\n`);
        return;
      }
      const { value: all } = await ctx.call<PropView[]>('prefs.list', { qube: name });
      const props = all.filter((p) => !(o['hideDefault'] && p.isDefault));
      if (wantsJson(o)) return void ctx.io.out(json(props));
      const w = Math.max(...PROPERTY_NAMES.map((p) => p.length));
      for (const p of props) ctx.io.out(`${p.name.padEnd(w)}  ${p.isDefault ? 'D' : '-'}  ${p.value}`.trimEnd() + '\n');
    });
}
