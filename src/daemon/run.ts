// The `qnet daemon` session: choose the runtime, start (Daemon.start refuses when another daemon or
// anything else holds the socket), and run until SIGTERM/SIGINT. SIGHUP re-resolves every name now (`systemctl
// reload qnet`, as `systemctl reload qubes-firewall` does in Qubes).
import { NO_ICMP_RATELIMIT, runtimeFor } from '../engine/wiring.js';
import { notifyReady, notifyReloading, notifyStopping, takeNotifySocket } from './notify.js';
import { Daemon } from './server.js';
import type { HttpAddress } from './http.js';

export interface RunDaemonOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  backend?: 'netns' | 'sim';
  liftIcmpRateLimit?: boolean;
  /** Serve the API over HTTP too (parsed and checked for loopback by the CLI: parseHttpAddress). */
  http?: HttpAddress;
}

export async function runDaemon(o: RunDaemonOptions): Promise<void> {
  takeNotifySocket(); // before any child process could inherit it
  const runtime = await runtimeFor(o.stateDir, o.env, o.backend ? { backend: o.backend } : {});
  const d = new Daemon({ stateDir: o.stateDir, runtime, log: o.log, ...(o.liftIcmpRateLimit ? { sysctls: NO_ICMP_RATELIMIT } : {}), ...(o.http ? { http: o.http } : {}) });
  try {
    await d.start();
  } catch (e) {
    await d.stop().catch(() => {}); // let go of the socket it claimed
    throw e;
  }
  // Ready once the kernel is converged and the socket verified-published: `systemctl start qnet &&
  // qnet start work` finds the daemon.
  await notifyReady(`serving ${o.stateDir}`);
  await new Promise<void>((resolve) => {
    const reload = () =>
      void notifyReloading()
        .then(() => d.reload())
        .catch((e: Error) => o.log(`qnet daemon: reload failed: ${e.message}`))
        .finally(() => void notifyReady(`serving ${o.stateDir}`));
    const stop = () => {
      process.off('SIGHUP', reload);
      void notifyStopping().finally(() => void d.stop().then(resolve));
    };
    process.on('SIGHUP', reload);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
