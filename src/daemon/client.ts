// Talking to a running daemon: the CLI forwards its command when a daemon serves the state
// directory, and works on the files directly when none does (like firewall-offline-cmd).
import { request } from 'node:http';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { readToken, socketName } from './socket.js';
import { runDir } from '../store/paths.js';

export class DaemonClient {
  private constructor(
    private readonly socket: string,
    private readonly token: string,
  ) {}

  /** A client if a daemon answers for this state dir, else null. Non-root host users are refused. */
  static async connect(stateDir: string): Promise<DaemonClient | null> {
    const socket = socketName(stateDir);
    if (!(await answers(socket))) return null;
    let token: string;
    try {
      token = await readToken(runDir(stateDir));
    } catch (e) {
      throw new QnetError(
        diag('QNET6001', `a qnet daemon serves ${stateDir}, and talking to it needs root (${(e as NodeJS.ErrnoException).code ?? 'no token'})`),
      );
    }
    return new DaemonClient(socket, token);
  }

  /** One JSON request; the reply body parsed as JSON (null when empty). */
  async request(method: 'GET' | 'POST' | 'HEAD', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    let r: { status: number; text: string };
    try {
      r = await this.call(method, path, body === undefined ? undefined : JSON.stringify(body));
    } catch (e) {
      throw new QnetError(diag('QNET6006', `the qnet daemon went away during the request (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`));
    }
    return { status: r.status, body: r.text.trim() ? (JSON.parse(r.text) as unknown) : null };
  }

  async status(): Promise<unknown> {
    return JSON.parse((await this.call('GET', '/v1/status')).text);
  }

  /** Stream events (JSON lines) until `signal` aborts or the daemon goes away. */
  events(onLine: (line: string) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, path: '/v1/events', method: 'GET', headers: this.headers(), signal, agent: false }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            onLine(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', (e) => ((e as Error).name === 'AbortError' ? resolve() : reject(e)));
      req.end();
    });
  }

  private headers() {
    return { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' };
  }

  private call(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      // A connection per call (agent: false): a pooled keep-alive socket that the server closes as
      // it is reused fails with ECONNRESET (nodejs/node#47130, #52649), seen under load in tests.
      const req = request({ socketPath: this.socket, path, method, headers: this.headers(), agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/v1/ping', method: 'HEAD', timeout: 2000, agent: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}
