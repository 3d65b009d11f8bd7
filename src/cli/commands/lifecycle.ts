// Running qubes: qnet start / shutdown / kill (qvm-start, qvm-shutdown, qvm-kill), qnet run
// (qvm-run: a program inside the qube's namespace), qnet counters (packets per rule per hop) and
// qnet log (the drop log the daemon reads from each netvm).
import type { Command } from 'commander';
import { diag } from '../../model/diagnostics.js';
import { QnetError } from '../../model/result.js';
import type { CounterRow, DropLogView } from '../../ops/lifecycle.js';
import { DROP_LOG, type DropEntry } from '../../model/drop-log.js';
import type { QubeView } from '../../ops/views.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

export function registerLifecycle(program: Command, ctx: Ctx): void {
  program
    .command('start')
    .description('start qubes, and their netvm chains first (qvm-start)')
    .argument('<name...>', 'qubes to start')
    .action(async (qubes: string[]) => {
      const progress = ctx.io.isTTY && !ctx.globalOpts().dryRun ? await startPhases(ctx, qubes) : undefined;
      const t0 = Date.now();
      const { value, warnings } = await ctx.call<{ started: string[] }>('start', { qubes }, 'change');
      printWarnings(ctx.io, warnings); // a runtime switched to namespaces, or kept on the simulator
      progress?.(value.started, Date.now() - t0);
    });

  program
    .command('shutdown')
    .description('stop qubes (qvm-shutdown); a netvm with running clients refuses unless --force')
    .argument('[name...]', 'qubes to stop')
    .option('--all', 'stop every running qube (clients first)')
    .option('--exclude <name>', 'with --all: leave this qube running (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--force', 'stop a netvm even though clients use it (they stay running, detached)')
    .option('--wait', "accepted for qvm-shutdown's sake: qnet's shutdown always returns once the qubes are down")
    .action(async (qubes: string[], o: { all?: boolean; force?: boolean; exclude?: string[] }) => {
      if (o.exclude && !o.all) throw new UsageError('--exclude goes with --all');
      if (!o.all && !qubes.length) throw new UsageError('name the qubes to stop, or use --all');
      if (o.all && qubes.length) throw new UsageError('give either qubes or --all, not both');
      if (!o.exclude) return void (await ctx.call('shutdown', { qubes, all: !!o.all, force: !!o.force }, 'change'));
      // qvm-shutdown --all --exclude: every running qube but these; a netvm an excluded qube still
      // uses is refused as any netvm with running clients is, unless --force.
      const { value: all } = await ctx.call<QubeView[]>('qubes.list', { names: [] });
      const known = new Set(all.map((q) => q.name));
      const unknown = o.exclude.filter((n) => !known.has(n));
      if (unknown.length) throw new QnetError(diag('QNET2003', `no such qube: ${unknown.join(', ')}`, { hint: 'see qnet ls' }));
      const stop = all.filter((q) => q.state === 'Running' && !o.exclude!.includes(q.name)).map((q) => q.name);
      if (stop.length) await ctx.call('shutdown', { qubes: stop, force: !!o.force }, 'change');
    });

  program
    .command('kill')
    .description('stop qubes at once, without the running-clients check (qvm-kill)')
    .argument('<name...>', 'qubes to kill')
    .action(async (qubes: string[]) => void (await ctx.call('kill', { qubes }, 'change')));

  program
    .command('run')
    .description('run a program inside a qube, starting it (and its netvms) first (qvm-run)')
    .argument('<vm>', 'qube')
    .argument('<command...>', "the program and its arguments (put -- before them), or one shell command line in quotes")
    .option('-u, --user <user>', 'run as this user (default root, as qvm-run -u root)')
    .option('--no-autostart', 'fail instead of starting a halted qube')
    .option('--shell', 'run the words as one shell command line (sh -c)')
    .option('-p, --pass-io', "accepted for qvm-run's sake: qnet always passes stdin, stdout, stderr and the exit code")
    .usage("VM [--user U] -- CMD [ARG...]  |  VM 'shell command line'")
    .addHelpText('after', `
As qvm-run, one argument with a space in it is a shell command line, run by sh -c in the qube:
  qnet run work 'curl -s http://web.example.com/ | head -1'
  qnet run work -- curl -s http://web.example.com/     # a program and its arguments, no shell`)
    .action(async (vm: string, words: string[], o: { user?: string; autostart: boolean; shell?: boolean }) => {
      const argv = shellArgv(words, !!o.shell);
      // A session, not an operation: it runs here, and asks the daemon (if any) only to start the qube.
      const { value: [q] } = await ctx.call<QubeView[]>('qubes.list', { names: [vm] });
      if (q!.state !== 'Running') {
        if (!o.autostart) throw new QnetError(diag('QNET2103', `${vm} is not running`, { hint: `qnet start ${vm}` }));
        printWarnings(ctx.io, (await ctx.call('start', { qubes: [vm] }, 'change')).warnings);
      }
      const { execInQube } = await import('../../ops/sessions.js');
      ctx.setExitCode(await execInQube(ctx.stateDir(), ctx.io.env, vm, argv, o.user));
    });

  program
    .command('counters')
    .description("packets and bytes per rule, per hop of the qube's netvm chain, mapped back to its rules")
    .argument('<vm>', 'qube')
    .option('--all', 'also the base rules (anti-spoofing, replies, …) of each hop')
    .option('--json', 'JSON output')
    .action(async (vm: string, o: { all?: boolean; json?: boolean }) => {
      const { value: rows } = await ctx.call<CounterRow[]>('counters', { qube: vm, all: !!o.all });
      if (wantsJson(o)) return void ctx.io.out(json(rows));
      ctx.io.out(formatTable([['HOP', 'CHAIN', 'RULE', 'PACKETS', 'BYTES'], ...rows.map((r) => [r.hop, r.chain, r.rule, String(r.packets), String(r.bytes)])]));
    });

  program
    .command('log')
    .description('refused first packets, as the kernel of each running netvm logged them (needs the daemon): grouped by qube, destination and port')
    .option('--qube <name>', 'only what this qube sent')
    .option('--raw', 'one line per logged packet instead of groups')
    .option('-f, --follow', 'then print each new drop as it happens (until interrupted)')
    .option('--json', 'JSON output ({entries, groups}; with --follow one entry per line)')
    .addHelpText(
      'after',
      `
Each netvm logs the first packets its rules refuse (at most ${DROP_LOG.rate} a second per rule, after a short
burst), and the daemon maps each back to the qube and rule that refused it, keeping the last 1000.
Offline (no daemon) there is no log: nobody reads the kernel then.
  qnet log                  # what was refused, grouped: count, last time, the deciding rule
  qnet log --qube work -f   # work's drops, then each new one as it happens`,
    )
    .action(async (o: { qube?: string; raw?: boolean; follow?: boolean; json?: boolean }) => {
      const { value, warnings } = await ctx.call<DropLogView>('log', o.qube === undefined ? {} : { qube: o.qube });
      printWarnings(ctx.io, warnings); // the simulator logs nothing
      const line = (e: DropEntry) => [e.time, e.qube, e.dst, e.proto, e.dport === undefined ? (e.icmpType === undefined ? '-' : `type ${e.icmpType}`) : String(e.dport), e.decidedBy, e.ruleText ?? '-'];
      const head = ['TIME', 'QUBE', 'DESTINATION', 'PROTO', 'PORT', 'DECIDED BY', 'RULE'];
      if (o.follow) {
        if (wantsJson(o)) for (const e of value.entries) ctx.io.out(JSON.stringify(e) + '\n');
        else ctx.io.out(formatTable([head, ...value.entries.map(line)]));
        return followDrops(ctx, o.qube, (e) => ctx.io.out(wantsJson(o) ? JSON.stringify(e) + '\n' : line(e).join('  ') + '\n'));
      }
      if (wantsJson(o)) return void ctx.io.out(json(value));
      if (o.raw) return void ctx.io.out(formatTable([head, ...value.entries.map(line)]));
      if (!value.groups.length) return void ctx.io.err('qnet: no refused packets logged since the daemon started\n');
      ctx.io.out(
        formatTable([
          ['COUNT', 'LAST', 'QUBE', 'DESTINATION', 'PROTO', 'PORT', 'DECIDED BY', 'RULE'],
          ...value.groups.map((g) => [String(g.count), g.last, g.qube, g.dst, g.proto, g.dport === undefined ? '-' : String(g.dport), g.decidedBy, g.ruleText ?? '-']),
        ]),
      );
    });
}

