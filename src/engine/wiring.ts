// The composition root (EXAMPLES.md Example 5): the one place that picks the executor, the resolver
// and the world for a state directory. The daemon and the CLI's offline path both come here.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { NetnsBackend } from '../backend/netns/netns-backend.js';
import type { Sysctls } from '../backend/netns/sysctl.js';
import { NetnsExecutor } from '../backend/netns/netns-executor.js';
import { NodeRunner, toolEnv, type Runner } from '../backend/netns/runner.js';
import { NetnsResolver, SystemResolver } from '../backend/netns/resolver.js';
import { createWorld, destroyWorld, WORLD_DNS_SERVERS, worldZone } from '../backend/netns/world.js';
import { deviceOwner, hostUpstreamDns } from '../backend/netns/uplink.js';
import { SimBackend } from '../backend/sim/sim-backend.js';
import { StaticResolver, type Resolution, type Resolver } from '../compile/dns.js';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import { uplinkKind, WORLD_NODE, type UplinkKind } from '../model/netplan.js';
import type { Model } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { hostLinkTag, type PlanOptions } from '../model/topology.js';
import { DEFAULT_PREFIX, readRuntime, runtimeFilePath, writeRuntime, type Runtime } from '../store/runtime-file.js';
import { runDir } from '../store/paths.js';
import { Engine, type EngineEvent, type WorldControl } from './engine.js';

/** Why the netns backend cannot run here, or null. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'creating namespaces needs root';
  for (const t of ['ip', 'nft', 'conntrack'])
    if (spawnSync('sh', ['-c', `command -v ${t}`], { env: toolEnv() }).status !== 0) return `${t} is not installed (apt-get install nftables iproute2 conntrack)`;
  return null;
}

/**
 * The runtime of a state dir. The first time: netns where it can run, else the simulator, recorded
 * with why (`fallback`). A simulator chosen only for that reason moves to netns as soon as netns can
 * run (root, tools installed): a user who first tried qnet without root and now runs it as root
 * expects real namespaces, not a simulator that "runs" qubes nobody can enter. It is called only
 * where no daemon serves the directory (offline `start`, a daemon starting), so nothing is running
 * on the simulator then: offline it keeps no state, and the qubes.json states it booked are
 * reconciled (Halted: no namespace) by the next change. A simulator asked for (--backend sim, or a
 * runtime.json without `fallback`) is kept: the start op warns instead (runtimeWarnings).
 */
export async function runtimeFor(stateDir: string, env: NodeJS.ProcessEnv, want?: Partial<Runtime>): Promise<Runtime> {
  const existing = await readRuntime(stateDir, env);
  if (existing && !want?.backend) {
    if (existing.backend !== 'sim' || existing.fallback === undefined || netnsUnavailable() !== null) return existing;
    const r: Runtime = { backend: 'netns', prefix: existing.prefix };
    await writeRuntime(stateDir, r);
    return r;
  }
  const why = netnsUnavailable();
  const backend = want?.backend ?? (why === null ? 'netns' : 'sim');
  if (backend === 'netns' && why) throw new QnetError(diag('QNET5101', `the netns backend cannot run: ${why}`, { hint: 'run as root, or use --backend sim' }));
  const r: Runtime = {
    backend,
    prefix: want?.prefix ?? env['QNET_NETNS_PREFIX'] ?? existing?.prefix ?? DEFAULT_PREFIX,
    ...(backend === 'sim' && !want?.backend && why ? { fallback: why } : {}),
  };
  await writeRuntime(stateDir, r);
  return r;
}

/**
 * What `start` should say about the runtime: `before` is the runtime before runtimeFor chose
 * `after`. Moved from the simulator to namespaces; or still on a simulator that was asked for
 * although namespaces could run here (with the exact way to switch).
 */
