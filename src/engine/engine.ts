// The engine keeps the kernel (through a Backend) in step with the model. Every operation is:
// change the model, then converge — bring namespaces up or down, (re)link clients, compile, load
// each node's delta, cut flows the new rules forbid — or, for a rule edit, recompile only the
// edited clients. The daemon keeps one Engine for its lifetime (so it remembers what is loaded and
// sends deltas); the offline CLI makes one per command and tells it which model the kernel holds.
//
// This file is the façade (the types are in types.ts); the work is in converge.ts, rule-edit.ts, link-edit.ts,
// apply-node.ts (the fail-closed ladder, tidy), kernel-mirror.ts (what the kernel holds),
// flows.ts (conntrack cutting) and dns-refresh.ts.
import type { Resolution } from '../compile/dns.js';
import type { Ruleset } from '../ir/types.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { NetPlan } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import type { RuleList } from '../model/rule.js';
import { NodeLoader } from './apply-node.js';
import { Converger } from './converge.js';
import { DnsAnswers, qubesNaming, type Lookup } from './dns-refresh.js';
import { DropLog } from './drop-log.js';
import { FlowCutter } from './flows.js';
import { KernelMirror } from './kernel-mirror.js';
import { LinkEditor } from './link-edit.js';
import { RuleEditor } from './rule-edit.js';
import type { ApplyStatus, ConvergeOptions, EngineCore, EngineDeps, EngineEvent } from './types.js';

export type { ApplyState, ApplyStatus, ConvergeOptions, EngineCore, EngineDeps, EngineEvent, WorldControl } from './types.js';

export class Engine implements EngineCore {
  readonly mirror: KernelMirror;
  readonly dns: DnsAnswers;
  readonly flows: FlowCutter;
  readonly loader: NodeLoader;
  /** The daemon's drop log (deps.dropLog): readers in step with the running netvms. */
  readonly drops?: DropLog;
  private readonly converger: Converger;
  private readonly edits: RuleEditor;
  private readonly links: LinkEditor;
  /** Per client qube: how its rules stand in its netvm; per app qube: its own input rules. */
  readonly status = new Map<string, ApplyStatus>();
  plan?: NetPlan;
  /** How many applies were handled, successful or not (Qubes' qubes-firewall-handled counter). */
  handled = 0;
  lastDiagnostics: Diagnostic[] = [];

  constructor(readonly deps: EngineDeps) {
    this.mirror = new KernelMirror(deps.untidyFile);
    this.dns = new DnsAnswers(deps.resolver, (diag) => this.emit({ type: 'warning', diag }), deps.dnsFile);
    this.flows = new FlowCutter(deps.backend, (e) => this.emit(e));
    this.loader = new NodeLoader(this);
    if (deps.dropLog) this.drops = new DropLog(deps.backend, (e) => this.emit(e));
    this.converger = new Converger(this);
    this.edits = new RuleEditor(this);
    this.links = new LinkEditor(this);
  }

  emit(e: EngineEvent): void {
    this.deps.emit?.(e);
  }

  /** What is loaded in each node, as far as this engine knows. */
  get applied(): Map<string, Ruleset> {
    return this.mirror.applied;
  }

  /** The DNS answers the kernel's sets hold. */
  get resolutions(): Map<string, Resolution> {
    return this.dns.resolutions;
  }

  /** Mark running qubes whose namespace is gone as halted (killed, namespace deleted). */
  noticeDeaths(model: Model, live?: ReadonlySet<string>, onlyLoaded = false): Promise<string[]> {
    return this.converger.noticeDeaths(model, live, onlyLoaded);
  }

  /**
   * Make the kernel match the model: namespaces, links, rules, flows. Rule failures do not throw:
   * the affected qube is blocked (fail closed) and the failure is recorded and emitted.
   */
  converge(model: Model, opts: ConvergeOptions = {}): Promise<void> {
    return this.converger.converge(model, opts);
  }

