// qnet firewall VM [--raw] [list] | add [--before N] RULE… | del [--rule-no N] [RULE…] | reset | get | set
// qvm-firewall's words, table and --raw output (reference §3.2), plus the Admin API's Get/Set forms.
import type { Command } from 'commander';
import { diag } from '../../model/diagnostics.js';
import { addRule, deleteMatching, deleteRuleNo, editableRules } from '../../model/firewall-ops.js';
import { getQube } from '../../model/ops.js';
import { parseApiRules } from '../../model/rule-parse.js';
import { formatApiRule, formatClientRule, ruleTableRows } from '../../model/rule-format.js';
import { parseRuleWords } from '../../model/rule-words.js';
import { ACCEPT_ALL, type Rule } from '../../model/rule.js';
import { QnetError, unwrap } from '../../model/result.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json } from '../table.js';

const ACTIONS = ['list', 'add', 'del', 'reset', 'get', 'set'] as const;
type FwAction = (typeof ACTIONS)[number];

interface FwOpts {
  raw?: boolean;
  json?: boolean;
  format?: string;
  before?: string;
  ruleNo?: string;
}

function intOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${name} takes a whole number, not '${v}'`);
  return Number(v);
}

/** Rule lines for `set`: all parsed before anything changes (admin.vm.firewall.Set is all-or-nothing). */
function parseSetInput(text: string, qube: string): Rule[] {
  if (/[^\x00-\x7f]/.test(text))
    throw new QnetError(diag('QNET1904', 'rules contain non-ASCII characters', { qube }));
  const r = parseApiRules(text);
  if (!r.ok) throw new QnetError({ ...r.error, qube, message: `line ${(r.error.ruleIndex ?? 0) + 1}: ${r.error.message}`, ruleIndex: undefined });
  return r.value;
}

function ruleJson(r: Rule, no: number) {
  return { no, ...r, dsthost: r.dsthost?.text, dstports: r.dstports, api: formatApiRule(r), raw: formatClientRule(r) };
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
    .addHelpText(
      'after',
      `
Rules (first match wins; no match = drop; "drop" answers with ICMP admin-prohibited):
  action=accept|drop  dsthost=HOST|IP[/LEN]  proto=tcp|udp|icmp  dstports=N[-M]
  icmptype=N  specialtarget=dns  expire=+SECONDS|EPOCH  comment=TEXT
Examples:
  qnet firewall work del --rule-no 0          # no rules: everything blocked
  qnet firewall work add accept specialtarget=dns
  qnet firewall work add accept qubes-os.org tcp 443
  qnet firewall work add --before 0 accept proto=icmp
  printf 'action=accept proto=icmp\\n' | qnet firewall work set`,
    )
    .action(async (vm: string, action: string | undefined, words: string[], o: FwOpts) => {
      const act = (action ?? 'list') as FwAction;
      if (!ACTIONS.includes(act)) throw new UsageError(`unknown action '${action}'`, ACTIONS.join(', '));
      if (act !== 'add' && o.before !== undefined) throw new UsageError('--before goes with add');
      if (act !== 'del' && o.ruleNo !== undefined) throw new UsageError('--rule-no goes with del');
      if (!['add', 'del'].includes(act) && words.length) throw new UsageError(`'${act}' takes no rule words`);
      const now = ctx.now();

      if (act === 'list' || act === 'get') {
        const m = await ctx.store().load();
        const rules = editableRules(getQube(m, vm).rules, now);
        const fmt = o.json ? 'json' : o.raw ? 'raw' : (o.format ?? 'table');
        if (act === 'get') return void ctx.io.out(rules.map((r) => formatApiRule(r) + '\n').join(''));
        if (fmt === 'json') return void ctx.io.out(json(rules.map(ruleJson)));
        if (fmt === 'raw') return void ctx.io.out(rules.map((r) => formatClientRule(r) + '\n').join(''));
        if (fmt !== 'table') throw new UsageError(`unknown format '${fmt}'`, 'table, raw, json');
        return void ctx.io.out(formatTable(ruleTableRows(rules, now)));
      }

      let change: (current: Rule[]) => Rule[];
      if (act === 'add') {
        if (!words.length) throw new UsageError('add needs a rule', 'e.g. qnet firewall work add accept example.com tcp 443');
        const rule = unwrap(parseRuleWords(words, now));
        const before = intOpt('--before', o.before);
        change = (cur) => {
          const r = addRule(cur, rule, before);
          printWarnings(ctx.io, r.warnings.map((w) => ({ ...w, qube: vm })));
          return r.rules;
        };
      } else if (act === 'del') {
        const n = intOpt('--rule-no', o.ruleNo);
        if (n === undefined && !words.length) throw new UsageError('del needs --rule-no N or a rule');
        if (n !== undefined && words.length) throw new UsageError('give either --rule-no or a rule, not both');
        const rule = words.length ? unwrap(parseRuleWords(words, now)) : undefined;
        change = (cur) => (rule ? deleteMatching(cur, rule) : deleteRuleNo(cur, n!));
      } else if (act === 'reset') {
        change = () => [{ ...ACCEPT_ALL }];
      } else {
        const rules = parseSetInput(await ctx.io.readStdin(), vm);
        change = () => rules;
      }
      await ctx.store().update((m) => {
        const q = getQube(m, vm);
        q.rules = change(editableRules(q.rules, now));
      });
    });
}
