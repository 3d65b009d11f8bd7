// Running qubes: start (with their netvm chains), shutdown (a netvm with running clients refuses
// unless forced), kill, and the counters of a running qube's rules at every hop (qvm-start,
// qvm-shutdown, qvm-kill; the guide's `iptables -L -v -n`, done for you).
import * as v from 'valibot';
import { netvmName } from '../model/addressing.js';
import { connectionsOf, forwardsOf } from '../model/connection.js';
import { diag, warning } from '../model/diagnostics.js';
import { groupDrops, type DropEntry, type DropGroup } from '../model/drop-log.js';
import { getQube } from '../model/ops.js';
import { describeOrigin, type Origin } from '../model/origin.js';
import type { Model } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { netvmChain, runningClients, startSet } from '../model/topology.js';
import { qubeName, qubeNames } from './schema.js';
import { defineOp, result, type OpResult } from './types.js';

const names = qubeNames;

/** Names to stop, refusing a netvm with running clients (that are not stopping too) unless forced. */
function shutdownSet(model: Model, names: readonly string[], force: boolean): string[] {
  for (const n of names) getQube(model, n);
  const stopping = new Set(names);
  if (!force)
    for (const n of names) {
      const users = runningClients(model, n).filter((c) => !stopping.has(c.name));
      if (users.length)
        throw new QnetError(
          diag('QNET2101', `there are other qubes connected to ${n}: ${users.map((u) => u.name).join(', ')}`, {
            qube: n,
            hint: `shut them down first, or use --force (they stay running, detached)`,
          }),
        );
    }
  return names.filter((n) => model.qubes.get(n)!.state === 'Running');
}

export const start = defineOp({
  name: 'start',
  kind: 'change',
  summary: 'start qubes, and their netvm chains first (qvm-start)',
  input: v.strictObject({ qubes: v.pipe(names, v.minLength(1)) }),
  run: async (i, host) => {
    const before = await host.runtime();
    const after = await host.runtime({ start: true });
    const { runtimeWarnings } = await import('../engine/wiring.js');
    const warnings = runtimeWarnings(host.stateDir, before, after);
    const started = await host.change({ kind: 'lifecycle', qubes: i.qubes }, (m) => {
      for (const n of i.qubes) {
        const q = getQube(m, n);
        if (q.klass === 'TemplateVM') throw new QnetError(diag('QNET2102', `${n} is a template: templates are not started here`, { qube: n }));
      }
      const set = startSet(m, i.qubes);
      for (const q of set) q.state = 'Running';
      return set.map((q) => q.name);
    });
    return result({ started }, warnings);
  },
});

export const shutdown = defineOp({
  name: 'shutdown',
  kind: 'change',
  summary: 'stop qubes (qvm-shutdown); a netvm with running clients refuses unless force; all stops every running qube',
  input: v.strictObject({ qubes: v.optional(names, []), all: v.optional(v.boolean(), false), force: v.optional(v.boolean(), false) }),
  run: async (i, host) => {
    if (!i.all && !i.qubes.length) throw new QnetError(diag('QNET2107', 'name the qubes to stop, or use --all'));
    const stopped = await host.change({ kind: 'lifecycle', qubes: i.qubes }, (m) => {
      const all = i.all ? [...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name) : i.qubes;
      const set = shutdownSet(m, all, i.force || i.all);
      for (const n of set) m.qubes.get(n)!.state = 'Halted';
      return set;
    });
    return result({ stopped });
  },
});

export const kill = defineOp({
  name: 'kill',
  kind: 'change',
  summary: 'stop qubes at once, without the running-clients check (qvm-kill)',
  input: v.strictObject({ qubes: v.pipe(names, v.minLength(1)) }),
  run: async (i, host) => {
    const stopped = await host.change({ kind: 'lifecycle', qubes: i.qubes }, (m) => {
      const was = i.qubes.filter((n) => getQube(m, n).state === 'Running');
      for (const n of i.qubes) getQube(m, n).state = 'Halted';
      return was;
    });
    return result({ stopped });
  },
});

export interface CounterRow {
  hop: string;
  chain: string;
  /** The origin as people read it (`work rule 3`, `policy: work default drop`). */
  rule: string;
  /** The same, structured (model/origin.ts): which qube's rule, policy, base part, connection or forward. */
  origin: Origin;
  packets: number;
  bytes: number;
  /**
   * When the count last grew, as far as the daemon saw between its reads (ISO); null: not since
   * it first read it. Absent without a daemon (nobody remembers an earlier read).
   */
  lastHit?: string | null;
}

