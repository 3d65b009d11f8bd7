// qnet firewall VM [--raw] [list] | add [--before N] RULE… | del [--rule-no N] [RULE…] | reset | get | set
// qvm-firewall's words, table and --raw output (reference §3.2), plus the Admin API's Get/Set forms.
import type { Command } from 'commander';
import { parseApiRule } from '../../model/rule-parse.js';
import { formatApiRule, RULE_TABLE_HEADER, ruleTableRow, ruleTableWidths } from '../../model/rule-format.js';
import { parseRuleWords } from '../../model/rule-words.js';
import type { Rule } from '../../model/rule.js';
import { unwrap } from '../../model/result.js';
import type { RuleView } from '../../ops/views.js';
import type { Ctx } from '../context.js';
import type { Io } from '../io.js';
import { printWarnings, UsageError } from '../errors.js';
import { json } from '../table.js';

const ACTIONS = ['list', 'add', 'del', 'reset', 'get', 'set'] as const;
type FwAction = (typeof ACTIONS)[number];

interface FwOpts {
  raw?: boolean;
  json?: boolean;
  format?: string;
  before?: string;
  ruleNo?: string;
  reload?: boolean;
}

function intOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${name} takes a whole number, not '${v}'`);
  return Number(v);
}

// Listings are written as they are made, in chunks of lines, so a list of 100k rules starts at once
// and never exists as one string. The first chunk is small: it is what the reader waits for.
const FIRST_CHUNK = 64;
const CHUNK = 4096;

function writeLines(io: Io, n: number, line: (i: number) => string, head = '', tail = ''): void {
  let buf: string[] = head ? [head] : [];
  let limit = FIRST_CHUNK;
  for (let i = 0; i < n; i++) {
    buf.push(line(i));
    if (buf.length >= limit) {
      io.out(buf.join(''));
      buf = [];
      limit = CHUNK;
    }
  }
  if (tail) buf.push(tail);
  if (buf.length) io.out(buf.join(''));
}

/**
 * `formatTable(ruleTableRows(rules, now))`, written in chunks: the column widths come from one pass
 * over the rules that builds no rows (`ruleTableWidths`), then each row is made and aligned as
 * `formatTable` aligns it (two spaces between columns, the last column not padded, no trailing spaces).
 */
function writeRuleTable(io: Io, rules: readonly Rule[], now: number): void {
  const widths = ruleTableWidths(rules, now);
  const align = (cells: readonly string[]): string => {
    let line = '';
    const last = cells.length - 1;
    for (let c = 0; c < last; c++) line += cells[c]!.padEnd(widths[c]! + 2);
    return (line + cells[last]!).trimEnd() + '\n';
  };
  writeLines(io, rules.length, (i) => align(ruleTableRow(rules[i]!, i, now)), align(RULE_TABLE_HEADER));
}

/** `json(views)`, written in chunks: JSON.stringify's two-space layout, item by item. */
function writeRuleJson(io: Io, views: readonly RuleView[]): void {
  if (views.length === 0) return void io.out(json([]));
  writeLines(io, views.length, (i) => (i ? ',\n  ' : '  ') + JSON.stringify(views[i], null, 2).replace(/\n/g, '\n  '), '[\n', '\n]\n');
}

export function registerFirewall(program: Command, ctx: Ctx): void {
  program
    .command('firewall')
    .description("show and edit a qube's outbound firewall rules (qvm-firewall)")
    .usage('VM [--raw] [list] | add [--before N] RULE... | del [--rule-no N] [RULE...] | reset | get | set')
    .argument('<vm>', 'the qube whose outbound traffic the rules filter')
    .argument('[action]', `one of: ${ACTIONS.join(', ')} (default list)`)
    .argument('[rule...]', 'rule words: action [dsthost [proto [dstports [icmptype]]]] or key=value')
    .option('--raw', 'list rules in the raw (client canonical) form, one per line')
    .option('--before <n>', 'add: insert before rule number N')
    .option('--rule-no <n>', 'del: remove rule number N')
    .option('-o, --format <format>', 'list: table, raw or json')
    .option('--json', 'list: JSON output')
    .option('-r, --reload', "resolve the names in the qube's rules again now and load its rules again (alone, or after an action)")
    .addHelpText(
      'after',
      `
