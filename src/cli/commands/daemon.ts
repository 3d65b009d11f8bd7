// qnet daemon (foreground; systemd/qnet.service runs it) and qnet events (its JSON-lines stream).
import type { Command } from 'commander';
import { DaemonClient } from '../../daemon/client.js';
import { Daemon } from '../../daemon/server.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../engine/wiring.js';
import { diag } from '../../model/diagnostics.js';
import { QnetError } from '../../model/result.js';
import type { Ctx } from '../context.js';
import { UsageError } from '../errors.js';
import { json } from '../table.js';

export function registerDaemon(program: Command, ctx: Ctx): void {
  program
    .command('daemon')
    .description('run the qnet daemon in the foreground: the only writer, timers, events (stop with SIGTERM)')
    .option('--backend <backend>', 'netns (namespaces, root) or sim (the simulator)')
    .option('--no-icmp-ratelimit', 'lift the ICMP rate limit in every namespace (tests, demos)')
    .action(async (o: { backend?: string; icmpRatelimit: boolean }) => {
      if (o.backend && o.backend !== 'netns' && o.backend !== 'sim') throw new UsageError(`unknown backend '${o.backend}'`, 'netns, sim');
      const stateDir = ctx.stateDir();
      if (await DaemonClient.connect(stateDir).catch(() => true))
        throw new QnetError(diag('QNET6003', `a qnet daemon already serves ${stateDir}`));
      const runtime = await runtimeFor(stateDir, ctx.io.env, o.backend ? { backend: o.backend as 'netns' | 'sim' } : {});
      const d = new Daemon({
        stateDir,
        runtime,
        log: (l) => ctx.io.err(l + '\n'),
        ...(o.icmpRatelimit ? {} : { sysctls: NO_ICMP_RATELIMIT }),
      });
      await d.start();
      await new Promise<void>((resolve) => {
        const stop = () => void d.stop().then(resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });

  program
    .command('events')
    .description('follow the daemon\'s events (JSON lines): starts, stops, applies, blocks, cut flows')
    .option('--status', 'print the daemon\'s status once instead')
    .action(async (o: { status?: boolean }) => {
      const c = await DaemonClient.connect(ctx.stateDir());
      if (!c) throw new QnetError(diag('QNET6004', `no qnet daemon serves ${ctx.stateDir()}`, { hint: 'qnet daemon' }));
      if (o.status) return void ctx.io.out(json(await c.status()));
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      await c.events((l) => ctx.io.out(l + '\n'), ac.signal);
    });
}
