// The daemon's HTTP API on a loopback TCP address (`qnet daemon --http 127.0.0.1:PORT`; off by
// default), for the web manager and scripts. The same routes as the socket (routes.ts), plus
// GET /v1/events as Server-Sent Events and GET /v1/openapi.json (ops/openapi.ts). Why it is safe:
//   - Loopback only, refused otherwise (QNET6113): there is no TLS, so a token must never cross a
//     network; reach it from elsewhere through `ssh -L`. A 127.0.0.1 bound in the host's network
//     namespace is not reachable from any qube (each is its own namespace; test/kernel/http.test.ts).
//   - Two per-install bearer tokens in the run directory (root-only, 0600), made on first use and
//     kept across restarts: run/http-editor.token may call every op, run/http-viewer.token read ops
//     only (the op's kind decides; a refusal is 403 QNET6110). `Authorization: Bearer` only — no
//     cookies, so a cross-site page cannot ride on a browser's session (no CSRF), and never in a
//     query string, which would end in logs and referrers.
//   - Host must be this listener's own host:port (or localhost / 127.0.0.1 / [::1] with its port),
//     else 421 (a DNS-rebinding page sends its own name); an Origin, when sent, must be one of those
//     origins, else 403 (no cross-site requests, whatever the method). No CORS headers are sent.
//   - Bounded: body (routes.ts MAX_BODY, 413), header size, header and request timeouts, number of
//     connections, and what a slow event reader may leave buffered.
// The manager's own files (dist/web, scripts/build-web.mjs) are served without a token to whoever
// passes the Host and Origin checks: they hold no secret, and the page then calls the API with the
// token it was given. GET /v1/session tells a token holder its role (the page hides what it may not do).
// `qnet manager` prints http://HOST:PORT/#token=… : a URL fragment is never sent to a server nor
// put in a Referer; the page takes it from location.hash and removes it from the address bar.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4 } from 'node:net';
import { endianness } from 'node:os';
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { isCode, writeFileAtomic } from '../store/atomic.js';
import { packageRoot, runDir } from '../store/paths.js';
import { HttpRefusal, refuse, route, send, type Caller, type EventSink, type Served } from './routes.js';
import { newToken, owns, readPidFile, readRunFile, Untrusted } from './socket.js';

export type Role = Caller['role'];
export const ROLES: readonly Role[] = ['editor', 'viewer'];

export interface HttpAddress {
  /** An IPv4 loopback address or '::1'. */
  host: string;
  /** 0: any free port (the listener's `address` says which). */
  port: number;
}

/** `127.0.0.1:8765`, `[::1]:8765`, `localhost:8765`: loopback only (see the top of this file). */
export function parseHttpAddress(text: string): HttpAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  let host = m ? (m[1] ?? m[2]!).toLowerCase() : '';
  if (host === 'localhost') host = '127.0.0.1';
  const loopback = (isIPv4(host) && host.startsWith('127.')) || host === '::1';
  if (!m || !loopback || port > 65535)
    throw new QnetError(
      diag('QNET6113', `--http ${JSON.stringify(text.slice(0, 100))}: not a loopback address and port`, {
        hint: 'e.g. --http 127.0.0.1:8765; the API has no TLS, so it never listens beyond this machine (use ssh -L to reach it from elsewhere)',
      }),
    );
  return { host, port };
}

export const formatHost = (a: HttpAddress) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
export const httpTokenPath = (run: string, role: Role) => join(run, `http-${role}.token`);
/** Where the daemon says on which address it listens, for `qnet manager`. */
export const httpInfoPath = (run: string) => join(run, 'http.json');

/** A role's token, or undefined when there is none yet (or it is not one the daemon may trust). */
export async function readHttpToken(stateDir: string, role: Role): Promise<string | undefined> {
  try {
    const m = /^([0-9a-f]{64})\n$/.exec((await readRunFile(httpTokenPath(runDir(stateDir), role), true)).text);
    if (m) return m[1]!;
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined;
    throw e;
  }
  throw new Untrusted(`${httpTokenPath(runDir(stateDir), role)} is not a token`);
}

