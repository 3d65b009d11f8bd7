// What a change touches, declared by whoever makes it (an operation), so the layers below take the
// smallest path without guessing: a rule edit of one qube reloads that qube's client chain and sets,
// never the whole system. Undeclared means `all` (a full converge), which is always correct.
export type Effect =
  /**
   * Only these qubes' rule lists changed (added, removed, replaced rules). `reload`: nothing changed,
   * but their names are to be resolved again now and their rules loaded again (qvm-firewall --reload).
   */
  | { kind: 'rules'; qubes: string[]; reload?: boolean }
  /** Properties of these qubes changed (netvm, label, features …), or qubes were created or removed. */
  | { kind: 'props'; qubes: string[] }
  /** These qubes were started or stopped. */
  | { kind: 'lifecycle'; qubes: string[] }
  /**
   * Only connections and port forwards changed (added, removed, or replaced by new objects, never
   * edited in place): the engine patches the changed ones' keys into the nodes on their paths, or
   * converges where it cannot.
   */
  | { kind: 'links' }
  /** Anything: converge everything. */
  | { kind: 'all' };

export const ALL: Effect = { kind: 'all' };
