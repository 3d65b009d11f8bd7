// The `world` namespace: a stand-in for the outside world that sys-net's uplink can point at (demo,
// tests). It holds a few "internet" hosts on its loopback and runs world-services (HTTP + DNS)
// inside. Everything uses documentation ranges (RFC 5737, RFC 3849), so nothing here can be confused
// with a real destination. The link world ↔ sys-net is made by the netns backend, not here.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ZONE, parseZone, type Zone } from './dns-server.js';
import { nodeScriptArgv } from './resolver.js';
import { CommandError, runChecked, toolEnv, type Runner } from './runner.js';
import { deleteNamespaces, isNodeName } from './links.js';
import { FORWARDING, setSysctls } from './sysctl.js';
import type { WorldServicesConfig, WorldStatus } from './world-services.js';

// ── The world's address plan (fixed) ──

/** The interface that holds the hosts' addresses. lo rather than a dummy: the dummy driver is a module,
 *  and where modules cannot be loaded (this project's VMs) `ip link add … type dummy` fails. Local
 *  addresses answer on any interface, so traffic arriving over the uplink veth reaches them all the same. */
const WORLD_IFACE = 'lo';

export const WORLD_HOSTS = {
  /** The web server: `/` says which host answered, `/ip` echoes the client's source address. */
  web: { name: 'web.example.com', v4: '203.0.113.10', v6: '2001:db8::10' },
  /** A second web host, for "deny one target, allow the other" scenarios. */
  other: { name: 'other.example.com', v4: '203.0.113.20', v6: '2001:db8::20' },
  /** The world's authoritative DNS server (UDP and TCP). */
  dns: { name: 'dns.example.com', v4: '192.0.2.53', v6: '2001:db8::53' },
} as const;

export const WORLD_HTTP_PORT = 80;
export const WORLD_DNS_PORT = 53;

/** What a net qube whose uplink is the world resolves with (NetnsResolver servers, upstreamDns). */
export const WORLD_DNS_SERVERS: readonly string[] = [WORLD_HOSTS.dns.v4, WORLD_HOSTS.dns.v6];

/**
 * The link world ↔ sys-net (built by the netns backend). The world side is fixed; `netvm` is the
 * address this module suggests for sys-net's end, and what the world's `/ip` shows after masquerade.
 */
export const worldUplinkAddresses = {
  v4: { subnet: '198.51.100.0/24', len: 24, world: '198.51.100.1', netvm: '198.51.100.2' },
  v6: { subnet: '2001:db8:ffff::/64', len: 64, world: '2001:db8:ffff::1', netvm: '2001:db8:ffff::2' },
} as const;

// ── Creating and destroying the world ──

export interface CreateWorldOptions {
  /** Where the PID, status, zone and log files live (`<ns>.world.pid` …). Required when detached;
   *  otherwise a private temporary directory is used and removed by destroy(). */
  stateDir?: string;
  /** Keep the services running after this process exits (the demo); otherwise they exit with it. */
  detached?: boolean;
  /** The initial DNS zone (default DEFAULT_ZONE). */
  zone?: Zone;
  /** HTTP ports on every web host (default [80]). */
  httpPorts?: number[];
  /** How long to wait for the services to listen (default 15 s; tsx start-up is the slow part). */
  readyTimeoutMs?: number;
}

