// qnet daemon (foreground; systemd/qnet.service runs it), qnet events (its JSON-lines stream) and
// qnet manager (the URL of its HTTP API, token included). Sessions and local look-ups, not
// operations: they run here and are never asked of a daemon.
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
    .option('--http <address>', 'also serve the API over HTTP on a loopback address, e.g. 127.0.0.1:8765 (qnet manager prints its URL)')
    .action(async (o: { backend?: string; icmpRatelimit: boolean; http?: string }) => {
      if (o.backend && o.backend !== 'netns' && o.backend !== 'sim') throw new UsageError(`unknown backend '${o.backend}'`, 'netns, sim');
      // Refused before anything starts: only loopback (no TLS; see daemon/http.ts).
      const http = o.http === undefined ? undefined : (await import('../../daemon/http.js')).parseHttpAddress(o.http);
      const { runDaemon } = await import('../../daemon/run.js');
      await runDaemon({
        stateDir: ctx.stateDir(),
        env: ctx.io.env,
        log: (l) => ctx.io.err(l + '\n'),
        liftIcmpRateLimit: !o.icmpRatelimit,
        ...(http ? { http } : {}),
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

  program
    .command('manager')
    .description("print the URL of the daemon's HTTP API (qnet daemon --http), with a token in its fragment: open it on this machine")
    .option('--viewer', 'a URL with the viewer token (read operations only) instead of the editor token')
    .option('--json', 'print {url, role} as JSON')
    .action(async (o: { viewer?: boolean; json?: boolean }) => {
      const { managerUrl } = await import('../../daemon/http.js');
      const role = o.viewer ? 'viewer' : 'editor';
      const url = await managerUrl(ctx.stateDir(), role);
      if (o.json) return void ctx.io.out(json({ url, role }));
      ctx.io.out(url + '\n');
      ctx.io.err(
        `qnet manager: open it in a browser on this machine. The token (${role}) is after '#': browsers never send a fragment to a server nor in a Referer, and the page removes it from the address bar; whoever reads this URL can act as ${role}.\n`,
      );
    });
}
