// The manager's only way to the daemon: the typed operations over HTTP (POST /v1/ops/<name>), the
// event stream (GET /v1/events, Server-Sent Events read with fetch, since EventSource cannot send a
// bearer token) and GET /v1/session. Nothing here computes policy; pages show what ops return.
import type { DaemonEvent } from '../../daemon/server.js';

export interface Diagnostic {
  code: string;
  message: string;
  hint?: string;
  severity?: string;
  [k: string]: unknown;
}

export interface Reply<T> {
  value: T;
  warnings: Diagnostic[];
}

/** A refusal from the daemon (4xx/5xx with diagnostics), or the network failing under it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly diagnostics: Diagnostic[],
  ) {
    super(diagnostics.map((d) => `${d.code}: ${d.message}`).join('; ') || `HTTP ${status}`);
  }
}

export type Role = 'editor' | 'viewer';
export type QnetEvent = DaemonEvent & { time?: string };

const KEY = 'qnet-token';

/**
 * The token from `#token=…` (what `qnet manager` prints), kept in this tab's sessionStorage so a
 * reload works, and removed from the address bar at once (it must not end in history or a screenshot).
 */
export function takeToken(): string | undefined {
  const m = /(?:^#|&)token=([0-9a-f]{64})(?:&|$)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, m[1]!);
    history.replaceState(null, '', location.pathname + '#/qubes');
  }
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}

let token = '';
export function useToken(t: string): void {
  token = t;
}

const headers = (json: boolean): Record<string, string> => ({
  authorization: `Bearer ${token}`,
  ...(json ? { 'content-type': 'application/json' } : {}),
});

async function answer<T>(r: Response): Promise<T> {
  let body: unknown;
  try {
    body = await r.json();
  } catch {
    throw new ApiError(r.status, [{ code: 'HTTP', message: `the daemon answered ${r.status} without JSON` }]);
  }
  if (!r.ok) throw new ApiError(r.status, (body as { diagnostics?: Diagnostic[] }).diagnostics ?? []);
  return body as T;
}

/** One operation: its typed value and warnings, or an ApiError with the daemon's diagnostics. */
export async function call<T>(op: string, input: object = {}, signal?: AbortSignal): Promise<Reply<T>> {
  let r: Response;
  try {
    r = await fetch(`/v1/ops/${op}`, { method: 'POST', headers: headers(true), body: JSON.stringify(input), ...(signal ? { signal } : {}) });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, [{ code: 'NETWORK', message: `the daemon cannot be reached (${(e as Error).message})` }]);
  }
  return answer<Reply<T>>(r);
}

export async function session(): Promise<{ role: Role; pid: number }> {
  return answer(await fetch('/v1/session', { headers: headers(false) }));
}

/**
 * Follow the daemon's events until the returned function is called; reconnects after a drop
 * (state 'closed' meanwhile, so the page can say its view may be stale and re-read on 'open').
 */
export function subscribe(onEvent: (e: QnetEvent) => void, onState: (s: 'open' | 'closed') => void): () => void {
  let stopped = false;
  let ac: AbortController | undefined;
  const run = async () => {
    while (!stopped) {
      ac = new AbortController();
      try {
        const r = await fetch('/v1/events', { headers: headers(false), signal: ac.signal });
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        onState('open');
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            for (const line of block.split('\n'))
              if (line.startsWith('data: ')) {
                try {
                  onEvent(JSON.parse(line.slice(6)) as QnetEvent);
                } catch {
                  /* a line that is not JSON is not an event */
                }
              }
          }
        }
      } catch {
        /* dropped or refused: retry below */
      }
      if (stopped) return;
      onState('closed');
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void run();
  return () => {
    stopped = true;
    ac?.abort();
  };
}
