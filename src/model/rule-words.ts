// qvm-firewall's RULE words (`qvm-firewall VM add RULE…`, `del RULE…`), as qubesadmin's
// `RuleAction` reads them and the client `Rule` then validates them (qubes-firewall.md §3.1, §3.2).
// Where Qubes raises an argparse error or a traceback, qnet returns a Diagnostic; where Qubes would
// silently read a word as something else (`accept icmp` = dsthost icmp), qnet refuses.
import type { DstHost, Rule } from './rule.js';
import { err, ok, type Result } from './result.js';
import { RuleCode, q, ruleError } from './rule-codes.js';
import { checkRule, icmpTypeNeedsIcmp, MAX_EXPIRE, portsNeedTcpUdp, parseDstHost, setElement, type RuleKey } from './rule-parse.js';
import { formatClientRule } from './rule-format.js';
import { isIPv4, parseIPv6 } from './rule-host.js';
import { pyInt } from './rule-python.js';

type WordKey = RuleKey;
const POSITIONAL: readonly WordKey[] = ['action', 'dsthost', 'proto', 'dstports', 'icmptype'];
const ALLOWED: ReadonlySet<string> = new Set([...POSITIONAL, 'specialtarget', 'comment', 'expire']);
const ELEMENTS = 'action, dsthost (or dst4, dst6), proto, dstports, icmptype, specialtarget, expire, comment';
const EXAMPLE = 'e.g. accept qubes-os.org tcp 443, or action=accept proto=icmp';

/**
 * Bare words fill the next unused slot of `action dsthost proto dstports icmptype`; a slot is used
 * up by a bare word or by its key; `proto=tcp|udp` uses up icmptype and `proto=icmp` dstports.
 * `key=value` words may come anywhere, a later one replacing an earlier one (as in Qubes).
 * `expire=+N` is `nowSeconds + N` (whole seconds); `comment=` takes the rest of its one word.
 */
export function parseRuleWords(words: readonly string[], nowSeconds: number): Result<Rule> {
  if (words.length === 0) return err(ruleError(RuleCode.EmptyRule, 'no rule given', EXAMPLE));
  const slots: WordKey[] = [...POSITIONAL];
  const values = new Map<WordKey, string>();
  let protoGiven = false;
  for (const word of words) {
    // qnet: Qubes crashes (IndexError) on an empty word.
    if (word === '') return err(ruleError(RuleCode.BadWord, 'empty word in the rule', 'remove the empty argument'));
    if (word.endsWith('=')) {
      return err(ruleError(RuleCode.BadWord, `invalid rule description: ${q(word)}`, `give a value after '=', ${EXAMPLE}`));
    }
    const parts = word.split('=');
    if (parts.length > 2) {
      return err(ruleError(RuleCode.BadWord, `invalid rule description: ${q(word)}`, "a value cannot contain '='"));
    }
    let key: string;
    let value: string;
    const positional = parts.length === 1;
    if (positional) {
      // qnet: Qubes crashes (IndexError) when no slot is left.
      if (slots.length === 0) {
        return err(
          ruleError(
            RuleCode.NoSlotForWord,
            `no place for ${q(word)}: action, host, protocol and port or ICMP type are all given`,
            'write other elements as key=value (specialtarget=dns, expire=+3600, comment=...)',
          ),
        );
      }
      key = slots[0]!;
      value = word;
    } else {
      key = parts[0]!;
      value = parts[1]!;
    }
    if (key === 'dst4' || key === 'dst6') key = 'dsthost';
    if (!ALLOWED.has(key)) {
      return err(ruleError(RuleCode.UnknownWordKey, `invalid rule element: ${q(word)}`, `rule elements are ${ELEMENTS}`));
    }
    // qnet: Qubes would take this word as a host name (§7.5), a rule nobody means.
    if (positional && key === 'dsthost' && (value === 'tcp' || value === 'udp' || value === 'icmp')) {
      return err(
        ruleError(
          RuleCode.ProtoWordAsHost,
          `'${value}' in the host position would be read as a host named '${value}'`,
          `write proto=${value} (as in: accept proto=${value}${value === 'icmp' ? '' : ' dstports=443'}), or dsthost=${value} if you mean a host`,
        ),
      );
    }
    if (positional && key === 'dsthost' && /^\d+$/.test(value)) {
      return err(
        ruleError(
          RuleCode.BadAddress,
          `${q(value)} in the host position is not a host`,
          `if it is a port or an ICMP type, name it: proto=tcp dstports=${value}, or proto=icmp icmptype=${value}`,
        ),
      );
    }
    if (key === 'expire' && value.startsWith('+')) {
      // qvm-firewall: now + N seconds, truncated to whole seconds (strftime('%s')).
      const n = pyInt(value.slice(1));
      const at = n === undefined ? NaN : Math.floor(nowSeconds) + n;
      if (!(at >= 0 && at <= MAX_EXPIRE)) {
        return err(
          ruleError(
            RuleCode.BadExpire,
            `expire ${q(value)} is not +seconds from now`,
            'e.g. expire=+3600 for one hour, or seconds since the epoch',
          ),
        );
      }
      value = `${at}`;
    }
    values.set(key as WordKey, value);
    const k = slots.indexOf(key as WordKey);
    if (k >= 0) slots.splice(k, 1);
    if (key === 'proto' && (value === 'tcp' || value === 'udp' || value === 'icmp')) {
      // qvm-firewall removes the slot that proto rules out; if it is already gone, Qubes crashes
      // (list.remove ValueError). qnet says why.
      const other: WordKey = value === 'icmp' ? 'dstports' : 'icmptype';
      const j = slots.indexOf(other);
      if (j < 0) {
        if (protoGiven) return err(ruleError(RuleCode.DuplicateOption, 'proto is given twice', 'give proto once'));
        return err(
          other === 'icmptype'
            ? ruleError(RuleCode.IcmpTypeNeedsIcmp, "icmptype valid only for 'icmp' protocol", 'use proto=icmp, or remove icmptype')
            : ruleError(RuleCode.PortsNeedTcpUdp, "dstports valid only for 'tcp' and 'udp' protocols", 'use proto=tcp or proto=udp, or remove dstports'),
        );
      }
      slots.splice(j, 1);
    }
    if (key === 'proto') protoGiven = true;
  }
  return buildClientRule(values);
}

