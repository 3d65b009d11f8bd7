// qnet demo: the main job. The default Qubes layout, live — in namespaces where it can (root,
// nftables), on the simulator otherwise — with a stand-in world serving a web page and DNS, a daemon
// keeping it all in step, and a list of things to try. `qnet demo --down` removes what it made.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DaemonClient } from '../../daemon/client.js';
import { pidPath } from '../../daemon/socket.js';
import { netnsUnavailable, runtimeFor } from '../../engine/wiring.js';
import { runDir } from '../../store/paths.js';
import { diag } from '../../model/diagnostics.js';
import { defaultLayout } from '../../model/layout.js';
import { parseApiRules } from '../../model/rule-parse.js';
import { QnetError, unwrap } from '../../model/result.js';
import { readRuntime } from '../../store/runtime-file.js';
import { NetnsBackend } from '../../backend/netns/netns-backend.js';
import { NetnsExecutor } from '../../backend/netns/netns-executor.js';
import { NodeRunner } from '../../backend/netns/runner.js';
import { destroyWorld } from '../../backend/netns/world.js';
import type { Ctx } from '../context.js';

/** The demo's policy: work may use DNS, ping, and web.example.com over http; untrusted may not reach other.example.com. */
const DEMO_RULES: Record<string, string> = {
  work: 'action=accept specialtarget=dns\naction=accept proto=icmp\naction=accept dsthost=web.example.com proto=tcp dstports=80\n',
  untrusted: 'action=drop dsthost=other.example.com\naction=accept\n',
};

const MARKER = '.created-by-demo';

function binPath(): string {
  // dist/src/cli/commands/demo.js or src/cli/commands/demo.ts → the repository's bin/qnet.js
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return join(dir, 'bin', 'qnet.js');
}

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
      if (o.down) return down(ctx, dir, out);

      if (o.backend && o.backend !== 'netns' && o.backend !== 'sim') throw new QnetError(diag('QNET9002', `unknown backend '${o.backend}'`));
      const backend = (o.backend as 'netns' | 'sim' | undefined) ?? (netnsUnavailable() === null ? 'netns' : 'sim');
      if (backend === 'sim' && !o.backend) out(`qnet demo: on the simulator (${netnsUnavailable()})`);

      // The layout: a fresh Qubes install and the demo's rules, unless the state dir has qubes already.
      const fresh = !existsSync(join(dir, 'qubes.json'));
      if (fresh) {
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, MARKER), 'qnet demo created this state directory; qnet demo --down removes it\n');
        await ctx.store().update((m) => {
          const l = defaultLayout();
          m.default_netvm = l.default_netvm;
          m.qubes = l.qubes;
          for (const [name, text] of Object.entries(DEMO_RULES)) m.qubes.get(name)!.rules = unwrap(parseApiRules(text));
        });
      }
      const runtime = await runtimeFor(dir, ctx.io.env, { backend });

      let client = await DaemonClient.connect(dir);
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
        client = await waitFor('the qnet daemon', () => DaemonClient.connect(dir), 30_000, log);
      }
      const r = await client.cli(['start', 'work', 'personal', 'untrusted', 'vault']);
      if (r.code !== 0) throw new QnetError(diag('QNET7002', `starting the qubes failed: ${r.stderr.trim()}`));
      const ls = await client.cli(['ls', '-n']);
      const st = `--state ${dir}`;
      out(`qnet demo is up (${runtime.backend === 'netns' ? `network namespaces ${runtime.prefix}*` : 'simulator'}), state in ${dir}\n`);
      out(ls.stdout.trimEnd());
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
  const client = await DaemonClient.connect(dir).catch(() => null);
  if (client) {
    const r = await client.cli(['shutdown', '--all']);
    if (r.code !== 0) ctx.io.err(`qnet demo: shutting the qubes down: ${r.stderr.trim()} (cleaning up anyway)\n`);
  } else if (existsSync(join(dir, 'qubes.json')) && runtime?.backend === 'netns')
    await ctx.store().update((m) => m.qubes.forEach((q) => (q.state = 'Halted'))).catch((e: Error) => ctx.io.err(`qnet demo: ${e.message} (cleaning up anyway)\n`));
  // Stop the daemon we started, by its PID, after checking it is one.
  const pidFile = pidPath(runDir(dir));
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    if (pid > 0 && cmd.includes('qnet') && cmd.includes('daemon')) {
      process.kill(pid, 'SIGTERM');
      await waitFor('the daemon to stop', async () => (existsSync(`/proc/${pid}`) ? null : true), 10_000).catch(() => process.kill(pid, 'SIGKILL'));
    }
  }
  // Whatever is left under the demo's prefix: the world (its services stopped by PID) and namespaces.
  if (runtime?.backend === 'netns' && netnsUnavailable() === null) {
    const runner = new NodeRunner();
    const netns = new NetnsBackend({ runner, prefix: runtime.prefix });
    await destroyWorld(runner, netns.ns('world'), { stateDir: runDir(dir) }).catch(() => {});
    const left = await netns.listNamespaces();
    if (left.length) {
      await new NetnsExecutor(netns, runner).tearDown(left);
      out(`qnet demo: removed leftover namespaces: ${left.join(', ')}`);
    }
  }
  if (existsSync(join(dir, MARKER))) {
    await rm(dir, { recursive: true, force: true });
    out(`qnet demo: removed ${dir}`);
  }
  out('qnet demo is down');
}
