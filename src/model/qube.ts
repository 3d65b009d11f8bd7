// Qubes and the global properties, as data. Topology helpers (netvm chains, addresses) live in
// topology.ts and addressing.ts. Reference: shared/reference/qubes-firewall.md §5.1,
// qubes-networking-and-users.md §2.
import type { Connection, PortForward } from './connection.js';
import type { Diagnostic } from './diagnostics.js';
import type { RuleList } from './rule.js';

export type QubeClass = 'AppVM' | 'DispVM' | 'TemplateVM' | 'StandaloneVM';
export const QUBE_CLASSES: readonly QubeClass[] = ['AppVM', 'DispVM', 'TemplateVM', 'StandaloneVM'];

export type Label = 'red' | 'orange' | 'yellow' | 'green' | 'gray' | 'blue' | 'purple' | 'black';
export const LABELS: readonly Label[] = ['red', 'orange', 'yellow', 'green', 'gray', 'blue', 'purple', 'black'];

export type PowerState = 'Halted' | 'Running';

/** `netvm` as stored: a qube name, `null` for none, or `'default'` to follow the global default_netvm. */
export type NetvmRef = string | null;

export interface Qube {
  qid: number;
  name: string;
  klass: QubeClass;
  label: Label;
  /** `undefined`: follows the global default_netvm (Qubes' "default" value). */
  netvm?: NetvmRef;
  provides_network: boolean;
  /** Set by hand; otherwise derived from qid (or dispid) by addressing.ts. */
  ip?: string;
  ip6?: string;
  /** DispVMs: the dispid that gives their 10.138.x.y address. */
  dispid?: number;
  state: PowerState;
  /** Started when the qnet daemon starts, i.e. at boot under systemd (qvm-prefs autostart). Absent: False. */
  autostart?: boolean;
  features: Record<string, string>;
  rules: RuleList;
  /**
   * Set by the store when the qube's firewall file cannot be read or parsed: the file and what is
   * wrong, one line. `rules` is then `[]` (blocked: fail closed, never "no file, accept all"); the
   * rules the file meant are unknown, so edits of them are refused (store/rules-problem.ts).
   */
  rulesProblem?: Diagnostic;
}

export interface Model {
  /** The global default_netvm (qubes-prefs). `null` = none. */
  default_netvm: string | null;
  /**
   * How top netvms reach the outside (qubes-prefs uplink): `world` (a stand-in namespace, the
   * default: it never touches the host), `none`, `veth-host`, or `move:DEV`.
   */
  uplink?: string;
  /** Keyed by name; iteration order is insertion order, kept sorted by the store. */
  qubes: Map<string, Qube>;
  /** Who may open connections to whom (connection.ts); absent = none. */
  connections?: Connection[];
  /** Ports of qubes offered to the outside through every hop (connection.ts); absent = none. */
  forwards?: PortForward[];
  /**
   * Set by the store when qubes.json has entries it could not read: those qubes are left out of
   * `qubes` (one diagnostic each, naming the file), and the store refuses to rewrite qubes.json.
   */
  problems?: Diagnostic[];
}