/**
 * qubesadmin `Rule(None, **kwargs)` then dom0's parse of its canonical string: elements are set in
 * the client's order (action, proto, dsthost, specialtarget, dstports, icmptype, expire, comment)
 * and must pass dom0's stricter checks; an address host with prefix 0 is dropped (§3.1). The client
 * checks dstports/icmptype against proto as it sets them, before reading their values.
 */
function buildClientRule(values: ReadonlyMap<WordKey, string>): Result<Rule> {
  const rule: Partial<Rule> = {};
  for (const key of ['action', 'proto', 'dsthost', 'specialtarget', 'dstports', 'icmptype', 'expire', 'comment'] as const) {
    const value = values.get(key);
    if (value === undefined) continue;
    // The proto checks come before the value is read: `accept dstports=junk` is a proto error.
    if (key === 'dstports' && rule.proto !== 'tcp' && rule.proto !== 'udp') return err(portsNeedTcpUdp(rule.proto));
    if (key === 'icmptype' && rule.proto !== 'icmp') return err(icmpTypeNeedsIcmp());
    if (key === 'dsthost') {
      const r = clientHost(value);
      if (!r.ok) return r;
      if (r.value) rule.dsthost = r.value;
      continue;
    }
    const e = setElement(rule, key, value);
    if (e) return err(e);
  }
  return checkRule(rule as Rule);
}

/** The client reads the prefix with int() and drops `0.0.0.0/0`-style hosts ("any host"). */
function clientHost(value: string): Result<DstHost | undefined> {
  const parts = value.split('/');
  if (parts.length === 2 && pyInt(parts[1]!) === 0 && (isIPv4(parts[0]!) || parseIPv6(parts[0]!) !== undefined)) {
    return ok(undefined);
  }
  return parseDstHost(value);
}

/** Index of the first rule equal to `target` in client canonical form, or -1. */
export function findRuleIndex(rules: readonly Rule[], target: Rule): number {
  const want = formatClientRule(target);
  return rules.findIndex((r) => formatClientRule(r) === want);
}
