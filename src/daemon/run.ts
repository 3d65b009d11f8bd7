// The `qnet daemon` session: choose the runtime, start (Daemon.start refuses when another daemon or
// anything else holds the socket), and run until SIGTERM/SIGINT. SIGHUP re-resolves every name now (`systemctl
// reload qnet`, as `systemctl reload qubes-firewall` does in Qubes).
import { NO_ICMP_RATELIMIT, runtimeFor } from '../engine/wiring.js';
import { Daemon } from './server.js';

export interface RunDaemonOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  backend?: 'netns' | 'sim';
  liftIcmpRateLimit?: boolean;
}

export async function runDaemon(o: RunDaemonOptions): Promise<void> {
  const runtime = await runtimeFor(o.stateDir, o.env, o.backend ? { backend: o.backend } : {});
  const d = new Daemon({ stateDir: o.stateDir, runtime, log: o.log, ...(o.liftIcmpRateLimit ? { sysctls: NO_ICMP_RATELIMIT } : {}) });
  try {
    await d.start();
  } catch (e) {
    await d.stop().catch(() => {}); // let go of the socket it claimed
    throw e;
  }
  await new Promise<void>((resolve) => {
    const reload = () => void d.reload().catch((e: Error) => o.log(`qnet daemon: reload failed: ${e.message}`));
    const stop = () => {
      process.off('SIGHUP', reload);
      void d.stop().then(resolve);
    };
    process.on('SIGHUP', reload);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
