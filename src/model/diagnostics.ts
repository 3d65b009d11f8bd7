// One catalogue of user-facing errors and warnings, with stable codes (QNETnnnn), so scripts and
// tests can match on the code and the wording can improve without breaking them. A code means one
// fact and a fact has one code; diagnostics.test.ts checks that every code in the compiled source is
// here and that no two codes share a summary. A broken invariant is not a code: it is a BugError
// (model/result.ts).
//   1xxx  rule language            2xxx  qubes and topology
//   3xxx  store / files            4xxx  compiler, DNS, analysis
//   5xxx  backend / kernel         6xxx  daemon / API         7xxx demo        9xxx usage
export type Severity = 'error' | 'warning';

interface Entry {
  readonly severity: Severity;
  /** One line saying what the code means, for `qnet` help, the API and the docs. Unique. */
  readonly summary: string;
}

export const DIAGNOSTICS = {
  // ---- 1xxx rule language (names for these in rule-codes.ts) ----
  QNET1001: { severity: 'error', summary: 'rule syntax: a token without =, an empty token or an empty line' },
  QNET1002: { severity: 'error', summary: 'unknown rule option' },
  QNET1003: { severity: 'error', summary: 'a rule option is given twice' },
  QNET1004: { severity: 'error', summary: 'rule has no action' },
  QNET1005: { severity: 'error', summary: 'bad action (accept or drop)' },
  QNET1006: { severity: 'error', summary: 'bad proto (tcp, udp or icmp)' },
  QNET1007: { severity: 'error', summary: 'bad host name in dsthost' },
  QNET1008: { severity: 'error', summary: 'bad IPv4/IPv6 address' },
  QNET1009: { severity: 'error', summary: 'bad prefix length' },
  QNET1010: { severity: 'error', summary: 'bad dstports' },
  QNET1011: { severity: 'error', summary: 'bad icmptype' },
  QNET1012: { severity: 'error', summary: 'bad specialtarget' },
  QNET1013: { severity: 'error', summary: 'bad expire' },
  QNET1014: { severity: 'error', summary: 'bad comment' },
  QNET1015: { severity: 'error', summary: 'dstports needs proto=tcp or proto=udp' },
  QNET1016: { severity: 'error', summary: 'icmptype needs proto=icmp' },
  QNET1017: { severity: 'error', summary: 'specialtarget=dns with proto=icmp (Qubes would drop everything)' },
  QNET1018: { severity: 'error', summary: 'specialtarget=dns with dstports other than 53 (Qubes would skip the rule)' },
  QNET1019: { severity: 'error', summary: 'qvm-firewall words: a protocol word where a host is expected' },
  QNET1020: { severity: 'error', summary: 'qvm-firewall words: a bare word with no slot left' },
  QNET1021: { severity: 'error', summary: 'qvm-firewall words: malformed key=value word' },
  QNET1022: { severity: 'error', summary: 'qvm-firewall words: unknown key' },
  QNET1023: { severity: 'error', summary: 'empty rule' },
  QNET1101: { severity: 'error', summary: 'firewall.xml is not well-formed XML' },
  QNET1102: { severity: 'error', summary: 'firewall.xml has an unsupported version' },
  QNET1103: { severity: 'error', summary: 'firewall.xml has an unexpected structure' },
  QNET1104: { severity: 'error', summary: 'firewall.xml has an unknown rule property' },
  QNET1105: { severity: 'error', summary: 'firewall.xml has a rule property twice' },
  QNET1106: { severity: 'error', summary: 'firewall.xml in the v1 format cannot be read here' },
  QNET1901: { severity: 'warning', summary: 'a rule can never match: an earlier rule matches everything' },
  QNET1902: { severity: 'error', summary: 'no rule with that number' },
  QNET1903: { severity: 'error', summary: 'no rule equal to the one given' },
  QNET1904: { severity: 'error', summary: 'rules contain non-ASCII characters' },
  QNET1905: { severity: 'error', summary: 'the rule list changed since it was read: the rule at that number is not the one expected' },
  QNET1906: { severity: 'warning', summary: 'a rule can never match: an earlier rule covers it' },
  // ---- 2xxx qubes and topology ----
  QNET2001: { severity: 'error', summary: 'invalid qube name' },
  QNET2002: { severity: 'error', summary: 'reserved qube name' },
  QNET2003: { severity: 'error', summary: 'no such qube' },
  QNET2004: { severity: 'error', summary: 'the qube does not provide network' },
  QNET2005: { severity: 'error', summary: 'netvm loop' },
  QNET2006: { severity: 'error', summary: 'a qube with that name already exists' },
  QNET2007: { severity: 'error', summary: 'cannot remove a running qube' },
  QNET2008: { severity: 'error', summary: 'the qube is netvm of other qubes' },
  QNET2009: { severity: 'error', summary: 'cannot rename a running qube' },
  QNET2010: { severity: 'error', summary: 'property value is not a boolean' },
  QNET2011: { severity: 'error', summary: 'property value is not an address of that family' },
  QNET2012: { severity: 'error', summary: 'address already used by another qube' },
  QNET2013: { severity: 'error', summary: 'not a label' },
  QNET2014: { severity: 'error', summary: 'cannot stop providing network while qubes use it' },
  QNET2015: { severity: 'error', summary: 'read-only property' },
  QNET2016: { severity: 'error', summary: 'property has no default value' },
  QNET2017: { severity: 'error', summary: 'cannot attach a running qube to a stopped netvm' },
  QNET2020: { severity: 'error', summary: "uplink veth-host: the netvm's qid does not fit the host link range" },
  QNET2201: { severity: 'error', summary: 'a connection or port forward has a bad value' },
  QNET2202: { severity: 'error', summary: 'a connection or port forward duplicates or clashes with another' },
  QNET2203: { severity: 'error', summary: 'no connection or port forward matches' },
  QNET2204: { severity: 'warning', summary: "the source qube's own firewall rules block the connection" },
  QNET4006: { severity: 'warning', summary: 'a connection or port forward has no path in the running network' },
  QNET4007: { severity: 'warning', summary: 'a connection or port forward cannot be written as a Qubes script' },
  QNET2101: { severity: 'error', summary: 'other running qubes are connected to this netvm' },
  QNET2102: { severity: 'error', summary: 'templates are not started' },
  QNET2103: { severity: 'error', summary: 'the qube is not running' },
  QNET2105: { severity: 'error', summary: 'the uplink cannot change while qubes run' },
  QNET2106: { severity: 'error', summary: 'not an uplink (world, none, veth-host, move:DEV)' },
  QNET2107: { severity: 'error', summary: 'shutdown needs qubes or all' },
  QNET2110: { severity: 'error', summary: 'the qube does not have that feature set' },
  QNET2111: { severity: 'error', summary: 'bad feature name or value' },
  // ---- 3xxx store / files ----
  QNET3001: { severity: 'error', summary: 'the state directory is locked by another writer' },
  QNET3002: { severity: 'error', summary: 'the writer lock cannot be made (permissions, read-only file system)' },
  QNET3010: { severity: 'error', summary: 'qubes.json is not valid JSON' },
  QNET3011: { severity: 'error', summary: 'qubes.json has a wrong shape or value' },
  QNET3022: { severity: 'error', summary: 'the change would make the model invalid; nothing was written' },
  QNET3023: { severity: 'error', summary: 'a state file cannot be read or written' },
  QNET3024: { severity: 'error', summary: "the qube's rules file is broken: its rules are unknown (the qube stays blocked)" },
  QNET3101: { severity: 'error', summary: 'the state directory already has qubes' },
  QNET3301: { severity: 'error', summary: 'qube import: qubes.xml is missing, not a regular file, too big, or the path is not absolute' },
  QNET3302: { severity: 'error', summary: 'qube import: qubes.xml is not well-formed XML, or has a DTD' },
  QNET3303: { severity: 'error', summary: 'qube import: a domain, property, label or reference in qubes.xml that qnet cannot import' },
  QNET3304: { severity: 'error', summary: "qube import: a qube's firewall.xml cannot be read" },
  QNET3305: { severity: 'warning', summary: 'qube import: something in qubes.xml that qnet does not model was left out' },
  QNET3201: { severity: 'error', summary: 'the runtime file cannot be read' },
  QNET3401: { severity: 'error', summary: 'the checkpoints file (recent applies) cannot be read' },
  QNET3202: { severity: 'error', summary: 'bad namespace prefix' },
  QNET3203: { severity: 'error', summary: 'bad QNET_FIREWALL_SHARD (clients per qubes-firewall shard)' },
  // ---- 4xxx compiler, DNS, analysis ----
  QNET4001: { severity: 'warning', summary: 'a name in dsthost did not resolve: the rules that use it are disabled' },
  QNET4002: { severity: 'warning', summary: 'rule never matches: specialtarget=dns with ports other than 53' },
  QNET4003: { severity: 'warning', summary: 'rule never matches: the netvm has no DNS servers for specialtarget=dns' },
  QNET4004: { severity: 'warning', summary: 'rule never matches: specialtarget=dns with proto=icmp' },
  QNET4005: { severity: 'warning', summary: 'rule disabled: an address that cannot be read' },
  QNET4010: { severity: 'error', summary: 'the network plan names a qube that is not in the model' },
  QNET4201: { severity: 'error', summary: 'the qube has no network stack to analyse' },
  QNET4202: { severity: 'error', summary: 'the destination host has no address' },
  QNET4203: { severity: 'error', summary: 'the destination has only IPv6 addresses and the source has no IPv6' },
  QNET4204: { severity: 'error', summary: 'icmp has no ports' },
  QNET4205: { severity: 'error', summary: 'the destination is not a qube, an address, a network or a host name' },
  QNET4206: { severity: 'error', summary: 'what the kernel holds is known to the daemon only' },
  // ---- 5xxx backend / kernel ----
  QNET5001: { severity: 'error', summary: 'loading the rules of a node failed; its clients are blocked' },
  QNET5101: { severity: 'error', summary: 'the netns backend cannot run here' },
  QNET5102: { severity: 'error', summary: 'no runtime for running qubes' },
  QNET5103: { severity: 'error', summary: 'running programs in qubes needs the netns backend' },
  QNET5105: { severity: 'warning', summary: 'the state directory moved from the simulator to network namespaces' },
  QNET5106: { severity: 'warning', summary: 'qubes run on the simulator although network namespaces could run here' },
  QNET5107: { severity: 'warning', summary: 'starting the autostart qubes failed; the daemon serves without them' },
  QNET5120: { severity: 'warning', summary: "a netvm's drop log reader stopped (tcpdump missing or failing)" },
  QNET5201: { severity: 'error', summary: 'invalid name or argument for a kernel command' },
  QNET5202: { severity: 'error', summary: 'the namespace already exists' },
  QNET5203: { severity: 'error', summary: 'inconsistent network plan' },
  QNET5204: { severity: 'error', summary: 'the namespace does not exist' },
  QNET5205: { severity: 'error', summary: 'a kernel command failed' },
  QNET5206: { severity: 'error', summary: 'a required tool (ip, nft, conntrack) is missing' },
  QNET5210: { severity: 'error', summary: 'nft rejected the rules' },
  QNET5211: { severity: 'error', summary: 'nft could not find a table, chain or set' },
  QNET5220: { severity: 'error', summary: 'uplink move: the device cannot be moved' },
  QNET5221: { severity: 'error', summary: 'uplink veth-host: the host side cannot be set up' },
  // ---- 6xxx daemon / API ----
  QNET6001: { severity: 'error', summary: 'talking to the daemon needs root' },
  QNET6002: { severity: 'error', summary: 'the daemon refused the command' },
  QNET6003: { severity: 'error', summary: 'a daemon already serves this state directory' },
  QNET6004: { severity: 'error', summary: 'no daemon serves this state directory' },
  QNET6005: { severity: 'error', summary: 'something that is not the verified daemon holds its socket: the token is not sent' },
  QNET6006: { severity: 'error', summary: 'the daemon went away during the request' },
  QNET6007: { severity: 'error', summary: 'the daemon did not answer in time' },
  QNET6008: { severity: 'error', summary: 'the daemon sent a reply that is too large or not JSON' },
  QNET6009: { severity: 'error', summary: "another process holds the daemon's socket name: the daemon does not start" },
  QNET6010: { severity: 'error', summary: "the daemon's run directory is unsafe (a link, or another user's)" },
  QNET6011: { severity: 'error', summary: 'the daemon is starting and not ready yet' },
  QNET6101: { severity: 'error', summary: 'no such operation' },
  QNET6102: { severity: 'error', summary: "the input does not fit the operation's schema" },
  QNET6103: { severity: 'error', summary: 'a preview cannot read counters' },
  QNET6104: { severity: 'error', summary: 'only change operations can be previewed' },
  QNET6105: { severity: 'error', summary: 'the request body is too large' },
  QNET6106: { severity: 'error', summary: 'the request body is not JSON' },
  QNET6107: { severity: 'error', summary: 'the request has no valid token' },
  QNET6108: { severity: 'error', summary: 'wrong HTTP method for this path' },
  QNET6109: { severity: 'error', summary: 'no such path in the API' },
  QNET6110: { severity: 'error', summary: 'the viewer token may call read operations only' },
  QNET6111: { severity: 'error', summary: "the request's Host is not the HTTP listener's own (DNS rebinding)" },
  QNET6112: { severity: 'error', summary: "the request's Origin is not the HTTP listener's own (a cross-site request)" },
  QNET6113: { severity: 'error', summary: 'the HTTP listener takes a loopback address and port only' },
  QNET6114: { severity: 'error', summary: 'the daemon serves no verified HTTP listener' },
  QNET6120: { severity: 'error', summary: 'the drop log needs the daemon (it reads the kernel while qubes run)' },
  QNET6121: { severity: 'warning', summary: 'the drop log is empty on the simulator (there is no kernel to log)' },
  QNET6201: { severity: 'error', summary: 'a confirm timer needs the daemon' },
  QNET6202: { severity: 'error', summary: 'no such checkpoint' },
  QNET6203: { severity: 'error', summary: 'the checkpoint is not pending (or already put back)' },
  QNET6204: { severity: 'error', summary: 'undo refused: what the apply changed has changed since' },
  QNET6205: { severity: 'error', summary: 'this operation cannot be a step of an apply' },
  QNET6206: { severity: 'error', summary: 'the model changed while the apply ran' },
  QNET6207: { severity: 'warning', summary: 'a rollback also put back later changes to the same parts' },
  QNET6208: { severity: 'error', summary: 'checkpoints are not kept in a preview' },
  QNET6209: { severity: 'warning', summary: 'pending applies could not be rolled back' },
  QNET6210: { severity: 'error', summary: 'another apply is not confirmed yet' },
  QNET6199: { severity: 'error', summary: 'an operation failed with an internal error (a bug in qnet)' },
  // ---- 7xxx demo ----
  QNET7001: { severity: 'error', summary: 'demo: something did not come up in time' },
  QNET7002: { severity: 'error', summary: 'demo: starting the qubes failed' },
  // ---- 9xxx usage ----
  QNET9000: { severity: 'error', summary: 'usage error' },
  QNET9001: { severity: 'error', summary: 'no such property' },
  QNET9002: { severity: 'error', summary: 'unknown backend' },
  QNET9003: { severity: 'error', summary: 'removing qubes needs a yes on a terminal, or --force' },
} as const satisfies Record<string, Entry>;

