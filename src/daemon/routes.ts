// The daemon's HTTP/JSON surface, on its socket (handle) and on the HTTP listener (http.ts, which
// calls route with the caller's role):
//   HEAD /v1/ping             no token: "a daemon is here" (the client verifies who before sending one)
//   GET  /v1/ops              every operation with its kind, summary and input JSON Schema
//   POST /v1/ops/<name>       the input as the body → 200 {value, warnings}, or 4xx {diagnostics}
//   GET  /v1/events           the event stream, JSON lines
//   GET  /v1/status           pid, runtime, how each qube's rules stand
// Change operations are queued one at a time; reads run beside them. Every request is bounded
// (body size; the server's header and request timeouts) and a peer that sends garbage gets a 4xx
// while the next request is served as usual.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { describeOps, findOp, invoke } from '../ops/registry.js';
import type { Host } from '../ops/types.js';
import type { Effect } from '../model/effect.js';
import type { DaemonEvent } from './server.js';

export interface Served {
  token(): string;
  host: Host;
  serial<T>(fn: () => Promise<T>): Promise<T>;
  emit(e: DaemonEvent): void;
  log(line: string): void;
  listeners: Set<EventSink>;
  status(): unknown;
  /** After every change: re-arm the timers (expiry, DNS, tidy). */
  afterChange(): void;
  /** What the changes since the last call touched (each Host.change declares it). */
  takeEffects(): Effect[];
}

/** Where events go: a JSON-lines response on the socket, a Server-Sent Events one over HTTP. */
export interface EventSink {
  /** One event, as a JSON line (with its newline). */
  write(line: string): unknown;
  end(): unknown;
}

/** Who asks: the socket's token holder and the HTTP editor may change; the HTTP viewer may only read. */
export interface Caller {
  role: 'editor' | 'viewer';
  /** For the log line. */
  who: string;
}

/** The largest request body (a `firewall.set` of 100k rules is about 6 MiB). */
export const MAX_BODY = 64 * 1024 * 1024;

export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly diag: Diagnostic,
  ) {
    super(diag.message);
  }
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  // An oversize body is left unread: the connection cannot carry another request after it.
  res.writeHead(status, { 'content-type': 'application/json', ...(status === 413 ? { connection: 'close' } : {}) }).end(JSON.stringify(body) + '\n');
}

const tooLarge = () => new HttpRefusal(413, diag('QNET6105', `request body over ${MAX_BODY} bytes`));

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    // Refused before a byte is read when the length is declared; else once it passes the bound.
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(tooLarge());
        // Stop reading; the 413 goes out with `connection: close` and the socket is dropped after it.
        req.pause();
        chunks.length = 0;
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpRefusal(400, diag('QNET6106', 'the request body is not JSON'));
  }
}

/** The HTTP status of an operation's refusal: unknown op 404, refused input 400, a refused change 422. */
function statusOf(d: Diagnostic): number {
  if (d.code === 'QNET6101') return 404;
  if (d.code === 'QNET6102') return 400;
  return 422;
}

/** Which qubes a request names, for the log line (bounded; never the whole input). */
function about(input: unknown): string {
  if (typeof input !== 'object' || input === null) return '';
  const o = input as Record<string, unknown>;
  const names = [o['qube'], o['src'], o['from'], o['name'], ...(Array.isArray(o['qubes']) ? o['qubes'] : []), ...(Array.isArray(o['names']) ? o['names'] : [])]
    .filter((x): x is string => typeof x === 'string')
    .slice(0, 8);
  return names.length ? ` [${names.map((n) => JSON.stringify(n.slice(0, 64))).join(' ')}]` : '';
}

async function serveOp(s: Served, c: Caller, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const op = await findOp(name);
  // The role comes from the op's kind, before the body is read (unknown ops fall through to 404).
  if (op && op.kind !== 'read' && c.role !== 'editor')
    throw new HttpRefusal(403, diag('QNET6110', `${op.name} is a ${op.kind} operation: the viewer token may call read operations only`, { hint: 'qnet manager --editor prints a URL with the editor token' }));
  const input = await jsonBody(req);
  const started = Date.now();
  try {
    const out =
      op?.kind === 'change'
        ? await s.serial(async () => {
            try {
              return await invoke(s.host, name, input);
            } finally {
              for (const effect of s.takeEffects()) s.emit({ type: 'changed', effect, by: 'op', op: name });
            }
          })
        : await invoke(s.host, name, input);
    send(res, 200, out);
    // Who: the holder of the root-only token (the socket is verified and unreachable from qubes).
    s.log(`op ${name}${about(input)} by ${c.who}: ok (${Date.now() - started} ms)`);
  } catch (e) {
    const d = e instanceof QnetError ? e.diag : diag('QNET6199', `internal error in ${name}: ${(e as Error)?.message ?? String(e)}`);
    send(res, e instanceof QnetError ? statusOf(d) : 500, { diagnostics: [d] });
    s.log(`op ${name}${about(input)} by ${c.who}: refused ${d.code} (${Date.now() - started} ms)`);
  } finally {
    if (op?.kind === 'change') s.afterChange();
  }
}

/** Answer with the refusal `e` carries (a 4xx), or 500 for anything else. */
export function refuse(res: ServerResponse, e: unknown): void {
  const r = e instanceof HttpRefusal ? e : new HttpRefusal(500, diag('QNET6199', `internal error: ${(e as Error)?.message ?? String(e)}`));
  send(res, r.status, { diagnostics: [r.diag] });
}

/** The socket's door: one token (root-only, verified daemon), which may do everything. */
export async function handle(s: Served, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = req.url ?? '';
    if (req.method === 'HEAD' && url === '/v1/ping') return void res.writeHead(204).end();
    if (req.headers.authorization !== `Bearer ${s.token()}`) throw new HttpRefusal(401, diag('QNET6107', 'not authorised'));
    if (req.method === 'GET' && url === '/v1/events') {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      s.listeners.add(res);
      req.on('close', () => s.listeners.delete(res));
      res.write(JSON.stringify({ type: 'hello', pid: process.pid }) + '\n');
      return;
    }
    await route(s, { role: 'editor', who: 'the token holder' }, req, res);
  } catch (e) {
    refuse(res, e);
  }
}

/** The routes both doors share: GET /v1/ops, POST /v1/ops/<name>, GET /v1/status; else 404 (thrown). */
export async function route(s: Served, c: Caller, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '';
  if (req.method === 'GET' && url === '/v1/ops') return send(res, 200, await describeOps());
  const m = /^\/v1\/ops\/([A-Za-z][A-Za-z0-9.-]{0,63})$/.exec(url);
  if (m) {
    if (req.method !== 'POST') throw new HttpRefusal(405, diag('QNET6108', `use POST for /v1/ops/${m[1]}`));
    return await serveOp(s, c, m[1]!, req, res);
  }
  if (req.method === 'GET' && url === '/v1/status') return send(res, 200, s.status());
  throw new HttpRefusal(404, diag('QNET6109', `no such path: ${req.method} ${url.slice(0, 100)}`, { hint: 'GET /v1/ops lists the operations' }));
}
