// The rule-edit path, the commonest change: only some qubes' rules changed. Each edited client's
// chain and sets are compiled alone and reach its netvm as one small delta (EXAMPLES.md Example 2):
// * the daemon's engine knows what it loaded: the fragments are patched into that ruleset, and
//   loaded as an overlay (EngineDeps.overlay) that tidy() cleans up later;
// * the offline CLI's fresh engine assumes the kernel holds compile() of the model before the
//   change: each client is compiled before and after, and the delta between the two is loaded.
// Either returns false when it cannot take this path; the caller then converges.
import { compile, compileClient, type ClientFragment, type CompileInput } from '../compile/compile.js';
import { clientSets, clientsRuleset, patchClient, renameSetsApart } from '../compile/fragments.js';
import { diffTransaction, loadTransaction } from '../ir/diff.js';
import type { Ruleset } from '../ir/types.js';
import { netvmName } from '../model/addressing.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { onlyOpens } from '../model/firewall-ops.js';
import type { Model } from '../model/qube.js';
import { effectiveRules, type RuleList } from '../model/rule.js';
import { clientsOf, netvmChain, planNetwork } from '../model/topology.js';
import type { EngineCore } from './types.js';

/** Overlays before an edit tidies up first (a burst of edits leaves this many clients' old rules at most). */
const MAX_OVERLAYS = 32;

export class RuleEditor {
  constructor(private readonly core: EngineCore) {}

  /** The daemon's path: patch into what each netvm has loaded. `previous`: the rules before, to skip flow cutting for opening edits. */
  async applyLoaded(model: Model, qubes: readonly string[], previous?: ReadonlyMap<string, RuleList>): Promise<boolean> {
    const { core } = this;
    const { mirror } = core;
    const plan = core.plan;
    if (!plan) return false;
    const now = core.deps.now();
    const byNetvm = this.byNetvm(model, qubes);
    for (const nv of byNetvm.keys()) if (!mirror.applied.has(nv)) return false;
    // A long burst of edits is tidied now and then, so what overlays leave stays bounded.
    if (mirror.overlays >= MAX_OVERLAYS) await core.loader.tidy(model);
    // Only names no answer is held for: an expired answer is what the kernel's sets hold for every
    // other rule naming it, and the daemon's refresh timer asks again and recompiles who names it
    // if it changed. Asking here would put a DNS round trip (hundreds of ms at worst) in front of
    // the kernel for an edit that named nothing new.
    await core.dns.resolveMissing(model, now, new Set(qubes));
    const input = { model, plan, resolutions: core.dns.resolutions, now, shardClients: core.deps.shardClients };
    for (const [nv, clients] of byNetvm) {
      const before = mirror.applied.get(nv)!;
      const pending = mirror.untidy.get(nv);
      let after = pending?.live ?? before;
      let canonical = pending?.canonical ?? before;
      for (const c of clients) {
        const { live, named, diagnostics } = this.patch(input, nv, c, before, after, canonical);
        for (const d of diagnostics) if (d.severity === 'warning') core.emit({ type: 'warning', diag: d });
        if (!live || !named) return false;
        after = live;
        canonical = named;
      }
      const mayClose = clients.filter((c) => {
        const old = previous?.get(c);
        return old === undefined || !onlyOpens(effectiveRules(old, now), effectiveRules(model.qubes.get(c)!.rules, now));
      });
      if (await core.loader.apply(model, nv, before, after, canonical)) await core.flows.cut(model, nv, after, mayClose);
    }
    return true;
  }

  /**
   * One client compiled alone and patched into what its netvm holds (`after`, live) and into the
   * same under compile()'s names (`canonical`). An overlay keeps the kernel's sets until tidy():
   * new sets need names of their own.
   */
  private patch(input: CompileInput, nv: string, client: string, before: Ruleset, after: Ruleset, canonical: Ruleset): { live: Ruleset | null; named: Ruleset | null; diagnostics: Diagnostic[] } {
    const { fragments, diagnostics } = compileClient(input, nv, client);
    if (!this.core.deps.overlay) {
      const live = patchClient(after, fragments);
      return { live, named: live, diagnostics };
    }
    const apart = (f: ClientFragment) => renameSetsApart(f, new Map(clientSets(after, f).map((x) => [x.name, x])), new Set(clientSets(before, f).map((x) => x.name)));
    return { live: patchClient(after, fragments.map(apart)), named: patchClient(canonical, fragments), diagnostics };
  }

