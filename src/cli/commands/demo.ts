// qnet demo: the main job. The default Qubes layout, live — in namespaces where it can (root,
// nftables), on the simulator otherwise — with a stand-in world serving a web page and DNS, a daemon
// keeping it all in step, and a list of things to try. `qnet demo --down` removes what it made.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isLive, readPidFile } from '../../daemon/socket.js';
import { diag } from '../../model/diagnostics.js';
import { QnetError } from '../../model/result.js';
import type { QubeView } from '../../ops/views.js';
import { packageRoot, runDir } from '../../store/paths.js';
import { readRuntime } from '../../store/runtime-file.js';
import type { Ctx } from '../context.js';
import { daemonTransport, localTransport } from '../transport.js';
import { lsTable } from './ls.js';

/** The demo's policy: work may use DNS, ping, and web.example.com over http; untrusted may not reach other.example.com. */
const DEMO_RULES: Record<string, string> = {
  work: 'action=accept specialtarget=dns\naction=accept proto=icmp\naction=accept dsthost=web.example.com proto=tcp dstports=80\n',
  untrusted: 'action=drop dsthost=other.example.com\naction=accept\n',
};

const MARKER = '.created-by-demo';

const binPath = (): string => join(packageRoot(), 'bin', 'qnet.js');

async function waitFor<T>(what: string, fn: () => Promise<T | null>, ms: number, log?: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > until) {
      const tail = log && existsSync(log) ? `\n${readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n')}` : '';
      throw new QnetError(diag('QNET7001', `${what} did not come up within ${ms / 1000} s${tail}`));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function registerDemo(program: Command, ctx: Ctx): void {
  program
    .command('demo')
    .description('bring up the default layout live (namespaces, or the simulator without root) with a stand-in world')
    .option('--down', 'remove everything the demo created')
    .option('--backend <backend>', 'netns or sim (default: netns where possible)')
    .action(async (o: { down?: boolean; backend?: string }) => {
      const dir = ctx.stateDir();
      const out = (s: string) => ctx.io.out(s + '\n');
      const { netnsUnavailable, runtimeFor } = await import('../../ops/sessions.js');
      if (o.down) return down(ctx, dir, out);

      if (o.backend && o.backend !== 'netns' && o.backend !== 'sim') throw new QnetError(diag('QNET9002', `unknown backend '${o.backend}'`));
      const backend = (o.backend as 'netns' | 'sim' | undefined) ?? (netnsUnavailable() === null ? 'netns' : 'sim');
      if (backend === 'sim' && !o.backend) out(`qnet demo: on the simulator (${netnsUnavailable()})`);

      // The layout: a fresh Qubes install and the demo's rules, unless the state dir has qubes already.
      const fresh = !existsSync(join(dir, 'qubes.json'));
      if (fresh) {
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, MARKER), 'qnet demo created this state directory; qnet demo --down removes it\n');
        const local = await localTransport(dir, ctx.io);
        await local.call('qubes.init', {});
        for (const [qube, text] of Object.entries(DEMO_RULES)) await local.call('firewall.set', { qube, text });
      }
      const runtime = await runtimeFor(dir, ctx.io.env, { backend });

      let client = await daemonTransport(dir);
      if (!client) {
        await mkdir(runDir(dir), { recursive: true });
        const log = join(runDir(dir), 'daemon.log');
        const fd = openSync(log, 'a');
        const child = spawn(process.execPath, [binPath(), '--state', dir, 'daemon', '--backend', runtime.backend], {
          detached: true,
          stdio: ['ignore', fd, fd],
          env: { ...process.env, QNET_STATE: dir },
        });
        child.unref();
        client = await waitFor('the qnet daemon', () => daemonTransport(dir), 30_000, log);
      }
      await client.call('start', { qubes: ['work', 'personal', 'untrusted', 'vault'] }).catch((e: QnetError) => {
        throw new QnetError(diag('QNET7002', `starting the qubes failed: ${e.message}`));
      });
      const { value: qubes } = await client.call<QubeView[]>('qubes.list', {});
      const st = `--state ${dir}`;
      out(`qnet demo is up (${runtime.backend === 'netns' ? `network namespaces ${runtime.prefix}*` : 'simulator'}), state in ${dir}\n`);
      out(lsTable(qubes, true).trimEnd());
      out('\nTry:');
      if (runtime.backend === 'netns') {
        out(`  npx qnet ${st} run work -- curl -s http://web.example.com/        # allowed by work's rule 2`);
        out(`  npx qnet ${st} run work -- curl -sS -m 3 http://other.example.com/ # refused: admin-prohibited, at once`);
        out(`  npx qnet ${st} run personal -- ping -c1 -W2 10.137.0.3          # qubes cannot reach each other`);
        out(`  npx qnet ${st} counters work                                      # packets per rule, per hop`);
      }
      out(`  npx qnet ${st} check work other.example.com:80                   # why: the deciding rule, hop by hop`);
      out(`  npx qnet ${st} matrix                                             # who can reach whom`);
      out(`  npx qnet ${st} diff firewall work add accept other.example.com    # what a change would open`);
      out(`  npx qnet ${st} firewall work                                      # work's rules, as qvm-firewall shows them`);
      out(`  npx qnet ${st} events                                             # the daemon's event stream`);
      out(`  npx qnet ${st} demo --down                                        # remove everything`);
    });
}

async function down(ctx: Ctx, dir: string, out: (s: string) => void): Promise<void> {
  const runtime = existsSync(dir) ? await readRuntime(dir, ctx.io.env).catch(() => null) : null;
  const client = await daemonTransport(dir).catch(() => null);
  const stopAll = client ?? (existsSync(join(dir, 'qubes.json')) && runtime?.backend === 'netns' ? await localTransport(dir, ctx.io) : null);
  await stopAll?.call('shutdown', { all: true }).catch((e: Error) => ctx.io.err(`qnet demo: shutting the qubes down: ${e.message} (cleaning up anyway)\n`));
  // Stop the daemon we started, by its PID, after checking it is one: the pid file's process, alive
  // with the recorded start time (not a reused pid), running qnet's daemon.
  const pf = await readPidFile(dir).catch(() => undefined);
  if (pf && (await isLive(pf))) {
    const pid = pf.pid;
    const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    if (cmd.includes('qnet') && cmd.includes('daemon')) {
      process.kill(pid, 'SIGTERM');
      await waitFor('the daemon to stop', async () => (existsSync(`/proc/${pid}`) ? null : true), 10_000).catch(() => process.kill(pid, 'SIGKILL'));
    }
  }
  // Whatever is left under the demo's prefix: the world (its services stopped by PID) and namespaces.
  const { teardownLeftovers } = await import('../../ops/sessions.js');
  const left = runtime ? await teardownLeftovers(dir, runtime) : [];
  if (left.length) out(`qnet demo: removed leftover namespaces: ${left.join(', ')}`);
  if (existsSync(join(dir, MARKER))) {
    await rm(dir, { recursive: true, force: true });
    out(`qnet demo: removed ${dir}`);
  }
  out('qnet demo is down');
}
