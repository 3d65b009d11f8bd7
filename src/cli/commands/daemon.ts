// qnet daemon (foreground; systemd/qnet.service runs it) and qnet events (its JSON-lines stream).
// Both are sessions, not operations: they run here and are never asked of a daemon.
import type { Command } from 'commander';
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
      const { runDaemon } = await import('../../daemon/run.js');
      await runDaemon({
        stateDir: ctx.stateDir(),
        env: ctx.io.env,
        log: (l) => ctx.io.err(l + '\n'),
        liftIcmpRateLimit: !o.icmpRatelimit,
        ...(o.backend ? { backend: o.backend as 'netns' | 'sim' } : {}),
      });
    });

  program
    .command('events')
    .description("follow the daemon's events (JSON lines): changes and why, starts, stops, applies, blocks, cut flows")
    .option('--status', "print the daemon's status once instead")
    .action(async (o: { status?: boolean }) => {
      const { DaemonClient } = await import('../../daemon/client.js');
      const c = await DaemonClient.connect(ctx.stateDir());
      if (!c) throw new QnetError(diag('QNET6004', `no qnet daemon serves ${ctx.stateDir()}`, { hint: 'qnet daemon' }));
      if (o.status) return void ctx.io.out(json((await c.request('GET', '/v1/status')).body));
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      await c.events((l) => ctx.io.out(l + '\n'), ac.signal);
    });
}
