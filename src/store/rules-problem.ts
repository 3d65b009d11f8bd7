// A qube whose firewall file is broken (Qube.rulesProblem) is blocked and its rules are unknown.
// What the layers above may do with such a qube, in the semantics of qvm-firewall:
//  - read its rules to show or edit them (list, add, del): refused, naming the file (rulesOf);
//  - replace them wholesale (set, reset): allowed, and the only way qnet ever writes over a broken
//    file (replaceRules clears the mark; FileStore then writes the file fresh);
//  - anything else (other qubes, its properties): works, and leaves the file exactly as it is.
import { diag, type Diagnostic } from '../model/diagnostics.js';
import type { Qube } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import type { Rule, RuleList } from '../model/rule.js';

export const RULES_UNKNOWN = 'QNET3024';

/** The qube's rules, or a QnetError (QNET3024) naming its broken file when they are unknown. */
export function rulesOf(q: Qube): RuleList {
  if (q.rulesProblem) throw new QnetError(rulesUnknown(q));
  return q.rules;
}

/** False when the qube's firewall file is broken (it is blocked; what its rules were is unknown). */
export function hasKnownRules(q: Qube): boolean {
  return q.rulesProblem === undefined;
}

/**
 * Replace the qube's rules wholesale (`firewall set`, `reset`; `null` removes the file). The only
 * edit allowed on a qube whose file is broken: the new list does not depend on the unknown one.
 */
export function replaceRules(q: Qube, rules: Rule[] | null): void {
  delete q.rulesProblem;
  q.rules = rules;
}

/** The refusal for a change that needs the current rules of a qube whose file is broken. */
export function rulesUnknown(q: Qube): Diagnostic {
  const p = q.rulesProblem!;
  return diag(RULES_UNKNOWN, `${p.message}; the rules of ${q.name} are unknown`, {
    qube: q.name,
    ...(p.file !== undefined ? { file: p.file } : {}),
    hint: `the qube is blocked until the file is fixed by hand or replaced (qnet firewall ${q.name} set / reset)`,
  });
}
