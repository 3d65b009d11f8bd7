// Editing a qube's rule list the way qvm-firewall does (reference §3.2): Get, change, Set the whole
// list. Pure; shared by the offline CLI and the daemon.
import { diag, warning, type Diagnostic } from './diagnostics.js';
import { formatApiRule, formatClientRule } from './rule-format.js';
import { findRuleIndex } from './rule-words.js';
import { effectiveRules, type Rule } from './rule.js';
import { QnetError } from './result.js';
import { coveringRule, shadowText } from './shadow.js';

/** Python's list.insert: an index past the end appends, a negative one counts from the end. */
export function pyInsert<T>(list: T[], index: number | undefined, item: T): T[] {
  const out = [...list];
  if (index === undefined) out.push(item);
  else {
    const i = index < 0 ? Math.max(0, out.length + index) : Math.min(index, out.length);
    out.splice(i, 0, item);
  }
  return out;
}

/** A rule with nothing but an action matches every packet. */
const isCatchAll = (r: Rule) =>
  r.proto === undefined && r.dsthost === undefined && r.dstports === undefined && r.icmptype === undefined &&
  r.specialtarget === undefined && r.expire === undefined;

export function addRule(current: Rule[], rule: Rule, before?: number): { rules: Rule[]; warnings: Diagnostic[] } {
  const rules = pyInsert(current, before, rule);
  const at = rules.indexOf(rule);
  const shadow = rules.slice(0, at).findIndex(isCatchAll);
  const warnings =
    shadow >= 0
      ? [
          warning('QNET1901', `rule ${at} can never match: rule ${shadow} (action=${rules[shadow]!.action}) matches everything before it`, {
            hint: `qnet firewall VM del --rule-no ${shadow}, or add with --before ${shadow}`,
          }),
        ]
      : [];
  return { rules, warnings };
}

function checkRuleNo(current: readonly Rule[], n: number): void {
  if (!Number.isInteger(n) || n < 0 || n >= current.length)
    throw new QnetError(
      diag('QNET1902', `there is no rule number ${n}`, {
        hint: current.length ? `rules are numbered 0 to ${current.length - 1}` : 'the list is empty',
      }),
    );
}

export function deleteRuleNo(current: Rule[], n: number): Rule[] {
  checkRuleNo(current, n);
  return current.filter((_, i) => i !== n);
}

/**
 * The guard of an edit by number: rule `n` must still be `expected` (compared in API form), so an
 * edit made from a list read earlier never lands on another rule when the list changed meanwhile.
 */
export function checkExpected(current: readonly Rule[], n: number, expected: Rule | undefined): void {
  if (expected === undefined) return;
  const want = formatApiRule(expected);
  const cur = current[n];
  if (cur && formatApiRule(cur) === want) return;
  throw new QnetError(
    diag('QNET1905', cur ? `rule ${n} is now '${formatApiRule(cur)}', not '${want}': the list changed since it was read` : `there is no rule ${n} any more (expected '${want}'): the list changed since it was read`, {
      hint: 'read the rules again and repeat the edit on the rule you mean',
    }),
  );
}

/** Rule `from` moved so that it ends up as rule `to`; both must be rule numbers. */
export function moveRule(current: Rule[], from: number, to: number): Rule[] {
  checkRuleNo(current, from);
  checkRuleNo(current, to);
  const out = [...current];
  const [r] = out.splice(from, 1);
  out.splice(to, 0, r!);
  return out;
}

/** Rule `n` replaced by `rule`, in place. */
export function replaceRuleNo(current: Rule[], n: number, rule: Rule): Rule[] {
  checkRuleNo(current, n);
  const out = [...current];
  out[n] = rule;
  return out;
}

/** QNET1906 when an earlier rule covers rule `at` (the edit made a rule that never matches). */
export function shadowWarning(rules: readonly Rule[], at: number): Diagnostic[] {
  const by = coveringRule(rules, at);
  return by === undefined ? [] : [warning('QNET1906', shadowText(at, by), { hint: `move it before rule ${by}, or delete it` })];
}

/** Remove the first rule equal to `rule` in client canonical form (qvm-firewall's comparison). */
export function deleteMatching(current: Rule[], rule: Rule): Rule[] {
  const i = findRuleIndex(current, rule);
  if (i < 0)
    throw new QnetError(diag('QNET1903', `no rule matches '${formatClientRule(rule)}'`, { hint: 'see qnet firewall VM --raw' }));
  return current.filter((_, j) => j !== i);
}

/** What the rule list is for editing: Qubes' Get (no file → [accept]; expired rules gone). */
export const editableRules = (rules: Rule[] | null, now: number): Rule[] => effectiveRules(rules, now);

/**
 * True when `after` can only let more through than `before`: it is `before` with accept rules
 * inserted and drop rules removed. Under first match, no packet `before` accepted is refused after
 * such a change, so no established flow needs cutting. Conservative: any other difference is false.
 */
export function onlyOpens(before: readonly Rule[], after: readonly Rule[]): boolean {
  // Rules an edit left alone are the same frozen objects, so identity settles most comparisons.
  const same = (a: Rule, b: Rule) => a === b || formatApiRule(a) === formatApiRule(b);
  let i = 0;
  let j = 0;
  while (i < before.length && j < after.length) {
    if (same(before[i]!, after[j]!)) {
      i++;
      j++;
    } else if (after[j]!.action === 'accept') j++;
    else if (before[i]!.action === 'drop') i++;
    else return false;
  }
  return before.slice(i).every((r) => r.action === 'drop') && after.slice(j).every((r) => r.action === 'accept');
}