/** Both roles' tokens: those already made (stable across restarts), else new ones written 0600. */
export async function httpTokens(stateDir: string): Promise<Record<Role, string>> {
  const out = {} as Record<Role, string>;
  for (const role of ROLES) {
    let t: string | undefined;
    try {
      t = await readHttpToken(stateDir, role);
    } catch (e) {
      if (!(e instanceof Untrusted)) throw e;
      throw new QnetError(diag('QNET6010', `${(e as Error).message}: not serving HTTP`, { hint: 'remove it; the daemon makes a new one' }));
    }
    if (t === undefined) {
      t = newToken();
      await writeFileAtomic(httpTokenPath(runDir(stateDir), role), t + '\n', 0o600);
    }
    out[role] = t;
  }
  return out;
}

/** The Host values a request may carry: the listener's own, and the loopback names with its port. */
export function allowedHosts(a: HttpAddress): Set<string> {
  const names = [formatHost(a), `localhost:${a.port}`, `127.0.0.1:${a.port}`, `[::1]:${a.port}`];
  // Browsers leave the default port out of Host and Origin.
  if (a.port === 80) names.push(...names.map((n) => n.slice(0, n.lastIndexOf(':'))));
  return new Set(names);
}

const sameToken = (got: string, want: string) => got.length === want.length && timingSafeEqual(Buffer.from(got), Buffer.from(want));

export interface HttpOptions {
  /** Between SSE keepalive comments (ms); 15 s. */
  keepaliveMs?: number;
}

/** Where scripts/build-web.mjs puts the manager. */
export const WEB_ROOT = join(packageRoot(), 'dist', 'web');
const WEB_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json',
  svg: 'image/svg+xml',
  txt: 'text/plain; charset=utf-8',
};
/** The page may load only its own files and talk only to this listener. */
const WEB_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** What an SSE reader may leave unread before it is dropped (it can reconnect and re-read status). */
const MAX_SSE_BUFFER = 8 * 1024 * 1024;

export class HttpListener {
  private server?: Server;
  private hosts = new Set<string>();
  private origins = new Set<string>();
  private openapi?: Promise<unknown>;
  address?: HttpAddress;

  constructor(
    private readonly served: Served,
    private readonly tokens: Record<Role, string>,
    private readonly o: HttpOptions = {},
  ) {}

  private roleOf(authorization: string | undefined): Role | undefined {
    const got = /^Bearer ([0-9a-f]{64})$/.exec(authorization ?? '')?.[1];
    return got === undefined ? undefined : ROLES.find((r) => sameToken(got, this.tokens[r]));
  }

  async listen(a: HttpAddress, stateDir: string): Promise<HttpAddress> {
    const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => void this.serve(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const bound = server.address();
    this.address = { host: a.host, port: typeof bound === 'object' && bound ? bound.port : a.port };
    this.hosts = allowedHosts(this.address);
    this.origins = new Set([...this.hosts].map((h) => `http://${h}`));
    await writeFileAtomic(httpInfoPath(runDir(stateDir)), JSON.stringify({ url: `http://${formatHost(this.address)}/`, pid: process.pid }) + '\n', 0o600);
    return this.address;
  }

  async close(stateDir: string): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    const info = httpInfoPath(runDir(stateDir));
    const mine = await readFile(info, 'utf8').then((t) => (JSON.parse(t) as { pid?: number }).pid === process.pid, () => false);
    if (mine) await unlink(info).catch(() => undefined);
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    try {
      const host = (req.headers.host ?? '').toLowerCase();
      if (!this.hosts.has(host))
        throw new HttpRefusal(421, diag('QNET6111', `Host ${JSON.stringify(host.slice(0, 100))} is not this listener's`, { hint: `use http://${formatHost(this.address!)}/` }));
      const origin = req.headers.origin;
      if (origin !== undefined && !this.origins.has(origin.toLowerCase())) throw new HttpRefusal(403, diag('QNET6112', `cross-origin request from ${JSON.stringify(origin.slice(0, 100))} refused`));
      const url = req.url ?? '';
      if ((req.method === 'GET' || req.method === 'HEAD') && !url.startsWith('/v1/')) return await this.file(url, req.method === 'HEAD', res);
      const role = this.roleOf(req.headers.authorization);
      if (!role) throw new HttpRefusal(401, diag('QNET6107', 'not authorised', { hint: 'Authorization: Bearer <token> (qnet manager prints a URL with one)' }));
      if (req.method === 'GET' && url === '/v1/events') return this.events(req, res);
      if (req.method === 'GET' && url === '/v1/session') return send(res, 200, { role, pid: process.pid });
      if (req.method === 'GET' && url === '/v1/openapi.json') {
        this.openapi ??= import('../ops/openapi.js').then((m) => m.openApiDocument());
        return send(res, 200, await this.openapi);
      }
      await route(this.served, { role, who: `the HTTP ${role}` }, req, res);
    } catch (e) {
      refuse(res, e);
    }
  }

