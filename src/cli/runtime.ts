// What the analysis commands and the engine need besides the model: the uplink and where DNS
// answers come from. With the `world` uplink the outside is qnet's own stand-in, so its zone is
// known without asking any server; with a real uplink the host's resolver is asked.
import { StaticResolver, type Resolver } from '../compile/dns.js';
import { worldZone } from '../backend/netns/world.js';
import { SystemResolver } from '../backend/netns/resolver.js';
import { uplinkKind } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { namesToResolve } from '../compile/compile.js';
import { analyse, type Analysis } from '../sim/questions.js';


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

/** Compile the model as if every qube ran, with names resolved the offline way. */
export async function analysisOf(model: Model, stateDir: string, now: number): Promise<Analysis> {
  const resolutions = await offlineResolver(model, stateDir).resolveAll(namesToResolve(model, now));
  return analyse(model, { uplink: uplinkKind(model), resolutions, now });
}
