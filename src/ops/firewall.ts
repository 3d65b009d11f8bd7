// A qube's outbound rules (qvm-firewall): list, add, del, reset, set. Rules travel as Admin API lines
// (`action=accept dsthost=qubes-os.org proto=tcp dstports=443-443`), Qubes' own lossless wire form,
// and are parsed here by the model's one parser, so every door validates them the same way.
import { createHash } from 'node:crypto';
import * as v from 'valibot';
import { implicitRows } from '../compile/implicit.js';
import { netvmName } from '../model/addressing.js';
import { uplinkKind } from '../model/netplan.js';
import { shadowedRules } from '../model/shadow.js';
import { planNetwork } from '../model/topology.js';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { addRule, checkExpected, deleteMatching, deleteRuleNo, editableRules, moveRule, replaceRuleNo, shadowWarning } from '../model/firewall-ops.js';
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
import { apiLine, editorRow, FirewallViewSchema, type FirewallRow, nameView, ruleView, RuleViewSchema, withQube, type FirewallView, type RuleView } from './views.js';

const qube = qubeName;
/** One rule in the Admin API form. */
const apiRule = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));
const ruleNo = v.pipe(v.number(), v.integer());
/**
 * The guard of an edit by rule number: the rule there as it was read (Admin API line). The edit is
 * refused (QNET1905) when the rule there is another one: the list changed since it was read.
 */
const expect = v.optional(apiRule);

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
  input: v.strictObject({ qube, rule: apiRule, before: v.optional(ruleNo), expect }),
  run: async (i, host) => {
    const rule = parseRule(i.rule, i.qube);
    let warned: Diagnostic[] = [];
    const r = await editRules(host, i.qube, i.before, i.expect, (cur) => {
      const out = addRule(cur, rule, i.before);
      warned = out.warnings;
      return out.rules;
    });
    const index = r.rules.indexOf(rule);
    // After the kernel has it: said, not waited for (the catch-all case is addRule's QNET1901).
    const shadow = warned.length ? [] : shadowWarning(r.rules, index);
    const unresolved = await unresolvedName(host, r.model, rule);
    return result({ qube: i.qube, index, count: r.rules.length, rule: ruleView(rule, index) }, [...withQube([...warned, ...shadow], i.qube), ...(unresolved ? [{ ...unresolved, qube: i.qube }] : [])]);
  },
});

/**
 * The edits by rule number share this: the qube's current rules (expired ones gone), the `expect`
 * guard on rule `no` when there is one, the edit, and the rules effect that takes the rule-edit path.
 */
async function editRules(host: Host, name: string, no: number | undefined, expectText: string | undefined, edit: (cur: Rule[]) => Rule[]): Promise<{ rules: Rule[]; model: Model }> {
  const expected = expectText === undefined ? undefined : parseRule(expectText, name);
  const now = host.now();
  return host.change({ kind: 'rules', qubes: [name] }, (m) => {
    const q = getQube(m, name);
    const cur = editableRules(rulesOf(q), now);
    if (no !== undefined) guard(cur, no, expected, name);
    q.rules = edit(cur);
    return { rules: q.rules, model: m };
  });
}

/** checkExpected, with the qube named in the refusal. */
function guard(rules: readonly Rule[], no: number, expected: Rule | undefined, name: string): void {
  try {
    checkExpected(rules, no, expected);
  } catch (e) {
    if (e instanceof QnetError) throw new QnetError({ ...e.diag, qube: name });
    throw e;
  }
}

export const firewallMove = defineOp({
  name: 'firewall.move',
  kind: 'change',
  summary: 'move rule number `from` so that it becomes rule number `to` (one rule, not a new list)',
  input: v.strictObject({ qube, from: ruleNo, to: ruleNo, expect }),
  run: async (i, host) => {
    const { rules: r } = await editRules(host, i.qube, i.from, i.expect, (cur) => moveRule(cur, i.from, i.to));
    return result({ qube: i.qube, from: i.from, to: i.to, count: r.length, rule: ruleView(r[i.to]!, i.to) }, withQube(shadowWarning(r, i.to), i.qube));
  },
});