  /**
   * Only these qubes' rules changed, and this engine knows what their netvms hold (the daemon):
   * their chains and sets are recompiled alone and patched in. False: converge instead.
   */
  applyRuleEdits(model: Model, qubes: readonly string[], previous?: ReadonlyMap<string, RuleList>): Promise<boolean> {
    this.drops?.see(model);
    return this.edits.applyLoaded(model, qubes, previous);
  }

  /**
   * Run the rule-edit path once with nothing loaded (RuleEditor.rehearse), and have the resolver
   * ready: the daemon, after its start.
   */
  rehearse(model: Model): Promise<void> {
    this.edits.rehearse(model);
    return this.deps.resolver.prepare?.() ?? Promise.resolve();
  }

  /**
   * Only some qubes' rules changed, and the kernel is assumed to hold compile(`before`) (the offline
   * CLI): one delta of the edited clients per netvm (`qubes`: which; default, every qube whose rule
   * list differs from `before`'s). False: converge instead.
   */
  applyRuleEditsAssumed(model: Model, before: Model, qubes?: readonly string[]): Promise<boolean> {
    return this.edits.applyAssumed(model, before, qubes);
  }

  /**
   * Only connections and forwards changed from `before` (the model this engine converged to, the
   * daemon's): the changed links' chains and elements are compiled alone and patched into what the
   * nodes on their paths hold. False: converge instead.
   */
  applyLinkEdits(model: Model, before: Model): Promise<boolean> {
    return this.links.apply(model, before);
  }

  /**
   * Only connections and forwards changed, and the kernel is assumed to hold compile(`before`) (the
   * offline CLI): one delta of the `qubes` tables of each node on the changed links' paths. False:
   * converge instead.
   */
  applyLinkEditsAssumed(model: Model, before: Model): Promise<boolean> {
    return this.links.applyAssumed(model, before);
  }

  /** Names whose answer is new or differs (see DnsAnswers.resolve; `all`: ask again even before the TTL runs out). */
  resolve(model: Model, now: number, only?: ReadonlySet<string>, all = false): Promise<Set<string>> {
    return this.dns.resolve(model, now, only, all);
  }

  /**
   * The names due of `names` (those the rules in effect use), asked, not recorded: the daemon asks
   * outside its queue of changes, so a slow resolver holds up no edit, and passes the answers in
   * to refreshNames as `asked`.
   */
  askNames(names: readonly string[]): Promise<Lookup> {
    return this.dns.ask(names, this.deps.now());
  }

  /**
   * DNS refresh (the daemon's timer; `all` for SIGHUP): names whose TTL ran out are asked again; only the qubes whose
   * rules name a changed answer are recompiled, through the rule-edit path (`naming` says which,
   * where the caller knows without reading every qube's rules). Flows to an address a name no
   * longer has are cut, as any tightening. False when that path cannot be taken (converge).
   */
  async refreshNames(model: Model, opts: { all?: boolean; asked?: Lookup; naming?: (hosts: ReadonlySet<string>) => string[] } = {}): Promise<boolean> {
    const now = this.deps.now();
    const changed = opts.asked ? await this.dns.record(opts.asked) : await this.dns.resolve(model, now, undefined, opts.all);
    if (!changed.size) return true;
    return this.applyRuleEdits(model, opts.naming ? opts.naming(changed) : qubesNaming(model, changed, now));
  }

  /** When the answer for `name` is asked again (seconds since the epoch), if the engine holds one. */
  dnsExpiry(name: string): number | undefined {
    return this.dns.expiry(name);
  }

  /** Seconds until the next DNS answer expires (for the daemon's refresh timer), or undefined. */
  nextDnsRefresh(now: number): number | undefined {
    return this.dns.nextRefresh(now);
  }

  /** Whether some node holds rules or sets an overlay left behind. */
  get needsTidy(): boolean {
    return this.mirror.needsTidy;
  }

  /** Leave every node holding exactly what compile() gives (see NodeLoader.tidy). */
  tidy(model: Model): Promise<void> {
    return this.loader.tidy(model);
  }
}