export const counters = defineOp({
  name: 'counters',
  kind: 'read',
  summary: "packets and bytes per rule, per hop of the qube's netvm chain, mapped back to its rules",
  input: v.strictObject({ qube: qubeName, all: v.optional(v.boolean(), false) }),
  run: async (i, host): Promise<OpResult<CounterRow[]>> => {
    const m = await host.read();
    const q = getQube(m, i.qube);
    if (q.state !== 'Running') throw new QnetError(diag('QNET2103', `${i.qube} is not running`, { hint: `qnet start ${i.qube}` }));
    const hops = [q, ...netvmChain(m, q)].filter((h) => h.state === 'Running');
    const rows: CounterRow[] = [];
    // Its connections (either end) and forwards count too, wherever on this chain they have rules.
    const links = new Set([
      ...connectionsOf(m).filter((c) => c.from === i.qube || c.to === i.qube).map((c) => `connection ${c.id}`),
      ...forwardsOf(m).filter((f) => f.qube === i.qube).map((f) => `forward ${f.id}`),
    ]);
    for (const hop of hops) {
      // In its first netvm a qube's traffic meets its own rules; further up it travels as its
      // netvm's (masqueraded), so there the netvm's rules count it.
      const whose = hop === q ? i.qube : netvmName(m, q) === hop.name ? i.qube : hops[hops.indexOf(hop) - 1]!.name;
      for (const c of await host.counters(hop.name)) {
        // The kernel's comments parse back to structured origins: no matching of prose.
        const src = c.origin;
        const mine =
          ((src?.kind === 'rule' || src?.kind === 'rules' || src?.kind === 'policy') && src.qube === whose) ||
          ((src?.kind === 'connection' || src?.kind === 'forward') && links.has(`${src.kind} ${src.id}`));
        if (src && (mine || (i.all && src.kind === 'base')))
          rows.push({
            hop: hop.name,
            chain: `${c.family} ${c.table} ${c.chain}`,
            rule: describeOrigin(src),
            origin: src,
            packets: c.packets,
            bytes: c.bytes,
            ...(c.lastHit !== undefined ? { lastHit: c.lastHit === null ? null : new Date(c.lastHit).toISOString() } : {}),
          });
      }
    }
    return result(rows);
  },
});

const EntrySchema = v.object({
  time: v.string(),
  hop: v.string(),
  qube: v.string(),
  origin: v.object({ kind: v.string() }),
  decidedBy: v.string(),
  rule: v.optional(v.number()),
  ruleText: v.optional(v.string()),
  family: v.picklist([4, 6]),
  src: v.string(),
  dst: v.string(),
  proto: v.string(),
  dport: v.optional(v.number()),
  icmpType: v.optional(v.number()),
  length: v.number(),
});
const GroupSchema = v.object({
  qube: v.string(),
  dst: v.string(),
  proto: v.string(),
  dport: v.optional(v.number()),
  count: v.number(),
  first: v.string(),
  last: v.string(),
  decidedBy: v.string(),
  rule: v.optional(v.number()),
  ruleText: v.optional(v.string()),
  hop: v.string(),
  allow: v.object({ qube: v.string(), rule: v.string(), before: v.optional(v.number()) }),
});

export interface DropLogView {
  /** The most recent entries, oldest first (at most `limit`). */
  entries: DropEntry[];
  /** Every entry kept, grouped by qube, destination, protocol and port; the latest group first. */
  groups: DropGroup[];
}

export const log = defineOp({
  name: 'log',
  kind: 'read',
  summary: "refused first packets, read from each running netvm's kernel by the daemon and mapped to qube and rule: recent entries and groups by qube, destination and port",
  input: v.strictObject({ qube: v.optional(qubeName), limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000)), 200) }),
  output: v.object({ entries: v.array(EntrySchema), groups: v.array(GroupSchema) }),
  run: async (i, host): Promise<OpResult<DropLogView>> => {
    const all = host.drops?.(i.qube);
    if (!all)
      throw new QnetError(
        diag('QNET6120', 'the drop log needs the daemon: it reads what each running netvm refuses while it runs, and keeps the last entries in memory', {
          hint: 'qnet daemon (systemctl start qnet)',
        }),
      );
    // The simulator has no kernel to log anything: say so rather than show an empty log as "nothing refused".
    const sim = (await host.runtime())?.backend === 'sim';
    const warnings = sim ? [warning('QNET6121', 'the qubes run on the simulator, which logs nothing: the drop log reads what the kernels of running netvms refuse', { hint: 'qnet check SRC DST explains a refusal on the simulator' })] : [];
    return result({ entries: all.slice(-i.limit), groups: groupDrops(all) }, warnings);
  },
});
