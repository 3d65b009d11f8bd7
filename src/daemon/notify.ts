// sd_notify(3) for the daemon under systemd (Type=notify): readiness, reload, stop, status.
// Node has no AF_UNIX datagram sockets, so systemd-notify sends the message. Run by root it sends
// with its parent's PID — ours — as the sender (checked with systemd 252), and the unit says
// NotifyAccess=all so a message sent under its own PID counts too. It waits (BARRIER=1) until the
// manager has read the message, so nothing is dropped for a sender that exited too soon.
// Without $NOTIFY_SOCKET (not under systemd) every call does nothing.
import { spawn } from 'node:child_process';
import { toolEnv, toolPath } from '../backend/netns/runner.js';

export interface NotifyOptions {
  /** Where NOTIFY_SOCKET is read; default: process.env, taken once (see takeNotifySocket). */
  env?: NodeJS.ProcessEnv;
  /** Give up after this long (default 10 s); the manager reads at once, a barrier waits for it. */
  timeoutMs?: number;
}

let taken: { socket: string | undefined } | undefined;
/**
 * Read $NOTIFY_SOCKET once and remove it from process.env, so the programs the daemon starts (nft,
 * ip, the world's services) never inherit it: with NotifyAccess=all they could speak for qnet.
 * Call early in the daemon; the notify functions call it too.
 */
export function takeNotifySocket(): string | undefined {
  if (!taken) {
    taken = { socket: process.env['NOTIFY_SOCKET'] };
    delete process.env['NOTIFY_SOCKET'];
  }
  return taken.socket;
}

/** One field's value on one line: a newline would start a field of the sender's choosing. */
const oneLine = (s: string): string => s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 1000);

/** Send fields (READY=1, STATUS=…) to the service manager; resolves at once when there is none. */
export async function sdNotify(fields: Record<string, string>, o: NotifyOptions = {}): Promise<void> {
  const socket = o.env ? o.env['NOTIFY_SOCKET'] : takeNotifySocket();
  if (!socket) return;
  // An abstract name (@…) or an absolute path; anything else is not from a service manager.
  if (!/^[@/]/.test(socket) || Buffer.byteLength(socket) > 107) throw new Error(`NOTIFY_SOCKET is not a socket address: ${JSON.stringify(socket)}`);
  const args = Object.entries(fields).map(([k, v]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`sd_notify field ${JSON.stringify(k)} is not a variable name`);
    return `${k}=${oneLine(v)}`;
  });
  const cmd = toolPath('systemd-notify');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...toolEnv(), NOTIFY_SOCKET: socket } });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 10_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`systemd-notify ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${err.trim().split('\n')[0] ?? ''}`));
    });
  });
}

/** The daemon listens and the kernel is converged: `systemctl start qnet` returns now. */
export const notifyReady = (status = 'serving', o?: NotifyOptions): Promise<void> => sdNotify({ READY: '1', STATUS: status }, o);

/**
 * A reload (SIGHUP: re-resolve every name now) has begun; send notifyReady() when it is done.
 * MONOTONIC_USEC is what Type=notify-reload (systemd ≥ 253) requires; older managers ignore it.
 */
export const notifyReloading = (o?: NotifyOptions): Promise<void> =>
  sdNotify({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) }, o);

/** The daemon is shutting down (SIGTERM). */
export const notifyStopping = (o?: NotifyOptions): Promise<void> => sdNotify({ STOPPING: '1' }, o);

/** A line for `systemctl status qnet`. */
export const notifyStatus = (text: string, o?: NotifyOptions): Promise<void> => sdNotify({ STATUS: text }, o);