export type Code = keyof typeof DIAGNOSTICS;

/**
 * Codes that once meant something and must never mean something else. QNET4101-4115 were IR
 * validation findings, which are compiler bugs (BugError) since; QNET4101 also named a DNS failure,
 * which is QNET4001.
 */
export const RETIRED: Readonly<Record<string, string>> = {
  QNET1024: '`del RULE…` with no equal rule; that is QNET1903',
  QNET2104: '`run` could not start the qube through the daemon (run now calls the start operation: its own codes)',
  QNET4101: 'a name did not resolve (now QNET4001); a bad nft name (now a BugError)',
  ...Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`QNET41${String(i + 2).padStart(2, '0')}`, 'an IR validation finding (now a BugError)'])),
};

export function isCode(s: string): s is Code {
  return Object.hasOwn(DIAGNOSTICS, s);
}

/** Every code with its meaning, in code order: what an API or `--help` lists. */
export function listDiagnostics(): { code: Code; severity: Severity; summary: string }[] {
  return (Object.keys(DIAGNOSTICS) as Code[]).sort().map((code) => ({ code, ...DIAGNOSTICS[code] }));
}

export interface Diagnostic {
  code: Code;
  severity: Severity;
  message: string;
  qube?: string;
  ruleIndex?: number;
  file?: string;
  hint?: string;
}

/** A diagnostic with the catalogue's severity for `code` (an error for most). */
export function diag(code: Code, message: string, extra: Partial<Omit<Diagnostic, 'code'>> = {}): Diagnostic {
  return { code, severity: DIAGNOSTICS[code].severity, message, ...extra };
}

export function warning(code: Code, message: string, extra: Partial<Omit<Diagnostic, 'code'>> = {}): Diagnostic {
  return { code, severity: 'warning', message, ...extra };
}

/** `work: rule 3: message (QNET1001)` — the one-line form the CLI prints. */
export function formatDiagnostic(d: Diagnostic): string {
  // A message that already names its file (store errors do) is not prefixed with it again.
  const file = d.file && !d.message.startsWith(d.file) ? d.file : undefined;
  const where = [file, d.qube, d.ruleIndex !== undefined ? `rule ${d.ruleIndex}` : undefined]
    .filter((x) => x !== undefined)
    .join(': ');
  const hint = d.hint ? ` — ${d.hint}` : '';
  return `${where ? where + ': ' : ''}${d.message}${hint} (${d.code})`;
}
