// qnet export qubes [VM…] [--iptables] [--out DIR]
// Words to the op's input, the call, then print the scripts or write them under DIR (one file per
// qube and script name, mode 0755, as Qubes' setup-rw.sh creates the user script).
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ExportFile } from '../../ops/export.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { json, wantsJson } from '../table.js';

/** Qubes' own name rule: nothing here can climb out of DIR. */
const SAFE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;

export function registerExport(program: Command, ctx: Ctx): void {
  const exp = program.command('export').description('export qnet state for another system');
  exp
    .command('qubes')
    .description('connections and port forwards as the scripts a real Qubes user installs: /rw/config/qubes-firewall-user-script in net/firewall qubes, /rw/config/rc.local in the others')
    .argument('[vm...]', 'only connections and forwards whose path touches these qubes (default: all)')
    .option('--iptables', 'iptables for Qubes R4.1 (default: nftables, R4.2+)')
    .option('--out <dir>', 'write <dir>/<qube>/<script> (mode 0755) instead of printing')
    .option('--json', 'JSON output')
    .addHelpText(
      'after',
      '\nEach script holds all of its qube\'s share and is safe to run twice. Addresses are written as they are\n' +
        'now: re-export whenever an address or a netvm changes.\n\nExamples:\n  qnet export qubes\n  qnet export qubes work --out ./qubes-scripts\n  qnet export qubes --iptables',
    )
    .action(async (vms: string[], o: { iptables?: boolean; out?: string; json?: boolean }) => {
      const { value, warnings } = await ctx.call<ExportFile[]>('export.qubes', { qubes: vms, iptables: !!o.iptables });
      printWarnings(ctx.io, warnings);
      if (o.out !== undefined) {
        const dir = resolve(o.out);
        for (const f of value) {
          if (!SAFE_NAME.test(f.qube)) throw new UsageError(`refusing to write a file for the qube name ${JSON.stringify(f.qube)}`);
          await mkdir(join(dir, f.qube), { recursive: true });
          const file = join(dir, f.qube, f.path);
          await writeFile(file, f.text, { mode: 0o755 });
          await chmod(file, 0o755); // an existing file keeps its mode through writeFile
          if (!wantsJson(o)) ctx.io.out(`${file}\n`);
        }
        if (wantsJson(o)) ctx.io.out(json(value.map((f) => ({ qube: f.qube, path: f.path, file: join(dir, f.qube, f.path) }))));
        return;
      }
      if (wantsJson(o)) return void ctx.io.out(json(value));
      if (!value.length) return void ctx.io.out('nothing to export (qnet connect A B, qnet forward add VM …)\n');
      ctx.io.out(value.map((f) => `### ${f.qube}: /rw/config/${f.path}\n${f.text}`).join('\n'));
    });
}
