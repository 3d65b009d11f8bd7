// Names for the rule language's codes (1xxx). What each code means is in the one catalogue,
// diagnostics.ts; this only lets the parsers say RuleCode.BadPorts. Re-exported from rule-parse.ts.
import { diag, type Code, type Diagnostic } from './diagnostics.js';

export const RuleCode = {
  /** Token without `=`, empty token (doubled space), empty line. */
  Syntax: 'QNET1001',
  UnknownOption: 'QNET1002',
  DuplicateOption: 'QNET1003',
  MissingAction: 'QNET1004',
  BadAction: 'QNET1005',
  BadProto: 'QNET1006',
  /** Host name with bad characters or not a real DNS name. */
  BadHostName: 'QNET1007',
  /** Not a valid IPv4/IPv6 address (including dotted all-numeric "names"). */
  BadAddress: 'QNET1008',
  BadPrefix: 'QNET1009',
  BadPorts: 'QNET1010',
  BadIcmpType: 'QNET1011',
  BadSpecialTarget: 'QNET1012',
  BadExpire: 'QNET1013',
  BadComment: 'QNET1014',
  PortsNeedTcpUdp: 'QNET1015',
  IcmpTypeNeedsIcmp: 'QNET1016',
  /** qnet refuses: Qubes' nft fails on `icmp dport 53` and the qube drops everything (§7.7). */
  DnsWithIcmp: 'QNET1017',
  /** qnet refuses: Qubes silently skips such a rule in the net qube (§7.8). */
  DnsPortNot53: 'QNET1018',
  /** qvm-firewall words: `accept icmp` would mean dsthost=icmp (§7.5). */
  ProtoWordAsHost: 'QNET1019',
  /** qvm-firewall words: a bare word after all positional slots are used (Qubes: IndexError). */
  NoSlotForWord: 'QNET1020',
  /** qvm-firewall words: `key=` or a word with two `=` (argparse "invalid rule description"). */
  BadWord: 'QNET1021',
  /** qvm-firewall words: unknown key (argparse "Invalid rule element"). */
  UnknownWordKey: 'QNET1022',
  EmptyRule: 'QNET1023',
  // QNET1024 retired unused: `del RULE…` with no equal rule is QNET1903 (firewall-ops deleteMatching).
  // firewall.xml (the file form of the rule language)
  XmlMalformed: 'QNET1101',
  XmlVersion: 'QNET1102',
  XmlStructure: 'QNET1103',
  XmlUnknownProperty: 'QNET1104',
  XmlDuplicateProperty: 'QNET1105',
  XmlV1: 'QNET1106',
} as const satisfies Record<string, Code>;

export type RuleCodeValue = (typeof RuleCode)[keyof typeof RuleCode];

export function ruleError(code: RuleCodeValue, message: string, hint?: string): Diagnostic {
  return hint === undefined ? diag(code, message) : diag(code, message, { hint });
}

/** Quote a user value for a message; long values are cut so one bad line cannot flood a terminal. */
export function q(value: string): string {
  const v = value.length > 80 ? value.slice(0, 77) + '...' : value;
  return `'${v}'`;
}