  /** One of the manager's files by its bare name (`/` is index.html); nothing else on disk can be named. */
  private async file(url: string, head: boolean, res: ServerResponse): Promise<void> {
    const name = url === '/' ? 'index.html' : /^\/([a-z0-9][a-z0-9_.-]{0,63})$/.exec(url)?.[1];
    const type = name && WEB_TYPES[name.slice(name.lastIndexOf('.') + 1)];
    let body: Buffer | undefined;
    if (name && type) body = await readFile(join(WEB_ROOT, name)).catch(() => undefined);
    if (!body || !type) throw new HttpRefusal(404, diag('QNET6109', `no such path: ${url.slice(0, 100)}`, { hint: 'the manager is at /' }));
    res.writeHead(200, {
      'content-type': type,
      'content-length': body.length,
      'content-security-policy': WEB_CSP,
      'x-frame-options': 'DENY',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
    });
    res.end(head ? undefined : body);
  }

  /** The event stream as Server-Sent Events: each event one `data:` line of JSON; a comment now and then keeps proxies and the reader's timeout content. */
  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    const sink: EventSink = {
      // JSON.stringify escapes every newline, so one event is one data line.
      write: (line) => {
        if (res.writableLength > MAX_SSE_BUFFER) return void res.destroy();
        res.write(`data: ${line.trimEnd()}\n\n`);
      },
      end: () => res.end(),
    };
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), this.o.keepaliveMs ?? 15_000).unref();
    this.served.listeners.add(sink);
    res.on('close', () => {
      clearInterval(keepalive);
      this.served.listeners.delete(sink);
    });
    sink.write(JSON.stringify({ type: 'hello', pid: process.pid }));
  }
}

// ---- qnet manager's side: is the daemon the one listening there? --------------------------------

/** /proc/net/tcp{,6}'s local address column for a host and port (host byte order, words of 4 bytes). */
function procAddress(a: HttpAddress): string {
  const bytes = isIPv4(a.host) ? Buffer.from(a.host.split('.').map(Number)) : Buffer.from('00000000000000000000000000000001', 'hex');
  let hex = '';
  for (let i = 0; i < bytes.length; i += 4) hex += (endianness() === 'LE' ? bytes.readUInt32LE(i) : bytes.readUInt32BE(i)).toString(16).toUpperCase().padStart(8, '0');
  return `${hex}:${a.port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The inodes of TCP sockets listening on exactly `a` in this network namespace. */
export async function tcpListeningInodes(a: HttpAddress): Promise<number[]> {
  const text = await readFile(isIPv4(a.host) ? '/proc/self/net/tcp' : '/proc/self/net/tcp6', 'utf8');
  const want = procAddress(a);
  const out: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode; 0A is LISTEN
    if (f[1] === want && f[3] === '0A') out.push(Number(f[9]));
  }
  return out;
}

/**
 * `qnet manager`: the URL to open, with the role's token in its fragment — only once this machine
 * shows that the verified daemon (run/daemon.pid, socket.ts) is the process listening on the
 * address run/http.json names. Else a user who took the port after the daemon stopped would get
 * the token from the page it serves.
 */
export async function managerUrl(stateDir: string, role: Role): Promise<string> {
  const none = (why: string) => new QnetError(diag('QNET6114', `${why}: no URL to open`, { hint: 'qnet daemon --http 127.0.0.1:8765' }));
  let url: URL;
  try {
    url = new URL((JSON.parse((await readRunFile(httpInfoPath(runDir(stateDir)), false, 4096)).text) as { url: string }).url);
  } catch (e) {
    if (isCode(e, 'ENOENT')) throw none(`no qnet daemon serves HTTP for ${stateDir}`);
    throw none(`${httpInfoPath(runDir(stateDir))} cannot be trusted (${(e as Error).message})`);
  }
  const a = parseHttpAddress(`${url.hostname}:${url.port || 80}`);
  const p = await readPidFile(stateDir).catch(() => undefined);
  const inodes = await tcpListeningInodes(a);
  if (!p || inodes.length !== 1 || !(await owns(p, inodes[0]!))) throw none(`what listens on ${formatHost(a)} is not the verified qnet daemon for ${stateDir}`);
  const token = await readHttpToken(stateDir, role);
  if (!token) throw none(`no ${role} token`);
  return `http://${formatHost(a)}/#token=${token}`;
}