export function runtimeWarnings(stateDir: string, before: Runtime | null, after: Runtime | null): Diagnostic[] {
  if (before?.backend === 'sim' && after?.backend === 'netns')
    return [
      diag(
        'QNET5105',
        `this state directory now runs qubes in network namespaces (it was on the simulator${before.fallback ? ` because ${before.fallback}` : ''}); qubes that ran only on the simulator are Halted`,
      ),
    ];
  if (after?.backend === 'sim' && after.fallback === undefined && netnsUnavailable() === null)
    return [
      diag('QNET5106', `qubes here run on the simulator (${runtimeFilePath(stateDir)} says so): no namespace is created and \`qnet run\` cannot enter them`, {
        hint: `to use network namespaces: stop qnet's daemon if one runs, then rm ${runtimeFilePath(stateDir)} and start again`,
      }),
    ];
  return [];
}

/** Sysctls that lift the ICMP rate limit: for tests and demos (defined with the other sysctls). */
export { NO_ICMP_RATELIMIT } from '../backend/netns/sysctl.js';


export interface Wired {
  engine: Engine;
  backend: Backend;
  netns?: NetnsBackend;
  runtime: Runtime;
}

export interface WireOptions {
  stateDir: string;
  runtime: Runtime;
  /** Only the globals are read (the uplink): FileStore.loadGlobals() is enough. */
  model: Pick<Model, 'uplink'>;
  now: () => number;
  emit?: (e: EngineEvent) => void;
  runner?: Runner;
  /** Sysctls for every namespace (tests lift the ICMP rate limit). */
  sysctls?: Sysctls;
  /** Reads the host's resolv.conf files (tests pass fixed text); default: the real files. */
  readHostFile?: (path: string) => string | undefined;
  /** Rule edits additions-only, tidied later (EngineDeps.overlay): the daemon, which stays to tidy. */
  overlay?: boolean;
  /** Keep the drop log's readers (EngineDeps.dropLog): the daemon. */
  dropLog?: boolean;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/**
 * What a real uplink's plan needs from the host (nothing for `world` and `none`): the host's
 * resolvers as the top netvm's DNS upstream, the tag of this prefix's host interfaces, the device.
 */
export function uplinkPlanOptions(model: Pick<Model, 'uplink'>, prefix: string, read: (path: string) => string | undefined = readText): Pick<PlanOptions, 'upstreamDns' | 'hostTag' | 'moveDev'> {
  const uplink = uplinkKind(model);
  if (uplink !== 'veth-host' && uplink !== 'move') return {};
  const dev = model.uplink?.startsWith('move:') ? model.uplink.slice('move:'.length) : undefined;
  return { upstreamDns: hostUpstreamDns(read), hostTag: hostLinkTag(prefix), ...(dev !== undefined ? { moveDev: dev } : {}) };
}

export function wire(o: WireOptions): Wired {
  const uplink = uplinkKind(o.model);
  const planOptions = uplinkPlanOptions(o.model, o.runtime.prefix, o.readHostFile);
  const engineOf = (backend: Backend, resolver: Resolver, world: WorldControl) =>
    new Engine({
      backend,
      resolver,
      uplink,
      planOptions,
      now: o.now,
      world,
      untidyFile: join(runDir(o.stateDir), 'untidy'),
      dnsFile: join(runDir(o.stateDir), 'dns.json'),
      ...(o.emit ? { emit: o.emit } : {}),
      ...(o.overlay ? { overlay: true } : {}),
      ...(o.dropLog ? { dropLog: true } : {}),
      ...(o.runtime.shardClients ? { shardClients: o.runtime.shardClients } : {}),
    });
  if (o.runtime.backend === 'sim') {
    const backend = new SimBackend();
    const world: WorldControl = { ensure: (plan) => backend.bringUp(plan, [WORLD_NODE]), destroy: () => backend.tearDown([WORLD_NODE]) };
    const resolver = uplink === 'world' ? new StaticResolver(worldZone(o.stateDir)) : new StaticResolver({});
    return { engine: engineOf(backend, resolver, world), backend, runtime: o.runtime };
  }
  const runner = o.runner ?? new NodeRunner();
  // The daemon (overlay) keeps an nft session per edited netvm; a one-shot CLI run would not gain.
  const netns = new NetnsBackend({ runner, prefix: o.runtime.prefix, uplink, ...(o.sysctls ? { sysctls: o.sysctls } : {}), ...(o.overlay ? { sessions: true } : {}) });
  const worldNs = netns.ns(WORLD_NODE);
  const world: WorldControl = {
    ensure: async () => {
      await createWorld(runner, worldNs, { stateDir: runDir(o.stateDir), detached: true, zone: worldZone(o.stateDir) });
    },
    destroy: () => destroyWorld(runner, worldNs, { stateDir: runDir(o.stateDir) }),
  };
  const backend = new NetnsExecutor(netns, runner);
  const resolver = resolverFor(uplink, backend, runner, planOptions);
  return { engine: engineOf(backend, resolver, world), backend, netns, runtime: o.runtime };
}

/**
 * Names are resolved the way Qubes does, inside the net qube: with the world uplink, in the top
 * netvm's namespace against the world's resolver. (Never from the host: on some machines the
 * host's own network overlaps the documentation range the world's resolver uses.) With veth-host
 * the host's resolver answers what the top netvm would get. With move:DEV the host may have no
 * network while the device is away: the net qube that holds it asks the host's upstream servers.
 */
function resolverFor(uplink: UplinkKind, netns: NetnsExecutor, runner: Runner, plan: Pick<PlanOptions, 'upstreamDns' | 'moveDev'>): Resolver {
  if (uplink === 'none') return new StaticResolver({});
  if (uplink === 'veth-host') return new SystemResolver();
  if (uplink === 'move') {
    const host = new SystemResolver();
    const dev = plan.moveDev;
    const servers = plan.upstreamDns?.length ? { servers: [...plan.upstreamDns] } : {};
    return {
      async resolveAll(names) {
        const owner = dev === undefined ? undefined : await deviceOwner(runner, netns.netns.naming, dev, [...(await netns.live())]);
        return owner === undefined ? host.resolveAll(names) : new NetnsResolver(runner, netns.netns.ns(owner), servers, netns.netns.resolverSession(owner)).resolveAll(names);
      },
    };
  }
  // The net qube linked to the world right now.
  const topNetvm = async () => [...(await netns.links([WORLD_NODE]))].find(([, up]) => up === WORLD_NODE)?.[0];
  return {
    async prepare() {
      const top = await topNetvm();
      if (top) netns.netns.resolverSession(top);
    },
    async resolveAll(names) {
      const top = await topNetvm();
      if (!top) {
        const out = new Map<string, Resolution>();
        for (const n of names) out.set(n, { name: n, a: [], aaaa: [], ttl: 5, error: 'no running net qube to resolve in' });
        return out;
      }
      return new NetnsResolver(runner, netns.netns.ns(top), { servers: [WORLD_DNS_SERVERS[0]!] }, netns.netns.resolverSession(top)).resolveAll(names);
    },
  };
}

/**
 * Remove whatever is left under a runtime's prefix (after its daemon stopped): the world, its
 * services stopped by PID, and every namespace of ours. Returns the nodes whose namespaces it removed.
 */
export async function teardownLeftovers(stateDir: string, runtime: Runtime): Promise<string[]> {
  if (runtime.backend !== 'netns' || netnsUnavailable() !== null) return [];
  const runner = new NodeRunner();
  const netns = new NetnsBackend({ runner, prefix: runtime.prefix });
  await destroyWorld(runner, netns.ns(WORLD_NODE), { stateDir: runDir(stateDir) }).catch(() => {});
  const left = await netns.listNamespaces();
  const executor = new NetnsExecutor(netns, runner);
  if (left.length) await executor.tearDown(left);
  await executor.removeStaleEtc();
  return left;
}
