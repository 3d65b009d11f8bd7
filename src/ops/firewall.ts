// A qube's outbound rules (qvm-firewall): list, add, del, reset, set. Rules travel as Admin API lines
// (`action=accept dsthost=qubes-os.org proto=tcp dstports=443-443`), Qubes' own lossless wire form,
// and are parsed here by the model's one parser, so every door validates them the same way.
import * as v from 'valibot';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { addRule, deleteMatching, deleteRuleNo, editableRules } from '../model/firewall-ops.js';
import { getQube } from '../model/ops.js';
import { formatApiRule } from '../model/rule-format.js';
import { parseApiRule, parseApiRules } from '../model/rule-parse.js';
import type { Model } from '../model/qube.js';
import { ACCEPT_ALL, type Rule } from '../model/rule.js';
import { QnetError } from '../model/result.js';
import { replaceRules, rulesOf } from '../store/rules-problem.js';
import { qubeName } from './schema.js';
import type { Host } from './types.js';
import { defineOp, result, type OpResult } from './types.js';
import { ruleView, RuleViewSchema, withQube, type RuleView } from './views.js';

const qube = qubeName;
/** One rule in the Admin API form. */
const apiRule = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));

/** A qube's rules as they stand; refused (QNET3024, naming the file) when its file is broken. */
async function currentRules(host: Host, name: string): Promise<Rule[]> {
  // Only this qube's file is read where the store can (a big file of another qube costs nothing).
  const q = (await host.readQube(name)) ?? getQube(await host.read(), name); // the load only to name the error
  return editableRules(rulesOf(q), host.now());
}

function parseRule(line: string, name: string): Rule {
  const r = parseApiRule(line);
  if (!r.ok) throw new QnetError({ ...r.error, qube: name });
  return r.value;
}

export const firewallList = defineOp({
  name: 'firewall.list',
  kind: 'read',
  summary: "a qube's rules in order, each with its number, fields, API and client forms (qvm-firewall VM)",
  output: v.array(RuleViewSchema),
  input: v.strictObject({ qube }),
  run: async (i, host): Promise<OpResult<RuleView[]>> => result((await currentRules(host, i.qube)).map(ruleView)),
});

/** The rules lines only (admin.vm.firewall.Get): cheaper than firewall.list for big lists. */
export const firewallGet = defineOp({
  name: 'firewall.get',
  kind: 'read',
  summary: "a qube's rules as Admin API lines (admin.vm.firewall.Get)",
  output: v.array(v.string()),
  input: v.strictObject({ qube }),
  run: async (i, host): Promise<OpResult<string[]>> => {
    return result((await currentRules(host, i.qube)).map(formatApiRule));
  },
});

export const firewallAdd = defineOp({
  name: 'firewall.add',
  kind: 'change',
  summary: 'add a rule, at the end or before rule number `before` (qvm-firewall VM add)',
  input: v.strictObject({ qube, rule: apiRule, before: v.optional(v.pipe(v.number(), v.integer())) }),
  run: async (i, host) => {
    const rule = parseRule(i.rule, i.qube);
    const now = host.now();
    const r = await host.change({ kind: 'rules', qubes: [i.qube] }, (m) => {
      const q = getQube(m, i.qube);
      const out = addRule(editableRules(rulesOf(q), now), rule, i.before);
      q.rules = out.rules;
      return { index: out.rules.indexOf(rule), count: out.rules.length, warnings: out.warnings, model: m };
    });
    const unresolved = await unresolvedName(host, r.model, rule);
    return result({ qube: i.qube, index: r.index, count: r.count, rule: ruleView(rule, r.index) }, [...withQube(r.warnings, i.qube), ...(unresolved ? [{ ...unresolved, qube: i.qube }] : [])]);
  },
});

/**
 * Said at once when a rule names a host that does not resolve (else only nft and the daemon's log
 * would say it): asked as this host resolves (a daemon answers from what its engine holds), one name.
 */
async function unresolvedName(host: Host, model: Model, rule: Rule): Promise<Diagnostic | undefined> {
  if (rule.dsthost?.type !== 'dsthost') return undefined;
  const name = rule.dsthost.text;
  const answer = (await host.resolve(model, [name])).get(name);
  if (!answer?.error) return undefined;
  return warning('QNET4001', `cannot resolve '${name}' (${answer.error}): the rule is disabled until it resolves`);
}

export const firewallReload = defineOp({
  name: 'firewall.reload',
  kind: 'change',
  summary: "resolve the names in a qube's rules again now and load its rules again (qvm-firewall VM --reload)",
  input: v.strictObject({ qube }),
  run: async (i, host) => {
    // Nothing in the model changes: the effect asks the engine to resolve and load again.
    const count = await host.change({ kind: 'rules', qubes: [i.qube], reload: true }, (m) => rulesOf(getQube(m, i.qube))?.length ?? 1); // no file: one accept-all rule
    return result({ qube: i.qube, count });
  },
});

export const firewallDel = defineOp({
  name: 'firewall.del',
  kind: 'change',
  summary: 'remove rule number `ruleNo`, or the first rule equal to `rule` (qvm-firewall VM del)',
  input: v.union([v.strictObject({ qube, ruleNo: v.pipe(v.number(), v.integer()) }), v.strictObject({ qube, rule: apiRule })]),
  run: async (i, host) => {
    const rule = 'rule' in i ? parseRule(i.rule, i.qube) : undefined;
    const now = host.now();
    const count = await host.change({ kind: 'rules', qubes: [i.qube] }, (m) => {
      const q = getQube(m, i.qube);
      const cur = editableRules(rulesOf(q), now);
      q.rules = rule ? deleteMatching(cur, rule) : deleteRuleNo(cur, (i as { ruleNo: number }).ruleNo);
      return q.rules.length;
    });
    return result({ qube: i.qube, count });
  },
});

export const firewallReset = defineOp({
  name: 'firewall.reset',
  kind: 'change',
  summary: 'back to the default: one rule that accepts everything (qvm-firewall VM reset)',
  input: v.strictObject({ qube }),
  run: async (i, host) => {
    // A wholesale replacement: allowed over a broken file, which it writes fresh.
    await host.change({ kind: 'rules', qubes: [i.qube] }, (m) => replaceRules(getQube(m, i.qube), [{ ...ACCEPT_ALL }]));
    return result({ qube: i.qube, count: 1 });
  },
});

export const firewallSet = defineOp({
  name: 'firewall.set',
  kind: 'change',
  summary: "replace a qube's rules, all or nothing (admin.vm.firewall.Set); `text` is the Set payload, one rule per line",
  input: v.strictObject({ qube, text: v.pipe(v.string(), v.maxLength(64 * 1024 * 1024)) }),
  run: async (i, host) => {
    if (/[^\x00-\x7f]/.test(i.text)) throw new QnetError(diag('QNET1904', 'rules contain non-ASCII characters', { qube: i.qube }));
    const r = parseApiRules(i.text);
    if (!r.ok) throw new QnetError({ ...r.error, qube: i.qube, message: `line ${(r.error.ruleIndex ?? 0) + 1}: ${r.error.message}`, ruleIndex: undefined });
    const rules = r.value;
    await host.change({ kind: 'rules', qubes: [i.qube] }, (m) => replaceRules(getQube(m, i.qube), rules));
    return result({ qube: i.qube, count: rules.length });
  },
});