/** The daemon's `dropped` events (of one qube), until SIGINT. */
async function followDrops(ctx: Ctx, qube: string | undefined, onEntry: (e: DropEntry) => void): Promise<void> {
  const { DaemonClient } = await import('../../daemon/client.js');
  const c = await DaemonClient.connect(ctx.stateDir());
  if (!c) throw new QnetError(diag('QNET6120', 'the drop log needs the daemon', { hint: 'qnet daemon' }));
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  await c.events((l) => {
    let e: { type?: string; entry?: DropEntry };
    try {
      e = JSON.parse(l) as typeof e;
    } catch {
      return;
    }
    if (e.type === 'dropped' && e.entry && (qube === undefined || e.entry.qube === qube)) onEntry(e.entry);
  }, ac.signal);
}

/**
 * qvm-run's habit: `qnet run VM 'cmd args'` is one shell command line (sh -c in the qube), as is
 * anything with --shell; several words (after --) are a program and its arguments, no shell.
 */
export function shellArgv(words: readonly string[], shell: boolean): string[] {
  if (shell || (words.length === 1 && /\s/.test(words[0]!))) return ['sh', '-c', words.join(' ')];
  return [...words];
}

/**
 * The phases of a start, one line each on the terminal: the runtime chosen the first time, the
 * stand-in world when the first qube starts, then the qubes (netvms first). Returns the last line's writer.
 */
async function startPhases(ctx: Ctx, qubes: string[]): Promise<(started: string[], ms: number) => void> {
  const say = (s: string) => ctx.io.err(`qnet: ${s}\n`);
  const [{ value: all }, { value: st }, { value: g }] = await Promise.all([
    ctx.call<QubeView[]>('qubes.list', {}),
    ctx.call<{ runtime: { backend: string } | null }>('status', {}),
    ctx.call<{ uplink: string }>('global.get', {}),
  ]);
  if (!st.runtime) say('first start in this state directory: choosing the runtime (namespaces as root, else the simulator)');
  const running = all.filter((q) => q.state === 'Running');
  if (!running.length && g.uplink === 'world') say('bringing up the stand-in world (its resolver and web server) for sys-net');
  const byName = new Map(all.map((q) => [q.name, q]));
  const chain = new Set<string>();
  for (const n of qubes) for (let q = byName.get(n)?.netvm; q && !chain.has(q); q = byName.get(q)?.netvm ?? null) chain.add(q);
  const netvms = [...chain].filter((n) => byName.get(n)?.state !== 'Running' && !qubes.includes(n));
  say(`starting ${qubes.length} qube${qubes.length === 1 ? '' : 's'}${netvms.length ? `, and first their netvms ${netvms.join(', ')}` : ''}…`);
  return (started, ms) => say(`started ${started.length} qube${started.length === 1 ? '' : 's'} in ${(ms / 1000).toFixed(1)} s`);
}