export interface World {
  ns: string;
  pid: number;
  stateDir: string;
  files: WorldFiles;
  /** Replace the DNS zone: write the zone file, SIGHUP, and wait until the server has reloaded it. */
  setZone(zone: Zone, timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

export interface WorldFiles {
  pid: string;
  status: string;
  zone: string;
  log: string;
}

export function worldFiles(stateDir: string, ns: string): WorldFiles {
  const base = join(stateDir, `${ns}.world`);
  return { pid: `${base}.pid`, status: `${base}.status.json`, zone: `${base}.zone.json`, log: `${base}.log` };
}

// Qubes' name rule (letter first, then letters, digits, `_.-`), which also keeps the name safe as a
// namespace name and inside file names.
function checkName(ns: string): void {
  if (!isNodeName(ns)) throw new Error(`world: '${ns}' is not a valid namespace name (letter first, then letters, digits, _.-; at most 31)`);
}

/** `ip -batch` lines that give the world its hosts. v6 addresses use nodad: usable at once, not after ~2 s of DAD. */
export function worldSetupBatch(): string {
  const hosts = Object.values(WORLD_HOSTS);
  return [
    ...hosts.map((h) => `address add ${h.v4}/32 dev ${WORLD_IFACE}`),
    ...hosts.map((h) => `address add ${h.v6}/128 dev ${WORLD_IFACE} nodad`),
    'link set lo up',
    '',
  ].join('\n');
}

export function worldServicesConfig(files: WorldFiles, opts: CreateWorldOptions): WorldServicesConfig {
  const ports = opts.httpPorts ?? [WORLD_HTTP_PORT];
  const { web, other, dns } = WORLD_HOSTS;
  return {
    http: [web, other].map((h) => ({ name: h.name, addresses: [h.v4, h.v6], ports })),
    dns: { addresses: [dns.v4, dns.v6], port: WORLD_DNS_PORT, zoneFile: files.zone },
    statusFile: files.status,
    exitOnStdinEnd: !opts.detached,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(file: string, n = 6): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ');
  } catch {
    return '';
  }
}

async function readStatus(file: string): Promise<WorldStatus | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as WorldStatus;
  } catch {
    return undefined; // not written yet (the services write it atomically)
  }
}

/**
 * Create the world namespace, its hosts, and start world-services inside it. On any failure,
 * everything created so far is removed again.
 */
