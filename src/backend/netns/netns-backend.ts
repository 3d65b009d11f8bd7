// The netns executor: qubes as network namespaces, veth pairs between them, nftables inside.
// Stateless on purpose: the kernel is the state. Namespaces are named `<prefix><qube>`, so a
// restarted daemon adopts what it finds with listNamespaces(), and a dead netvm shows as a missing
// name. Every process goes through the Runner (or the InteractiveRunner for `qnet run`).
// The real uplinks touch the host's own namespace; all of that is in uplink.ts.
import type { NetPlan, UplinkKind } from '../../model/netplan.js';
import { hostLinkTag } from '../../model/topology.js';
import { runChecked, type Runner } from './runner.js';
import {
  classifyCommandError,
  CODES,
  createNamespaces,
  deleteNamespaces,
  listNodes,
  Naming,
  NETNS_DIR,
  NetnsError,
  linkRouteLines,
  LINK_ROUTE_PROTO,
  parseUplinks,
  planBringUp,
  runBatch,
  runLimited,
  runSweep,
  validateNodeName,
  type BringUpSteps,
} from './links.js';
import { FORWARDING, setSysctls, type Sysctls } from './sysctl.js';
import { checkRuleset, listChainSizes, listCounters, loadRuleset, nftRefusal, type RuleCounter } from './nft.js';
import { NftSession, SessionError } from './nft-session.js';
import { ResolverSession } from './resolver-session.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteFlows, listFlows, type Flow, type FlowSelector } from './conntrack.js';
import { execArgv, NodeInteractiveRunner, type InteractiveRunner } from './exec.js';
import { diag } from '../../model/diagnostics.js';
import { ensureHostUplink, lastHostLinkGoes, moveDevice, releaseHostUplink } from './uplink.js';

export interface NetnsBackendOptions {
  runner: Runner;
  /** Namespace name prefix (default `qnet-`); tests use a unique one per run. */
  prefix?: string;
  /** For `exec` (inherited stdio). Default: node's spawn. */
  interactive?: InteractiveRunner;
  /**
   * Keep an `nft -i` for each node whose rules are edited (nft-session.ts): for the daemon, which
   * must close() the backend when it stops. Off by default (a one-shot CLI run gains nothing).
   */
  sessions?: boolean;
  /** How many sessions opened for a next load (`keep: 'next'`) stay open; default 16. */
  spareSessions?: number;
  /** Extra sysctls for every namespace brought up, e.g. NO_ICMP_RATELIMIT in tests. */
  sysctls?: Sysctls;
  /** Processes in flight at once (default 8; the host has few CPUs and spawns are CPU-bound). */
  concurrency?: number;
  /**
   * The uplink the plans use. With `veth-host`, tearing down a namespace also looks at the host's
   * veths, and removes qnet's host table when the last link goes.
   */
  uplink?: UplinkKind;
  /**
   * Read for the live namespaces (default /run/netns); where it cannot be read, `ip netns list` is
   * asked. Unit tests with a ScriptedRunner name a missing one, so their scripts see that command.
   */
  netnsDir?: string;
}

export interface BringUpOptions {
  /**
   * nft text to load into fresh namespaces before any link exists, so a netvm never forwards
   * unfiltered, not even for the milliseconds between bring-up and the first rule load.
   */
  rules?: ReadonlyMap<string, string>;
}

/** How long after its nft -f a spare session is opened (keep 'next'): after the edit's other loads. */
const SPARE_OPEN_DELAY_MS = 200;

export class NetnsBackend {
  readonly naming: Naming;
  /** Tags this prefix's host interfaces (`qnh<tag>-<qid>`) and host table (`ip qnet-uplink-<tag>`). */
  readonly hostTag: string;
  private readonly uplink: UplinkKind | undefined;
  private readonly runner: Runner;
  private readonly interactive: InteractiveRunner;
  private readonly extraSysctls: Sysctls;
  private readonly limit: number;
  private readonly netnsDir: string;
  private useSessions: boolean;
  /** Whether resolverSession() keeps resolvers (the daemon); unlike useSessions, nft's answers do not end it. */
  private readonly keepResolvers: boolean;
  /** The sessions' transaction files: a private directory, made on first use. */
  private sessionDir?: string;
  /**
   * One per node loaded with `keep`, for the backend's life: no idle timeout, because an edit after
   * a quiet spell should not pay nft's start and a cold cache (see nft-session.ts). Each holds a
   * process in its namespace, so it ends with the namespace (tearDown, live()) or the daemon (close()).
   */
  private readonly sessions = new Map<string, { session: NftSession }>();
  /** Sessions opened for a next load (`keep: 'next'`), least recently used first. */
  private spare: string[] = [];
  /** How many of those stay open (each is an nft process; app qubes a link edit loaded). */
  private readonly spareSessions: number;
  /** Spare sessions about to be opened (openLater). */
  private readonly opening = new Map<string, NodeJS.Timeout>();

