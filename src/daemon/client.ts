// Talking to a running daemon: the CLI sends its requests to the daemon when one serves the state
// directory, and works on the files directly when none does (like firewall-offline-cmd). It talks
// only to the verified daemon (socket.ts says how): the token never goes to anything else.
//
// The race, and why the check runs on both sides of connect(2): verifying and then connecting
// leaves a window in which the daemon may die and another process bind the name; connecting and
// then verifying leaves one in which an impostor accepts us, closes its listener and a real daemon
// binds the name. A socket holds its name from bind until it is closed, and a name is held by one
// socket at a time; so when the same listening socket (same inode, the daemon's) holds the name just
// before and just after connect, it held it at connect, and our connection is in its queue. Each
// connection is checked so, not only the first: the daemon may be replaced between two requests.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { isCode } from '../store/atomic.js';
import { holderOf, isLive, listeningInodes, owns, readPidFile, readToken, socketName, Untrusted, type PidFile } from './socket.js';

/** A reply larger than this is refused (a status of 100k qubes is a few MiB). */
const MAX_REPLY = 256 * 1024 * 1024;
/** An event line longer than this is refused. */
const MAX_EVENT_LINE = 16 * 1024 * 1024;
/**
 * How long connect waits for a holder of the name to become verifiable before refusing: a daemon
 * binds its name first and writes its pid file once it is ready, and a stale pid file is replaced
 * only then; this covers that gap when the two happen to meet, and is paid only by a refusal.
 */
const PATIENCE_MS = 1000;

type Found =
  | { kind: 'none' }
  | { kind: 'ok'; inode: number; pid: PidFile; token: string }
  /** Retried until PATIENCE_MS runs out; `error` builds the refusal (it may scan /proc). */
  | { kind: 'unverified'; error: () => Promise<QnetError> }
  | { kind: 'refused'; error: QnetError };

export class DaemonClient {
  private constructor(
    private readonly name: string,
    private readonly stateDir: string,
    private readonly inode: number,
    private readonly token: string,
    readonly pid: number,
  ) {}