export async function createWorld(runner: Runner, ns: string, opts: CreateWorldOptions = {}): Promise<World> {
  checkName(ns);
  if (opts.detached && !opts.stateDir) throw new Error('world: a detached world needs a state directory for its PID file');
  const ownDir = !opts.stateDir;
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'qnet-world-')));
  const files = worldFiles(stateDir, ns);
  try {
    await runChecked(runner, ['ip', 'netns', 'add', ns]);
  } catch (e) {
    if (ownDir) await rm(stateDir, { recursive: true, force: true });
    if (e instanceof CommandError && e.alreadyExists)
      throw new Error(`world: namespace '${ns}' already exists; destroy the old world first (qnet demo --down)`);
    throw e;
  }
  let pid: number | undefined;
  try {
    await runChecked(runner, ['ip', '-n', ns, '-batch', '-'], { stdin: worldSetupBatch() });
    // The world routes for whatever the backend links to it (port forwards come in through it).
    await setSysctls(runner, ns, FORWARDING);
    await mkdir(stateDir, { recursive: true });
    await writeFile(files.zone, `${JSON.stringify(opts.zone ?? DEFAULT_ZONE, null, 2)}\n`);
    await rm(files.status, { force: true });
    pid = await startServices(ns, files, opts);
    await writeFile(files.pid, `${pid}\n`);
  } catch (e) {
    await destroyWorld(runner, ns, { stateDir, pid }).catch(() => {});
    if (ownDir) await rm(stateDir, { recursive: true, force: true });
    throw e;
  }
  const worldPid = pid;
  return {
    ns,
    pid: worldPid,
    stateDir,
    files,
    setZone: (zone, timeoutMs) => setWorldZone(files, worldPid, zone, timeoutMs),
    destroy: async () => {
      await destroyWorld(runner, ns, { stateDir, pid: worldPid });
      if (ownDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * Start world-services in the namespace and wait until its status file says it listens. The Runner
 * waits for a program to finish, so this long-lived process is spawned here directly — still an
 * argument vector, never a shell. `ip netns exec` execs node, so the child's PID is node's.
 */
async function startServices(ns: string, files: WorldFiles, opts: CreateWorldOptions): Promise<number> {
  const argv = ['netns', 'exec', ns, ...nodeScriptArgv('world-services'), '--config', JSON.stringify(worldServicesConfig(files, opts))];
  const log = openSync(files.log, 'w');
  let exited: string | undefined;
  const child = (() => {
    try {
      // Attached: stdin is a pipe the services watch, so they end when this process ends.
      return spawn('ip', argv, { detached: !!opts.detached, stdio: [opts.detached ? 'ignore' : 'pipe', log, log], env: toolEnv() });
    } finally {
      closeSync(log);
    }
  })();
  child.on('error', (e) => (exited = e.message));
  child.on('exit', (code, signal) => (exited = `exited (${signal ?? code})`));
  // Never keep the caller alive just for the world; destroy() or the caller's exit ends it.
  child.unref();
  child.stdin?.on('error', () => {});
  (child.stdin as { unref?: () => void } | null)?.unref?.();
  const pid = child.pid;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (!exited && Date.now() < deadline) {
    const st = await readStatus(files.status);
    if (st?.ready && pid !== undefined) return pid;
    await sleep(50);
  }
  if (pid !== undefined && !exited) await stopPid(pid, 2000);
  const why = exited ? `world-services ${exited}` : `world-services not ready within ${opts.readyTimeoutMs ?? 15_000} ms`;
  throw new Error(`world ${ns}: ${why}: ${tail(files.log) || 'no output'}`);
}

/** Replace a running world's DNS zone (zone file + SIGHUP to its PID) and wait until it reloaded. */
export async function setWorldZone(files: WorldFiles, pid: number, zone: Zone, timeoutMs = 5000): Promise<void> {
  const before = (await readStatus(files.status))?.reloads ?? 0;
  await writeFile(files.zone, `${JSON.stringify(zone, null, 2)}\n`);
  process.kill(pid, 'SIGHUP');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const st = await readStatus(files.status);
    if (st && st.reloads > before) {
      if (st.reloadError) throw new Error(`world: zone not loaded, the old one stays: ${st.reloadError}`);
      return;
    }
    await sleep(25);
  }
  throw new Error(`world: the DNS server did not reload its zone within ${timeoutMs} ms`);
}

// ── Stopping by PID, safely ──

/** A live (non-zombie) process whose command line is world-services: never signal a reused PID. */
export function isWorldServicesPid(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('world-services') && processAlive(pid);
  } catch {
    return false;
  }
}

export function processAlive(pid: number): boolean {
  try {
    // Field 3 of /proc/PID/stat is the state; a zombie has exited and only awaits its parent.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM, wait (bounded), then SIGKILL. Returns whether the process is gone. */
async function stopPid(pid: number, timeoutMs: number): Promise<boolean> {
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!processAlive(pid)) return true;
      await sleep(25);
    }
    return !processAlive(pid);
  };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return true;
  }
  if (await waitGone(timeoutMs)) return true;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return true;
  }
  return waitGone(2000);
}

export interface DestroyWorldOptions {
  /** Where createWorld put the PID file; the PID is read from there unless given. */
  stateDir?: string;
  pid?: number;
  /** Grace period after SIGTERM (default 5 s). */
  timeoutMs?: number;
}

/**
 * Stop world-services by PID (checked to be world-services first) and delete the namespace. Safe to
 * call twice and on a half-created world. Throws only if the process survives SIGKILL.
 */
export async function destroyWorld(runner: Runner, ns: string, opts: DestroyWorldOptions = {}): Promise<void> {
  checkName(ns);
  const files = opts.stateDir ? worldFiles(opts.stateDir, ns) : undefined;
  let pid = opts.pid;
  if (pid === undefined && files) {
    const n = Number.parseInt(await readFile(files.pid, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(n) && n > 0) pid = n;
  }
  const stopped = pid === undefined || !isWorldServicesPid(pid) || (await stopPid(pid, opts.timeoutMs ?? 5000));
  // A namespace with a process still in it lives on after `ip netns del`; delete the name anyway.
  await deleteNamespaces(runner, [ns]);
  if (files) await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
  if (!stopped) throw new Error(`world ${ns}: world-services (pid ${pid}) did not stop`);
}

/** The world's zone as the demo serves it (a zone file in the state dir overrides the default). */
export function worldZone(stateDir: string): Zone {
  try {
    return parseZone(JSON.parse(readFileSync(join(stateDir, 'world-zone.json'), 'utf8')));
  } catch {
    return DEFAULT_ZONE;
  }
}
