// The policy as `nft`, `check`, `matrix` and previews see it: the model compiled as if every qube
// ran, with names resolved the way this host resolves them. With the `world` uplink the outside is
// qnet's own stand-in, so its zone is known without asking any server; with a real uplink the host's
// resolver is asked (a daemon answers from what it already resolved: DaemonHost).
import { worldZone } from '../backend/netns/world.js';
import { SystemResolver } from '../backend/netns/resolver.js';
import { compile, compileClient, namesToResolve } from '../compile/compile.js';
import { patchClient } from '../compile/fragments.js';
import { netvmName } from '../model/addressing.js';
import { StaticResolver, type Resolutions, type Resolver } from '../compile/dns.js';
import { uplinkKind } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { planNetwork } from '../model/topology.js';
import type { Analysis } from '../sim/questions.js';

/** A resolver for offline analysis: no namespace needed. */
export function offlineResolver(model: Model, stateDir: string): Resolver {
  switch (uplinkKind(model)) {
    case 'world':
      return new StaticResolver(worldZone(stateDir));
    case 'none':
      return new StaticResolver({});
    default:
      return new SystemResolver();
  }
}

/** The whole policy as if every qube were running, with these answers for the names in rules. */
export function analyse(model: Model, resolutions: Resolutions, now: number): Analysis {
  const plan = planNetwork(model, { uplink: uplinkKind(model) });
  const { rulesets, diagnostics } = compile({ model, plan, resolutions, now });
  return { model, plan, rulesets, diagnostics, resolutions };
}

/** analyse() with names resolved the offline way. */
export async function analysisOf(model: Model, stateDir: string, now: number): Promise<Analysis> {
  return analyse(model, await offlineResolver(model, stateDir).resolveAll(namesToResolve(model, now)), now);
}

/** An analysis and what it was made of, so the next one may reuse it (DaemonHost keeps one). */
export interface AnalysisMemo {
  /** Everything but the rule lists (the rules' expiry at the time included). */
  frame: string;
  /** Each qube's rule list, as JSON. */
  rules: Map<string, string>;
  analysis: Analysis;
}

/**
 * analyse(), reusing `memo` where it can: the same model, the analysis itself; the same but for some
 * qubes' rules, those clients' chains and sets compiled alone and patched into their netvms' rulesets
 * (the daemon's rule-edit path: compileClient, patchClient); anything else, a full compile. Explain
 * asks again after every change, and a full compile of 10k rules costs hundreds of milliseconds.
 */
export function analyseWith(memo: AnalysisMemo | undefined, model: Model, resolutions: Resolutions, now: number): AnalysisMemo {
  let expired = 0;
  for (const q of model.qubes.values()) for (const r of q.rules ?? []) if (r.expire !== undefined && r.expire < now) expired++;
  const frame = JSON.stringify([model.default_netvm, model.uplink, [...model.qubes.values()].map(({ rules: _r, ...q }) => q), model.connections, model.forwards, [...resolutions], expired]);
  const rules = new Map([...model.qubes.values()].map((q) => [q.name, JSON.stringify(q.rules)] as const));
  const full = (): AnalysisMemo => ({ frame, rules, analysis: analyse(model, resolutions, now) });
  if (!memo || memo.frame !== frame) return full();
  const edited = [...rules].filter(([n, r]) => memo.rules.get(n) !== r).map(([n]) => n);
  if (!edited.length) return { frame, rules, analysis: { ...memo.analysis, model } };
  const prev = memo.analysis;
  const rulesets = new Map(prev.rulesets);
  const diagnostics = prev.diagnostics.filter((d) => d.qube === undefined || !edited.includes(d.qube));
  for (const c of edited) {
    const nv = netvmName(model, model.qubes.get(c)!);
    const rs = nv === null ? undefined : rulesets.get(nv);
    if (nv === null || !rs) return full();
    const { fragments, diagnostics: ds } = compileClient({ model, plan: prev.plan, resolutions, now }, nv, c);
    const patched = fragments.length ? patchClient(rs, fragments) : null;
    if (!patched) return full();
    rulesets.set(nv, patched);
    diagnostics.push(...ds);
  }
  return { frame, rules, analysis: { model, plan: prev.plan, rulesets, diagnostics, resolutions } };
}
