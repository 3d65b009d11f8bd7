// The netns backend behind the engine's Backend interface: NetnsBackend does the kernel operations
// on nft text; this adds what the engine speaks — IR deltas rendered once here, links read back
// from the kernel (so a restarted daemon adopts what it finds), counters mapped to rule origins.
import { FIREWALL_TABLE } from '../../compile/names.js';
import { loadTransaction } from '../../ir/diff.js';
import { renderElement } from '../../ir/render.js';
import { emitFull } from '../../ir/emit-text.js';
import type { Ruleset } from '../../ir/types.js';
import type { NetPlan } from '../../model/netplan.js';
import { parseOrigin } from '../../model/origin.js';
import type { Backend, DropReader, DropRecord, Flow, RuleCounter } from '../backend.js';
import { DROP_LOG } from '../../model/drop-log.js';
import { readNflog } from './nflog.js';
import type { NetnsBackend } from './netns-backend.js';
import { runChecked, type Runner } from './runner.js';
import { ETC_NETNS, removeStaleEtcNetns } from './netns-dir.js';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class NetnsExecutor implements Backend {
  readonly kind = 'netns' as const;

  constructor(
    readonly netns: NetnsBackend,
    private readonly runner: Runner,
  ) {}

  private etcTidied = false;

  async live(): Promise<Set<string>> {
    // Once per executor (each daemon, each offline command that touches the kernel): what a reboot
    // or crash left in /etc/netns for namespaces of ours that are gone.
    if (!this.etcTidied) {
      this.etcTidied = true;
      await this.removeStaleEtc();
    }
    const live = new Set(await this.netns.listNamespaces());
    // A session's process would keep a namespace deleted behind our back alive, links and all.
    for (const n of this.netns.sessionNodes) if (!live.has(n)) this.netns.closeSession(n);
    return live;
  }

  async bringUp(plan: NetPlan, names: readonly string[], rules?: ReadonlyMap<string, Ruleset>): Promise<void> {
    const text = new Map([...(rules ?? [])].filter(([n]) => names.includes(n)).map(([n, rs]) => [n, emitFull(rs)]));
    await this.netns.bringUp(plan, names, { rules: text });
    await Promise.all(names.map((n) => this.writeResolvConf(plan, n)));
  }

  syncLinkRoutes(plan: NetPlan, node: string): Promise<void> {
    return this.netns.syncLinkRoutes(plan, node);
  }

  async tearDown(names: readonly string[]): Promise<void> {
    await this.netns.tearDown(names);
    await Promise.all(names.map((n) => rm(this.etcDir(n), { recursive: true, force: true })));
  }

  /** /etc/netns/<prefix><node> directories of namespaces that no longer exist, removed; their names. */
  removeStaleEtc(): Promise<string[]> {
    return removeStaleEtcNetns((ns) => this.netns.naming.node(ns) !== undefined);
  }

  /** `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf. */
  private etcDir(node: string): string {
    return join(ETC_NETNS, this.netns.ns(node));
  }

  /**
   * What a Qubes qube finds in its resolv.conf: the virtual resolvers 10.139.1.1/.2 (its netvm
   * DNATs them upstream); a top net qube gets its real upstream (the world's, or the host's for
   * veth-host and move:DEV). The world resolves nothing; the host's own file is never touched.
   */
  private async writeResolvConf(plan: NetPlan, name: string): Promise<void> {
    const node = plan.nodes.find((n) => n.name === name);
    if (!node || node.kind !== 'qube' || !node.ifaces.length) return;
    const kind = (n: string) => plan.nodes.find((x) => x.name === n)?.kind;
    const top = node.ifaces.some((i) => i.physical || (i.peer !== undefined && kind(i.peer.node) !== 'qube'));
    const servers = top ? plan.upstreamDns : plan.virtualDns;
    if (!servers.length) return;
    await mkdir(this.etcDir(name), { recursive: true });
    await writeFile(join(this.etcDir(name), 'resolv.conf'), servers.map((s) => `nameserver ${s}\n`).join(''));
  }

  relink(plan: NetPlan, client: string): Promise<void> {
    return this.netns.relink(plan, client);
  }

  /**
   * Which namespace each vif of these netvms leads to: the peer of a veth is named by its
   * link-netnsid, which `ip netns list-id nsid N` (run in the same namespace) maps to a namespace
   * name. One lookup per peer, all in one `ip -batch`: the unfiltered `ip netns list-id` of
   * iproute2 6.1 stops after one netlink message (134 ids), so with more clients the rest looked
   * unlinked and every converge relinked them.
   */
  async links(netvms: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    await Promise.all(
      netvms.map(async (nv) => {
        const ns = this.netns.ns(nv);
        const links = await runChecked(this.runner, ['ip', '-n', ns, '-j', 'link', 'show', 'type', 'veth']).catch(() => '[]');
        // Every veth but eth0 leads downstream (vif<qid>.0 in a netvm, up<qid> in the world).
        const down = (JSON.parse(links || '[]') as { ifname: string; link_netnsid?: number }[]).filter((l) => l.ifname !== 'eth0' && l.link_netnsid !== undefined);
        const ids = [...new Set(down.map((l) => l.link_netnsid!))];
        if (!ids.length) return;
        const batch = ids.map((id) => `netns list-id nsid ${id}\n`).join('');
        const answer = await runChecked(this.runner, ['ip', '-n', ns, '-j', '-batch', '-'], { stdin: batch }).catch(() => '');
        const names = new Map<number, string | undefined>();
        for (const line of answer.split('\n')) {
          if (!line.startsWith('[')) continue;
          for (const x of JSON.parse(line) as { nsid: number; name?: string }[]) names.set(x.nsid, x.name);
        }
        for (const l of down) {
          const peerNs = names.get(l.link_netnsid!);
          const peer = peerNs === undefined ? undefined : this.netns.naming.node(peerNs);
          if (peer !== undefined) out.set(peer, nv);
        }
      }),
    );
    return out;
  }

  async apply(node: string, before: Ruleset | null, after: Ruleset, opts?: { overlay?: boolean; keep?: boolean | 'next' }): Promise<Ruleset> {
    const { tx, holds, overlaid } = loadTransaction(before, after, opts?.overlay);
    const fw = after.tables.find((x) => x.name === FIREWALL_TABLE);
    const warm = warmCommand(after, tx.ops.some((op) => op.op === 'add-element' || op.op === 'delete-element'));
    await this.netns.loadRules(node, tx.toString(), {
      // A node whose rules are edited keeps an nft session (the daemon's): its next loads use it too.
      // A netvm (it holds client chains) is where edits land: its session is ready from the first
      // load on, so the first edit finds nft started and its cache warm too.
      keep: overlaid || fw !== undefined || (opts?.keep ?? false),
      ...(warm ? { warm } : {}),
    });
    return holds;
  }

  readDrops(node: string, onDrop: (d: DropRecord) => void, onEnd: (why: string) => void): DropReader {
    return readNflog(`/run/netns/${this.netns.ns(node)}`, DROP_LOG.group, ({ prefix, ...r }) => onDrop({ node, origin: parseOrigin(prefix), ...r }), onEnd);
  }

  chainSizes(node: string): Promise<Map<string, number>> {
    return this.netns.chainSizes(node);
  }

  async counters(node: string): Promise<RuleCounter[]> {
    return (await this.netns.counters(node)).map((c) => ({
      node,
      family: c.family,
      table: c.table,
      chain: c.chain,
      comment: c.comment ?? '',
      origin: c.comment === undefined ? null : parseOrigin(c.comment),
      packets: c.packets,
      bytes: c.bytes,
    }));
  }

  async flows(node: string, family?: 4 | 6): Promise<Flow[]> {
    return (await this.netns.flows(node, family)).map((f) => ({
      family: f.family,
      proto: f.proto,
      src: f.src,
      dst: f.dst,
      ...(f.sport !== undefined ? { sport: f.sport } : {}),
      ...(f.dport !== undefined ? { dport: f.dport } : {}),
      ...(f.state !== undefined ? { state: f.state } : {}),
    }));
  }

  async deleteFlow(node: string, f: Flow): Promise<void> {
    // A Flow is a FlowSelector; NetnsBackend.deleteFlow keeps only the selector's fields.
    await this.netns.deleteFlow(node, f);
  }
}

/**
 * What the node's nft session warms its cache with after a load (nft-session.ts): something `after`
 * holds, added again, so nothing is committed. After a load with element commands (a link edit's
 * map keys), the next one likely has them too, and nft then needs every set's elements: an element
 * of a plain (not interval) set, which nft adds back without comparing ranges; otherwise, or with
 * no such element, a table (`add table … { }` needs the tables, chains and sets any rule needs).
 */
export function warmCommand(after: Ruleset, elements: boolean): string | undefined {
  // A table with a comment is left out: `add table` without it might be taken as a change of it.
  const plain = after.tables.filter((t) => t.comment === undefined);
  const table = plain.find((t) => t.name === FIREWALL_TABLE) ?? plain[0];
  if (!table) return undefined;
  if (elements)
    for (const t of after.tables)
      for (const s of t.sets)
        if (!s.interval && s.elements.length) return `add element ${t.family} ${t.name} ${s.name} { ${renderElement(s.elements[0]!, s.kind === 'map')} }`;
  return `add table ${table.family} ${table.name} { }`;
}