  constructor(opts: NetnsBackendOptions) {
    this.useSessions = opts.sessions === true;
    this.keepResolvers = opts.sessions === true;
    this.spareSessions = opts.spareSessions ?? 16;
    this.runner = opts.runner;
    this.naming = new Naming(opts.prefix);
    this.hostTag = hostLinkTag(this.naming.prefix);
    this.uplink = opts.uplink;
    this.interactive = opts.interactive ?? new NodeInteractiveRunner();
    this.extraSysctls = opts.sysctls ?? {};
    this.limit = opts.concurrency ?? 8;
    this.netnsDir = opts.netnsDir ?? NETNS_DIR;
  }

  /** The namespace of a qube. */
  ns(qube: string): string {
    return this.naming.ns(qube);
  }

  /** Qubes (plan nodes) with a live namespace under this prefix, sorted. */
  listNamespaces(): Promise<string[]> {
    return listNodes(this.runner, this.naming, this.netnsDir);
  }

  /**
   * Create namespaces for `names` and every link of the plan whose two ends then exist. Nodes named
   * must not exist yet. A netvm brought back up reattaches its running clients. On failure the
   * namespaces created by this call are removed again and the first error is thrown.
   */
  async bringUp(plan: NetPlan, names: readonly string[], opts: BringUpOptions = {}): Promise<void> {
    const live = new Set(await this.listNamespaces());
    const steps = planBringUp(plan, { fresh: names, live }, this.naming);
    await createNamespaces(this.runner, steps.create);
    try {
      await this.configure(steps, names, opts, [...live]);
    } catch (e) {
      await this.deleteNamespaces(steps.create).catch(() => {});
      throw e;
    }
  }

  private async configure(steps: BringUpSteps, fresh: readonly string[], opts: BringUpOptions, live: readonly string[] = []): Promise<void> {
    const fwd = new Set(steps.forwarding);
    const sysctlTasks = fresh
      .map((n) => ({ n, s: { ...(fwd.has(n) ? FORWARDING : {}), ...this.extraSysctls } }))
      .filter(({ s }) => Object.keys(s).length)
      .map(({ n, s }) => () => setSysctls(this.runner, this.ns(n), s, n));
    const ruleTasks = fresh
      .filter((n) => opts.rules?.has(n))
      .map((n) => () => loadRuleset(this.runner, this.ns(n), opts.rules!.get(n)!, n));
    await runLimited([...sysctlTasks, ...ruleTasks], this.limit);
    await runLimited(steps.sweep.map((b) => () => runSweep(this.runner, b)), this.limit);
    for (const m of steps.moves) await moveDevice(this.runner, this.naming, m, live);
    await this.linkLevels(steps);
  }

  /** The batches level by level; before the first veth to the host, the host is made ready for it. */
  private async linkLevels(steps: BringUpSteps): Promise<void> {
    if (steps.levels.some((l) => l.some((b) => b.host && b.lines.length))) await ensureHostUplink(this.runner, this.hostTag);
    for (const level of steps.levels) await runLimited(level.map((b) => () => runBatch(this.runner, b)), this.limit);
  }

  /** Delete the namespaces of `names` (and so their veths); missing ones are not an error. */
  async tearDown(names: readonly string[]): Promise<void> {
    for (const n of names) this.closeSession(n);
    await this.deleteNamespaces(names.map((n) => this.ns(n)));
  }

  /** With `veth-host`: when the last link to the host goes with these, qnet's host table goes too. */
  private async deleteNamespaces(nss: readonly string[]): Promise<void> {
    if (!nss.length) return;
    const release = this.uplink === 'veth-host' && (await lastHostLinkGoes(this.runner, this.naming, this.hostTag, new Set(nss)));
    await deleteNamespaces(this.runner, nss);
    if (release) await releaseHostUplink(this.runner, this.hostTag);
  }