Rules (first match wins; no match = drop; "drop" answers with ICMP admin-prohibited):
  action=accept|drop  dsthost=HOST|IP[/LEN]  proto=tcp|udp|icmp  dstports=N[-M]
  icmptype=N  specialtarget=dns  expire=+SECONDS|EPOCH  comment=TEXT
Examples:
  qnet firewall work del --rule-no 0          # no rules: everything blocked
  qnet firewall work add accept specialtarget=dns
  qnet firewall work add accept web.example.com tcp 443
  qnet firewall work --reload                  # names resolved again now, rules loaded again
  qnet firewall work add --before 0 accept proto=icmp
  printf 'action=accept proto=icmp\\n' | qnet firewall work set`,
    )
    .action(async (vm: string, action: string | undefined, words: string[], o: FwOpts) => {
      await firewallAction(ctx, vm, action, words, o);
      // qvm-firewall --reload: after the action if one was given; alone, it is all that happens.
      if (o.reload) await ctx.call('firewall.reload', { qube: vm }, 'change');
    });
}

async function firewallAction(ctx: Ctx, vm: string, action: string | undefined, words: string[], o: FwOpts): Promise<void> {
  if (o.reload && action === undefined) return;
  const act = (action ?? 'list') as FwAction;
  if (!ACTIONS.includes(act)) throw new UsageError(`unknown action '${action}'`, ACTIONS.join(', '));
  if (act !== 'add' && o.before !== undefined) throw new UsageError('--before goes with add');
  if (act !== 'del' && o.ruleNo !== undefined) throw new UsageError('--rule-no goes with del');
  if (!['add', 'del'].includes(act) && words.length) throw new UsageError(`'${act}' takes no rule words`);
  const now = ctx.now();
  const qube = vm;

  if (act === 'list' || act === 'get') {
    const fmt = o.json ? 'json' : o.raw ? 'raw' : (o.format ?? 'table');
    if (act === 'get') {
      const { value: lines } = await ctx.call<string[]>('firewall.get', { qube });
      return writeLines(ctx.io, lines.length, (i) => lines[i]! + '\n');
    }
    if (!['json', 'raw', 'table'].includes(fmt)) throw new UsageError(`unknown format '${fmt}'`, 'table, raw, json');
    const { value: views } = await ctx.call<RuleView[]>('firewall.list', { qube });
    if (fmt === 'json') return writeRuleJson(ctx.io, views);
    if (fmt === 'raw') return writeLines(ctx.io, views.length, (i) => views[i]!.raw + '\n');
    // The API line is lossless: the table is made from the rules it gives back.
    return writeRuleTable(ctx.io, views.map((v) => unwrap(parseApiRule(v.api))), now);
  }

  if (act === 'add') {
    if (!words.length) throw new UsageError('add needs a rule', 'e.g. qnet firewall work add accept example.com tcp 443');
    const rule = formatApiRule(unwrap(parseRuleWords(words, now)));
    const before = intOpt('--before', o.before);
    const r = await ctx.call('firewall.add', { qube, rule, ...(before !== undefined ? { before } : {}) }, 'change');
    printWarnings(ctx.io, r.warnings);
  } else if (act === 'del') {
    const n = intOpt('--rule-no', o.ruleNo);
    if (n === undefined && !words.length) throw new UsageError('del needs --rule-no N or a rule');
    if (n !== undefined && words.length) throw new UsageError('give either --rule-no or a rule, not both');
    const input = words.length ? { qube, rule: formatApiRule(unwrap(parseRuleWords(words, now))) } : { qube, ruleNo: n! };
    await ctx.call('firewall.del', input, 'change');
  } else if (act === 'reset') {
    await ctx.call('firewall.reset', { qube }, 'change');
  } else {
    await ctx.call('firewall.set', { qube, text: await ctx.io.readStdin() }, 'change');
  }
}
