// The policy as `nft`, `check`, `matrix` and previews see it: the model compiled as if every qube
// ran, with names resolved the way this host resolves them. With the `world` uplink the outside is
// qnet's own stand-in, so its zone is known without asking any server; with a real uplink the host's
// resolver is asked (a daemon answers from what it already resolved: DaemonHost).
import { worldZone } from '../backend/netns/world.js';
import { SystemResolver } from '../backend/netns/resolver.js';
import { compile, namesToResolve } from '../compile/compile.js';
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
