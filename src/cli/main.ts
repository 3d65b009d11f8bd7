// `qnet`: one program, Qubes' command words. Each command group registers itself from commands/.
import { Command, CommanderError } from 'commander';
import { makeCtx, type Ctx, type DaemonParts, type GlobalOpts } from './context.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerDaemon } from './commands/daemon.js';
import { registerDemo } from './commands/demo.js';
import { DaemonClient } from '../daemon/client.js';
import { resolveStateDir } from '../store/paths.js';
import { reportError } from './errors.js';
import { processIo, type Io } from './io.js';
import { registerAnalyze } from './commands/analyze.js';
import { registerFirewall } from './commands/firewall.js';
import { registerLs } from './commands/ls.js';
import { registerPrefs } from './commands/prefs.js';
import { registerQubes } from './commands/qubes.js';

export const VERSION = '0.1.0';

function buildProgram(io: Io, daemon?: DaemonParts): { program: Command; ctx: Ctx } {
  const program = new Command('qnet');
  program
    .description('Qubes OS networking and firewall on any Linux host: qubes as network namespaces, rules as nftables')
    .version(VERSION)
    .option('--state <dir>', 'state directory (default: $QNET_STATE, else /var/lib/qnet as root)')
    .option('--dry-run', 'show what a changing command would load and which verdicts it would change; change nothing')
    .option('-v, --verbose', 'with --dry-run: print the nft operations too')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`qnet: ${s.replace(/^error: /, '')}`),
    });
  const ctx = makeCtx(io, () => program.opts<GlobalOpts>(), daemon);
  registerQubes(program, ctx);
  registerPrefs(program, ctx);
  registerLs(program, ctx);
  registerFirewall(program, ctx);
  registerAnalyze(program, ctx);
  registerLifecycle(program, ctx);
  registerDaemon(program, ctx);
  registerDemo(program, ctx);
  program
    .command('diff')
    .description('show what a command would open or close, without doing it (same as --dry-run)')
    .argument('<command...>', 'a changing qnet command, e.g. firewall work add accept example.com tcp 443')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      const g = program.opts<GlobalOpts>();
      const pre = [...(g.state ? ['--state', g.state] : []), ...(g.verbose ? ['--verbose'] : []), '--dry-run'];
      const code = await main([...pre, ...args], io);
      if (code !== 0) throw new CommanderError(code, 'qnet.diff', '');
    });
  // Subcommands inherit the error handling and output of the program.
  for (const c of program.commands) c.exitOverride().configureOutput(program.configureOutput());
  return { program, ctx };
}

/** Commands that always run here: they are the daemon, talk to it themselves, or only read. */
const LOCAL = new Set(['daemon', 'events', 'demo', 'run', 'diff', 'help']);

/** The words (command first) and the --state value, read before commander so a daemon can be asked first. */
function peek(argv: readonly string[]): { command?: string; words: string[]; state?: string; dryRun: boolean; help: boolean } {
  let state: string | undefined;
  const words: string[] = [];
  let dryRun = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state') state = argv[++i];
    else if (a.startsWith('--state=')) state = a.slice(8);
    else if (a === '--dry-run') dryRun = true;
    else if (a === '-h' || a === '--help' || a === '-V' || a === '--version') help = true;
    else if (!a.startsWith('-')) words.push(a);
  }
  return { command: words[0], words, state, dryRun, help };
}

/** Send the command to the daemon serving this state dir; null when none runs. */
async function forward(argv: string[], io: Io): Promise<number | null> {
  const p = peek(argv);
  if (!p.command || LOCAL.has(p.command) || p.dryRun || p.help || io.env['QNET_NO_DAEMON']) return null;
  const client = await DaemonClient.connect(resolveStateDir(p.state, io.env));
  if (!client) return null;
  // `qnet firewall VM set` reads the rules from stdin (a qube named `set` does not).
  const stdin = p.command === 'firewall' && p.words[2] === 'set' ? await io.readStdin() : undefined;
  const r = await client.cli(argv, stdin);
  io.out(r.stdout);
  io.err(r.stderr);
  return r.code;
}

export async function main(argv: string[], io: Io = processIo(), daemon?: DaemonParts): Promise<number> {
  if (!daemon) {
    try {
      const code = await forward(argv, io);
      if (code !== null) return code;
    } catch (e) {
      return reportError(e, io);
    }
  }
  const { program, ctx } = buildProgram(io, daemon);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode();
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2; // commander already printed the message
    }
    return reportError(e, io);
  }
}