export const firewallReplace = defineOp({
  name: 'firewall.replace',
  kind: 'change',
  summary: 'replace rule number `ruleNo` by `rule`, in place',
  input: v.strictObject({ qube, ruleNo, rule: apiRule, expect }),
  run: async (i, host) => {
    const rule = parseRule(i.rule, i.qube);
    const r = await editRules(host, i.qube, i.ruleNo, i.expect, (cur) => replaceRuleNo(cur, i.ruleNo, rule));
    const unresolved = await unresolvedName(host, r.model, rule);
    return result({ qube: i.qube, index: i.ruleNo, count: r.rules.length, rule: ruleView(rule, i.ruleNo) }, [
      ...withQube(shadowWarning(r.rules, i.ruleNo), i.qube),
      ...(unresolved ? [{ ...unresolved, qube: i.qube }] : []),
    ]);
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
  input: v.union([v.strictObject({ qube, ruleNo, expect }), v.strictObject({ qube, rule: apiRule })]),
  run: async (i, host) => {
    if ('rule' in i) {
      const rule = parseRule(i.rule, i.qube);
      return result({ qube: i.qube, count: (await editRules(host, i.qube, undefined, undefined, (cur) => deleteMatching(cur, rule))).rules.length });
    }
    const { rules } = await editRules(host, i.qube, i.ruleNo, i.expect, (cur) => deleteRuleNo(cur, i.ruleNo));
    return result({ qube: i.qube, count: rules.length });
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

interface Rows {
  rows: FirewallRow[];
  shadowed: number;
  version: string;
  names: string[];
}

/** Changes whenever any rule does: the rules' API lines, hashed. */
function versionOf(rules: readonly Rule[]): string {
  const hash = createHash('sha256');
  for (const r of rules) hash.update(apiLine(r)).update('\n');
  return hash.digest('hex').slice(0, 16);
}

const namesIn = (rules: readonly Rule[]) => [...new Set(rules.flatMap((r) => (r.dsthost?.type === 'dsthost' ? [r.dsthost.text] : [])))].slice(0, MAX_NAMES);

function rowsOf(rules: readonly Rule[], version: string): Rows {
  const by = new Map(shadowedRules(rules).map((s) => [s.index, s.by]));
  return { rows: rules.map((r, no) => editorRow(r, no, by.get(no))), shadowed: by.size, version, names: namesIn(rules) };
}

/**
 * The last whole views, by state directory and qube, with the rule objects they were made of. The
 * store shares frozen rule objects between loads, so a read after a change elsewhere (another qube,
 * a DNS refresh: every open editor reads again) finds the same objects and reuses the rows. Bounded.
 */
const VIEWS = new Map<string, { rules: readonly Rule[] } & Rows>();
const MAX_VIEWS = 4;

function cachedView(stateDir: string, qube: string, rules: readonly Rule[]): Rows | undefined {
  const hit = VIEWS.get(`${stateDir}\0${qube}`);
  return hit && hit.rules.length === rules.length && rules.every((r, i) => r === hit.rules[i]) ? hit : undefined;
}

function wholeView(stateDir: string, qube: string, rules: readonly Rule[]): Rows {
  const hit = cachedView(stateDir, qube, rules);
  if (hit) return hit;
  const key = `${stateDir}\0${qube}`;
  const rows = rowsOf(rules, versionOf(rules));
  VIEWS.delete(key);
  VIEWS.set(key, { rules, ...rows });
  if (VIEWS.size > MAX_VIEWS) VIEWS.delete(VIEWS.keys().next().value!);
  return rows;
}

/** The first `limit` rules: their shadows need only the rules before them. */
function firstRows(stateDir: string, qube: string, rules: readonly Rule[], limit: number): Rows {
  const hit = cachedView(stateDir, qube, rules);
  if (hit) return { ...hit, rows: hit.rows.slice(0, limit), shadowed: hit.rows.slice(0, limit).filter((r) => r.shadowedBy !== undefined).length };
  // Nothing here looks at the rules past `limit`: a first screen of 100k rules costs what 80 do
  // (the version of the whole list would format every rule: it comes with the whole view).
  return rowsOf(rules.slice(0, limit), '');
}

/** At most this many names are looked up for one view (rules naming others come without their answers). */
const MAX_NAMES = 1000;

/**
 * The editor's view of a qube's rules: every rule with its fields and API line (no client form:
 * a 100k-rule list travels as it must), which earlier rule covers it (QNET1906), what each name
 * resolved to and when it is asked again, the rows qnet adds around the rules (compile/implicit),
 * and a version of the list (changes when any rule does) to tell an edit was made meanwhile.
 */
export const firewallView = defineOp({
  name: 'firewall.view',
  kind: 'read',
  summary: "a qube's rules for an editor: each rule with the earlier rule that covers it, names with their addresses and refresh time, and the implicit rules around them",
  output: FirewallViewSchema,
  /** `limit`: only the first rules (a first screen at once; shadows need only the rules before). */
  input: v.strictObject({ qube, limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))) }),
  run: async (i, host): Promise<OpResult<FirewallView>> => {
    const model = await host.read();
    const q = getQube(model, i.qube);
    const now = host.now();
    const rules = editableRules(rulesOf(q), now);
    const { rows, shadowed, version, names } = i.limit === undefined || i.limit >= rules.length ? wholeView(host.stateDir, i.qube, rules) : firstRows(host.stateDir, i.qube, rules, i.limit);
    const answers = names.length ? await host.resolve(model, names) : new Map();
    const plan = planNetwork(model, { uplink: uplinkKind(model) });
    return result({
      qube: i.qube,
      netvm: netvmName(model, q),
      now,
      version,
      count: rules.length,
      rules: rows,
      shadowed,
      names: names.map((n) => nameView(n, answers.get(n))),
      implicit: implicitRows(model, plan, i.qube),
    });
  },
});