  /**
   * Live netvm change: remove the client's uplink veths (every veth not in group 2), then make the
   * links the plan gives it now. Its namespace, its own clients, rules and flows stay. If the new
   * netvm is not running the client is left with no uplink, as a Qubes qube whose netvm is halted.
   */
  /** Make `node`'s connection routes (proto 188) what the plan says: one read, one batch. */
  async syncLinkRoutes(plan: NetPlan, node: string): Promise<void> {
    validateNodeName(node);
    const ns = this.ns(node);
    const wanted = plan.nodes.find((n) => n.name === node)?.routes.filter((r) => r.forLink) ?? [];
    const existing = await Promise.all(
      ([4, 6] as const).map(async (family) => ({
        family,
        json: await runChecked(this.runner, ['ip', '-n', ns, '-j', `-${family}`, 'route', 'show', 'proto', String(LINK_ROUTE_PROTO)]).catch((e) => {
          throw classifyCommandError(e, node);
        }),
      })),
    );
    await runBatch(this.runner, { node, ns, lines: linkRouteLines(existing, wanted) });
  }

  async relink(plan: NetPlan, client: string): Promise<void> {
    validateNodeName(client);
    const live = new Set(await this.listNamespaces());
    if (!live.has(client))
      throw new NetnsError(diag(CODES.notRunning, `${client} has no namespace`, { qube: client, hint: 'start it first' }));
    const ns = this.ns(client);
    const json = await runChecked(this.runner, ['ip', '-n', ns, '-j', 'link', 'show', 'type', 'veth']).catch((e) => {
      throw classifyCommandError(e, client);
    });
    const old = parseUplinks(json);
    if (old.length) await runBatch(this.runner, { node: client, ns, lines: old.map((i) => `link del dev ${i}`) });
    const steps = planBringUp(plan, { fresh: [], touch: [client], live }, this.naming);
    await this.linkLevels(steps);
  }

