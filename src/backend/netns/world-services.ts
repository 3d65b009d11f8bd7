// The process that runs inside the world namespace (`ip netns exec WORLD node world-services.js
// --config JSON`): the "internet" hosts' web servers and the world's DNS server. world.ts starts it,
// waits for its status file, and stops it by PID with SIGTERM. SIGHUP re-reads the zone file.
import http from 'node:http';
import { existsSync, realpathSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ZONE, DnsServer, loadZoneFile, type Zone } from './dns-server.js';

export interface HttpHost {
  /** Shown on the page, so a client can tell which host answered. */
  name: string;
  addresses: string[];
  ports: number[];
}

export interface WorldServicesConfig {
  http: HttpHost[];
  dns?: { addresses: string[]; port?: number; zone?: Zone; zoneFile?: string };
  /** Written (atomically) once everything listens, and after every zone reload: WorldStatus as JSON. */
  statusFile?: string;
  /** Exit when stdin closes: ties the services to the caller's lifetime unless it runs them detached. */
  exitOnStdinEnd?: boolean;
}

export interface WorldStatus {
  pid: number;
  ready: true;
  /** Zone reloads attempted so far; world.ts waits for this to move after a SIGHUP. */
  reloads: number;
  /** Why the last reload failed (the old zone stays); absent when it succeeded. */
  reloadError?: string;
}

export interface WorldServices {
  dns?: DnsServer;
  http: http.Server[];
  /** Re-read the zone file (what SIGHUP does). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** An IPv4 client of a dual-stack socket shows up as ::ffff:a.b.c.d; report it as the client sent it. */
export function clientAddress(remote: string | undefined): string {
  return (remote ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

function httpHandler(host: HttpHost): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    // /ip shows the source address the server sees: after sys-net's masquerade, its uplink address.
    if (path === '/ip') return send(200, `${clientAddress(req.socket.remoteAddress)}\n`);
    if (path === '/') return send(200, `qnet world: ${host.name} (${clientAddress(req.socket.localAddress)})\n`);
    send(404, 'not found\n');
  };
}

function listen(server: http.Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true, ipv6Only: isIPv6(address) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function writeStatus(file: string | undefined, status: WorldStatus): Promise<void> {
  if (!file) return;
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(status)}\n`);
  await rename(tmp, file);
}

export async function startWorldServices(cfg: WorldServicesConfig): Promise<WorldServices> {
  const servers: http.Server[] = [];
  let dns: DnsServer | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      ),
    );
    await dns?.close();
  };
  try {
    for (const host of cfg.http) {
      for (const address of host.addresses) {
        for (const port of host.ports) {
          const s = http.createServer(httpHandler(host));
          servers.push(s);
          await listen(s, address, port);
        }
      }
    }
    if (cfg.dns) {
      const file = cfg.dns.zoneFile;
      const zone = file && existsSync(file) ? await loadZoneFile(file) : (cfg.dns.zone ?? DEFAULT_ZONE);
      dns = await DnsServer.start({ addresses: cfg.dns.addresses, port: cfg.dns.port ?? 53, zone, zoneFile: file });
    }
  } catch (e) {
    await close();
    throw e;
  }
  const reload = async (): Promise<void> => {
    if (!dns) throw new Error('no DNS server configured');
    await dns.reloadZone();
  };
  return { dns, http: servers, reload, close };
}

function configFromArgv(argv: readonly string[]): WorldServicesConfig {
  const i = argv.indexOf('--config');
  const raw = i >= 0 ? argv[i + 1] : undefined;
  if (!raw) throw new Error('usage: world-services --config JSON');
  const cfg = JSON.parse(raw) as WorldServicesConfig;
  if (!Array.isArray(cfg.http)) throw new Error('config: http must be a list of hosts');
  for (const h of cfg.http)
    if (!h.addresses.every((a) => isIPv4(a) || isIPv6(a)) || !h.ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536))
      throw new Error(`config: host ${h.name}: bad address or port`);
  return cfg;
}

async function main(): Promise<void> {
  const cfg = configFromArgv(process.argv.slice(2));
  const svc = await startWorldServices(cfg);
  const status: WorldStatus = { pid: process.pid, ready: true, reloads: 0 };
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await svc.close();
    if (cfg.statusFile) await rm(cfg.statusFile, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // Reloads run one after another, so two quick SIGHUPs cannot interleave their status writes.
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading
      .then(() => svc.reload())
      .then(() => {
        status.reloads++;
        delete status.reloadError;
      })
      .catch((e: Error) => {
        status.reloads++;
        status.reloadError = e.message;
        process.stderr.write(`world-services: zone reload failed, keeping the old zone: ${e.message}\n`);
      })
      .then(() => writeStatus(cfg.statusFile, status))
      .catch(() => {});
  });
  if (cfg.exitOnStdinEnd) {
    process.stdin.on('end', () => void stop());
    process.stdin.on('error', () => void stop());
    process.stdin.resume();
  }
  await writeStatus(cfg.statusFile, status);
  process.stdout.write('READY\n');
}

const isEntry = (): boolean => {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};

if (isEntry()) {
  main().catch((e: Error) => {
    process.stderr.write(`world-services: ${e.message}\n`);
    process.exit(1);
  });
}