  /** A verified client, or null when no daemon serves stateDir; throws QnetError when one answers but cannot be verified or the caller may not talk to it. */
  static async connect(stateDir: string): Promise<DaemonClient | null> {
    const name = socketName(stateDir);
    const deadline = Date.now() + PATIENCE_MS;
    for (;;) {
      const f = await find(stateDir, name);
      if (f.kind === 'none') return null;
      if (f.kind === 'ok') return new DaemonClient(name, stateDir, f.inode, f.token, f.pid.pid);
      if (f.kind === 'refused') throw f.error;
      if (Date.now() >= deadline) throw await f.error();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** One JSON request. body is JSON-encoded when given. Reply body parsed as JSON (null when empty). Bounded: reply
   *  size (256 MiB), time (opts.timeoutMs, default none for changes that may take long); a connection that is
   *  closed mid-request gives QnetError QNET6006. */
  async request(method: 'GET' | 'POST' | 'HEAD', path: string, body?: unknown, opts: { timeoutMs?: number } = {}): Promise<{ status: number; body: unknown }> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const sock = await this.open();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const fail = (e: unknown) => {
        clearTimeout(timer);
        req.destroy();
        reject(e instanceof QnetError ? e : gone(this.stateDir, e));
      };
      const req = this.http(sock, method, path, data, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY) fail(badReply(`larger than ${MAX_REPLY / 1024 / 1024} MiB`));
          else chunks.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          if (text.trim() === '') return resolve({ status: res.statusCode ?? 0, body: null });
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            reject(badReply(`not JSON (HTTP ${res.statusCode})`));
          }
        });
        res.on('error', fail);
        res.on('close', () => res.complete || fail(undefined));
      });
      req.on('error', fail);
      if (opts.timeoutMs !== undefined)
        timer = setTimeout(() => fail(new QnetError(diag('QNET6007', `the qnet daemon did not answer ${method} ${path} within ${opts.timeoutMs} ms`))), opts.timeoutMs);
      req.end(data);
    });
  }

  /** Stream events (JSON lines) until signal aborts or the daemon goes away. */
  async events(onLine: (line: string) => void, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    const sock = await this.open();
    return new Promise((resolve, reject) => {
      const done = () => {
        req.destroy();
        resolve();
      };
      const fail = (e: QnetError) => {
        req.destroy();
        reject(e);
      };
      const onAbort = () => done();
      signal?.addEventListener('abort', onAbort, { once: true });
      const req = this.http(sock, 'GET', '/v1/events', undefined, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          res.on('data', (c: string) => buf.length < 4096 && (buf += c));
          res.on('end', () => fail(new QnetError(diag('QNET6002', `the daemon refused the event stream (${res.statusCode}): ${buf.trim().slice(0, 4096)}`))));
          return;
        }
        res.on('data', (c: string) => {
          buf += c;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            onLine(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
          if (buf.length > MAX_EVENT_LINE) fail(badReply(`an event line is longer than ${MAX_EVENT_LINE / 1024 / 1024} MiB`));
        });
        // The daemon going away ends the stream: that is how it ends, not an error.
        res.on('end', done);
        res.on('error', done);
        res.on('close', done);
      });
      req.on('error', done);
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.end();
      if (signal?.aborted) done(); // aborted while the connection was being checked
    });
  }

  /** A connection to the verified daemon (see the top of this file), or a QnetError. */
  private async open(): Promise<Socket> {
    await this.stillHeld();
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ path: this.name });
      s.once('error', (e) => reject(gone(this.stateDir, e)));
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
    });
    try {
      await this.stillHeld();
    } catch (e) {
      sock.destroy();
      throw e;
    }
    return sock;
  }

  /** The verified listening socket still holds the name. */
  private async stillHeld(): Promise<void> {
    const held = await listeningInodes(this.name);
    if (held.length === 1 && held[0] === this.inode) return;
    if (held.length === 0) throw gone(this.stateDir);
    throw new QnetError(diag('QNET6005', `something else holds qnet's daemon socket for ${this.stateDir} now (the daemon was pid ${this.pid}): not sending the token`));
  }

  private http(sock: Socket, method: string, path: string, data: string | undefined, onRes: (res: IncomingMessage) => void) {
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}` };
    if (data !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    // A connection per request, the verified one (no agent, never pooled): a pooled keep-alive
    // socket that the server closes as it is reused fails with ECONNRESET (nodejs/node#47130,
    // #52649), seen under load in tests; and a pooled socket would skip the check in open().
    return httpRequest({ createConnection: () => sock, method, path, headers }, onRes);
  }
}

/** What holds the name for stateDir, checked against the pid file (one attempt). */
async function find(stateDir: string, name: string): Promise<Found> {
  const held = await listeningInodes(name);
  if (held.length === 0) {
    // Nothing answers. A live daemon without its socket is between closing it and removing its
    // pid file (stopping): no daemon, then. A pid file we may not read is no daemon either.
    const p = await readPidFile(stateDir).catch(() => undefined);
    if (p && (await isLive(p)))
      return { kind: 'unverified', error: async () => new QnetError(diag('QNET6011', `the qnet daemon for ${stateDir} (pid ${p.pid}) does not listen on its socket (stopping?): try again`)) };
    return { kind: 'none' };
  }
  const refuse = (why: string) => new QnetError(diag('QNET6005', `${why}: not sending the token`));
  if (held.length > 1) return { kind: 'unverified', error: async () => refuse(`several sockets claim qnet's daemon socket for ${stateDir} (inodes ${held.join(', ')})`) };
  const inode = held[0]!;
  let p: PidFile | undefined;
  let why = 'no pid file';
  // Whether the holder may be a daemon of ours that has not written its pid file yet.
  let maybeStarting = true;
  try {
    p = await readPidFile(stateDir);
  } catch (e) {
    if (isCode(e, 'EACCES') || isCode(e, 'EPERM')) return { kind: 'refused', error: needsRoot(stateDir, e) };
    if (!(e instanceof Untrusted) && !isCode(e, 'ENOENT') && !isCode(e, 'ELOOP') && !isCode(e, 'ENOTDIR')) throw e;
    if (e instanceof Untrusted) {
      why = e.message;
      maybeStarting = false;
    }
  }
  if (p && (await owns(p, inode))) {
    try {
      return { kind: 'ok', inode, pid: p, token: await readToken(stateDir, p.uid) };
    } catch (e) {
      if (isCode(e, 'EACCES') || isCode(e, 'EPERM')) return { kind: 'refused', error: needsRoot(stateDir, e) };
      if (e instanceof Untrusted || isCode(e, 'ENOENT') || isCode(e, 'ELOOP')) return { kind: 'unverified', error: async () => refuse(`the qnet daemon for ${stateDir} (pid ${p.pid}) has no trustworthy token (${e instanceof Untrusted ? e.message : (e as NodeJS.ErrnoException).code})`) };
      throw e;
    }
  }
  if (p && (await isLive(p))) {
    why = `its pid file names pid ${p.pid}, which does not hold the socket`;
    maybeStarting = false;
  } else if (p) why = `its pid file names pid ${p.pid}, which is gone (stale)`;
  return {
    kind: 'unverified',
    error: async () => {
      const h = await holderOf(inode);
      // Root (or the caller) holding the name with no pid file, or a stale one, is a daemon that is
      // starting (it claims the name first, publishes when ready). It gets nothing either way.
      if (h && (h.uid === 0 || h.uid === process.getuid?.()) && maybeStarting)
        return new QnetError(diag('QNET6011', `the qnet daemon for ${stateDir} (pid ${h.pid}) is not ready yet: try again`));
      return refuse(`something else holds qnet's daemon socket for ${stateDir} (${h ? `pid ${h.pid}, uid ${h.uid}` : 'holder unknown'}; ${why})`);
    },
  };
}

function needsRoot(stateDir: string, e: unknown): QnetError {
  return new QnetError(diag('QNET6001', `a qnet daemon serves ${stateDir}, and talking to it needs root (${(e as NodeJS.ErrnoException).code})`));
}

function gone(stateDir: string, e?: unknown): QnetError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return new QnetError(diag('QNET6006', `the qnet daemon for ${stateDir} went away during the request${code ? ` (${code})` : ''}`));
}

function badReply(what: string): QnetError {
  return new QnetError(diag('QNET6008', `the qnet daemon's reply is ${what}`));
}
