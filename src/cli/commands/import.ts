// qnet import-qubes DIR: a copy of a Qubes dom0 /var/lib/qubes into the state directory, so `check`,
// `matrix` and `firewall` answer about a real Qubes policy offline.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ImportSummary } from '../../ops/import.js';
import type { Ctx } from '../context.js';
import { printWarnings } from '../errors.js';
import { json, wantsJson } from '../table.js';

export function registerImport(program: Command, ctx: Ctx): void {
  program
    .command('import-qubes')
    .description("import a copy of a Qubes dom0 /var/lib/qubes: qubes.xml and each qube's firewall.xml (all or nothing)")
    .argument('<dir>', 'the copy: qubes.xml at its top, appvms/<name>/firewall.xml and vm-templates/<name>/firewall.xml beside it')
    .option('--force', 'replace the qubes the state directory already has')
    .option('--json', 'JSON output')
    .action(async (dir: string, o: { force?: boolean; json?: boolean }) => {
      // Absolute: a daemon that serves the state directory reads it from another working directory.
      const { value: s, warnings } = await ctx.call<ImportSummary>('qubes.import', { dir: resolve(dir), force: !!o.force }, 'change');
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(s));
      if (ctx.globalOpts().dryRun) return;
      const classes = Object.entries(s.byClass).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ');
      ctx.io.out(
        `imported ${s.qubes} qubes (${classes || 'none'}) from ${s.dir} into ${s.stateDir}` +
          `${s.replaced ? `, replacing ${s.replaced}` : ''}\n` +
          `rules: ${s.rules} in ${s.rulesFiles} firewall.xml files; default_netvm: ${s.default_netvm ?? '-'}` +
          `${s.skipped.length ? `; skipped: ${s.skipped.join(', ')}` : ''}\n`,
      );
    });
}
