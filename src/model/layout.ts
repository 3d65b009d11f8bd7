// The layout of a fresh Qubes install, as `qnet init` creates it (issue: sys-net provides network and
// has no netvm; sys-firewall provides network behind sys-net and is the default_netvm; work,
// personal and untrusted use the default; vault has no netvm).
import type { Label, Model, Qube } from './qube.js';

export function newQube(qid: number, name: string, label: Label, extra: Partial<Qube> = {}): Qube {
  return { qid, name, klass: 'AppVM', label, provides_network: false, state: 'Halted', features: {}, rules: null, ...extra };
}

export function defaultLayout(): Model {
  const qubes: Qube[] = [
    newQube(1, 'sys-net', 'red', { netvm: null, provides_network: true }),
    newQube(2, 'sys-firewall', 'green', { netvm: 'sys-net', provides_network: true }),
    newQube(3, 'work', 'blue'),
    newQube(4, 'personal', 'yellow'),
    newQube(5, 'untrusted', 'red'),
    newQube(6, 'vault', 'black', { netvm: null }),
  ];
  return { default_netvm: 'sys-firewall', qubes: new Map(qubes.map((q) => [q.name, q])) };
}