  /**
   * The daemon's edit path run with nothing loaded: compile, patch and the overlay's transaction
   * for one running client of each loaded netvm. V8 compiles a function on its first call, and
   * the indexes of each netvm's firewall tables are made on first use: a daemon's first edit took
   * 60-70 ms to the kernel, against 20 for the next ones.
   */
  rehearse(model: Model): void {
    const { core } = this;
    if (!core.plan) return;
    const input = { model, plan: core.plan, resolutions: core.dns.resolutions, now: core.deps.now(), shardClients: core.deps.shardClients };
    for (const [nv, before] of core.mirror.applied) {
      const client = model.qubes.get(nv)?.provides_network ? clientsOf(model, nv).find((c) => c.state === 'Running') : undefined;
      if (!client) continue;
      const { live } = this.patch(input, nv, client.name, before, before, before);
      if (live) void loadTransaction(before, live, core.deps.overlay).tx.toString();
    }
  }

  /**
   * The offline path: `model` differs from `before` (whose compile() the kernel holds) only in some
   * qubes' rules. False when a netvm is named in the untidy file (it is loaded whole by converge), a
   * client is new to its netvm, or the load fails (nothing changed: nft is atomic).
   */
  async applyAssumed(model: Model, before: Model, qubes?: readonly string[]): Promise<boolean> {
    const { core } = this;
    const now = core.deps.now();
    // Named by the caller where it knows them: then no other qube's rules are looked at (a
    // rules-only FileStore update reads those files only when asked).
    const edited = qubes ?? [...model.qubes.values()].filter((q) => before.qubes.get(q.name)?.rules !== q.rules).map((q) => q.name);
    const byNetvm = this.byNetvm(model, edited);
    const leftovers = await core.mirror.readUntidyFile();
    if ([...byNetvm.keys()].some((nv) => leftovers.has(nv))) return false;
    if (!byNetvm.size) return true;
    // The plan of the edited clients' netvms only, each with all its running clients (how many
    // decides the firewall's shard tables): all compileClient needs.
    const only = new Set(edited.flatMap((n) => [n, ...netvmChain(model, model.qubes.get(n)!).map((q) => q.name)]));
    for (const nv of byNetvm.keys()) for (const c of clientsOf(model, nv)) if (c.state === 'Running') only.add(c.name);
    const plan = planNetwork(model, { ...core.deps.planOptions, uplink: core.deps.uplink, only });
    // A client's chain names only its own rules' hosts. The kernel's sets hold the answers kept
    // in the run dir (DnsAnswers), expired or not: `before` is compiled with those, the edit with
    // fresh ones where the TTL ran out.
    const names = new Set(edited);
    await core.dns.resolveMissing(before, now, names);
    const held = new Map(core.dns.resolutions);
    await core.dns.resolve(model, now, names);
    const warn = (d: Diagnostic) => core.emit({ type: 'warning', diag: d });
    for (const [nv, clients] of byNetvm) {
      const was = clientsRuleset({ model: before, plan, resolutions: held, now, shardClients: core.deps.shardClients }, nv, clients);
      const want = clientsRuleset({ model, plan, resolutions: core.dns.resolutions, now, shardClients: core.deps.shardClients }, nv, clients, warn);
      if (!was || !want) return false;
      if (diffTransaction(was, want).size === 0) continue;
      core.handled++;
      try {
        await core.deps.backend.apply(nv, was, want);
      } catch {
        return false;
      }
      core.loader.markApplied(model, nv, want, now);
      core.emit({ type: 'applied', node: nv, full: false });
      const mayClose = clients.filter((c) => !onlyOpens(effectiveRules(before.qubes.get(c)!.rules, now), effectiveRules(model.qubes.get(c)!.rules, now)));
      // Flows are judged by the node's whole forward path, so a tightening compiles that node
      // (after the load: the kernel enforces the edit meanwhile), and only when there is a flow.
      await core.flows.cut(model, nv, () => this.compileNode(model, nv, now), mayClose);
    }
    return true;
  }

  /** The edited running clients by their running netvm. */
  private byNetvm(model: Model, qubes: readonly string[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const name of qubes) {
      const q = model.qubes.get(name);
      const nv = q ? netvmName(model, q) : null;
      if (!q || q.state !== 'Running' || nv === null || model.qubes.get(nv)?.state !== 'Running') continue;
      out.set(nv, [...(out.get(nv) ?? []), name]);
    }
    return out;
  }

  private compileNode(model: Model, node: string, now: number): Ruleset | undefined {
    const running = new Set([...model.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
    const plan = planNetwork(model, { ...this.core.deps.planOptions, uplink: this.core.deps.uplink, only: running });
    return compile({ model, plan: { ...plan, nodes: plan.nodes.filter((n) => n.name === node) }, resolutions: this.core.dns.resolutions, now, shardClients: this.core.deps.shardClients }).rulesets.get(node);
  }
}