  /** Once every session has done what was queued so far: loads and the warm-ups after them. */
  async settled(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.session.idle()));
  }

  /**
   * Replace rules in a qube's namespace with one atomic transaction: with `keep` (and sessions on),
   * through the node's `nft -i` session, opened if need be; otherwise, or if the session itself
   * fails, with `nft -f`. `keep: 'next'`: this load by `nft -f` (unless a session is open), and
   * shortly after (openLater) a session opened for the next load (an app qube at the end of a link
   * just added: its removal comes next; at most `spareSessions` such, the least recently used
   * closed first). `warm`: a command that adds only what the transaction leaves in place, to
   * refill the session's nft cache with afterwards (nft-session.ts).
   */
  async loadRules(qube: string, nftText: string, opts: { keep?: boolean | 'next'; warm?: string } = {}): Promise<void> {
    const session = this.session(qube, opts.keep === true);
    if (session) {
      try {
        // A whole netvm's first load goes this way too: allow for its size (a 10 MB text, 40 s).
        await session.load(nftText, { timeoutMs: 30_000 + nftText.length / 1000, ...(opts.warm === undefined ? {} : { warm: opts.warm }) });
        if (this.spare.includes(qube)) this.spare = [...this.spare.filter((n) => n !== qube), qube];
        return;
      } catch (e) {
        if (e instanceof SessionError) throw nftRefusal(e.output, this.ns(qube), qube);
        this.closeSession(qube); // the session broke, not the rules
        // Only an nft that answers otherwise ends sessions for good; a start that failed (namespace
        // gone, timeout on a busy host) costs this load its session, not the next ones.
        if (session.refused) this.useSessions = false;
      }
    }
    await loadRuleset(this.runner, this.ns(qube), nftText, qube);
    if (opts.keep === 'next' && this.useSessions) this.openLater(qube, opts.warm);
  }

  /**
   * Open `qube`'s session a little later, off the edit's way: starting a process forks the daemon,
   * and its event loop waits for the fork. Done at once, the netvms' loads of the same link edit
   * ended about 20 ms later (measured at 2,000 links; the slowest load of an add 36-40 ms → 30).
   */
  private openLater(qube: string, warm: string | undefined): void {
    if (this.opening.has(qube)) return;
    this.opening.set(
      qube,
      setTimeout(() => {
        this.opening.delete(qube);
        if (!this.useSessions || this.sessions.has(qube)) return;
        const next = this.session(qube, true)!;
        if (warm !== undefined) next.warm(warm);
        this.spare = [...this.spare.filter((n) => n !== qube), qube];
        while (this.spare.length > this.spareSessions) this.closeSession(this.spare[0]!);
      }, SPARE_OPEN_DELAY_MS).unref(),
    );
  }

  /** The node's open session; with `open`, one is started if there is none. */
  private session(qube: string, open: boolean): NftSession | undefined {
    if (!this.useSessions) return undefined;
    let entry = this.sessions.get(qube);
    if (entry && !entry.session.alive) {
      this.closeSession(qube);
      entry = undefined;
    }
    if (!entry) {
      if (!open) return undefined;
      const ns = this.ns(qube); // validates the name, before any directory is made
      this.sessionDir ??= mkdtempSync(join(tmpdir(), 'qnet-nft-'));
      entry = { session: new NftSession(`/run/netns/${ns}`, this.sessionDir, ns) };
      this.sessions.set(qube, entry);
    }
    return entry.session;
  }

  /** Long-lived resolvers, by node: the daemon's names are asked in the top netvm (resolver-session.ts). */
  private readonly resolvers = new Map<string, ResolverSession>();

  /** The node's resolver session, opened if there is none or it broke; undefined without sessions (a CLI run). */
  resolverSession(qube: string): ResolverSession | undefined {
    if (!this.keepResolvers) return undefined;
    let r = this.resolvers.get(qube);
    if (r && !r.alive) r = void this.resolvers.delete(qube);
    if (!r) this.resolvers.set(qube, (r = new ResolverSession(this.ns(qube))));
    return r;
  }

  /** The resolver sessions' processes, by node (tests: each runs in its node's namespace, none outlives it). */
  get resolverPids(): Map<string, number | undefined> {
    return new Map([...this.resolvers].map(([n, r]) => [n, r.pid]));
  }

  /** End a node's sessions, nft's and the resolver's (its namespace is going, or it broke). */
  closeSession(qube: string): void {
    this.cancelOpening(qube);
    this.resolvers.get(qube)?.close();
    this.resolvers.delete(qube);
    const entry = this.sessions.get(qube);
    if (!entry) return;
    this.sessions.delete(qube);
    this.spare = this.spare.filter((n) => n !== qube);
    entry.session.close();
  }

  /** A spare session not opened after all (its namespace is going, or the backend closes). */
  private cancelOpening(qube: string): void {
    clearTimeout(this.opening.get(qube));
    this.opening.delete(qube);
  }

  /** Nodes with a session now (what live() prunes, tests). */
  get sessionNodes(): string[] {
    return [...new Set([...this.sessions.keys(), ...this.resolvers.keys()])];
  }

  /** End every session and remove their directory: the daemon stops. */
  close(): void {
    for (const n of [...this.opening.keys()]) this.cancelOpening(n);
    for (const n of this.sessionNodes) this.closeSession(n);
    if (this.sessionDir !== undefined) rmSync(this.sessionDir, { recursive: true, force: true });
    this.sessionDir = undefined;
  }

  /** `nft -c`: in the qube's namespace if given (its loaded objects resolve), else where we run. */
  checkRules(nftText: string, qube?: string): Promise<void> {
    return checkRuleset(this.runner, nftText, qube === undefined ? undefined : this.ns(qube), qube);
  }

  counters(qube: string): Promise<RuleCounter[]> {
    return listCounters(this.runner, this.ns(qube), qube);
  }

  /** Rules per chain in the node's kernel (nft.ts parseChainSizes). */
  chainSizes(qube: string): Promise<Map<string, number>> {
    return listChainSizes(this.runner, this.ns(qube), qube);
  }

  /** Conntrack entries of both families (or one). */
  async flows(qube: string, family?: 4 | 6): Promise<Flow[]> {
    const fams: (4 | 6)[] = family ? [family] : [4, 6];
    const lists = await Promise.all(fams.map((f) => listFlows(this.runner, this.ns(qube), f, qube)));
    return lists.flat();
  }

  /** Delete the flows matching `flow` (a Flow works as its own selector); returns the number deleted. */
  deleteFlow(qube: string, flow: FlowSelector): Promise<number> {
    // Only the selector's fields: a whole Flow (reply tuple, flags…) would clutter an invalid-selector error.
    const { proto, src, dst, sport, dport } = flow;
    return deleteFlows(this.runner, this.ns(qube), { proto, src, dst, sport, dport }, qube);
  }

  /** Run a program in the qube's namespace with the terminal attached; resolves to its exit code. */
  exec(qube: string, argv: readonly string[], opts: { user?: string } = {}): Promise<number> {
    return this.interactive.runInteractive(execArgv(this.ns(qube), argv, opts.user));
  }
}
