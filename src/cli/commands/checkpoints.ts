// The applies the manager makes (op `apply`: all or nothing, with a confirm-or-roll-back timer):
//   qnet history [--json]        the recent applies, newest first, and whether undo would be taken
//   qnet confirm CHECKPOINT      keep a pending apply
//   qnet rollback CHECKPOINT     put a pending apply back now
//   qnet undo CHECKPOINT         put a recent apply back, if what it changed has not changed since
// Words to the op's input, the call, the print; nothing else.
import type { Command } from 'commander';
import type { HistoryEntrySchema } from '../../ops/checkpoints.js';
import type * as v from 'valibot';
import type { Ctx } from '../context.js';
import { printWarnings } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

type Entry = v.InferOutput<typeof HistoryEntrySchema>;

const when = (s: number) => new Date(s * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');

export function registerCheckpoints(program: Command, ctx: Ctx): void {
  program
    .command('history')
    .description('the recent applies (the manager\'s Changes page): pending, confirmed, rolled back or undone')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }) => {
      const { value, warnings } = await ctx.call<Entry[]>('history', {});
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(value));
      if (!value.length) return void ctx.io.out('no applies yet\n');
      const rows = value.map((e) => [
        e.id,
        when(e.at),
        e.state === 'pending' && e.confirmBy !== undefined ? `pending (rolls back at ${when(e.confirmBy)})` : e.state,
        e.changed.join(', '),
        e.undoable ? 'yes' : e.why ?? '-',
      ]);
      ctx.io.out(formatTable([['CHECKPOINT', 'AT', 'STATE', 'CHANGED', 'UNDO'], ...rows]));
    });
  const act = (word: string, op: string, what: string) =>
    program
      .command(word)
      .description(what)
      .argument('<checkpoint>', 'cp1, cp2, … (qnet history lists them)')
      .action(async (id: string) => {
        const { value, warnings } = await ctx.call<{ checkpoint: string; state: string }>(op, { checkpoint: id });
        printWarnings(ctx.io, warnings);
        ctx.io.out(`${value.checkpoint}: ${value.state}\n`);
      });
  act('confirm', 'confirm', 'keep a pending apply: its confirm timer stops');
  act('rollback', 'rollback', 'put a pending apply back now, as its timer would');
  act('undo', 'undo', 'put a recent apply back, if what it changed has not changed since');
}
