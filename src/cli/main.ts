// `qnet`: one program, Qubes' command words. Each command group registers itself from commands/.
import { Command, CommanderError } from 'commander';
import { makeCtx, type Ctx, type GlobalOpts } from './context.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerDaemon } from './commands/daemon.js';
import { registerDemo } from './commands/demo.js';
import { oneLine, reportError } from './errors.js';
import { processIo, type Io } from './io.js';
import { registerAnalyze } from './commands/analyze.js';
import { registerConnections } from './commands/connections.js';
import { registerFirewall } from './commands/firewall.js';
import { registerLs } from './commands/ls.js';
import { registerPrefs } from './commands/prefs.js';
import { registerQubes } from './commands/qubes.js';

import { VERSION } from './version.js';

function buildProgram(io: Io): { program: Command; ctx: Ctx } {
  const program = new Command('qnet');
  program
    .description('Qubes OS networking and firewall on any Linux host: qubes as network namespaces, rules as nftables')
    .version(VERSION)
    .option('--state <dir>', 'state directory (default: $QNET_STATE, else /var/lib/qnet as root)')
    .option('--dry-run', 'show what a changing command would load and which verdicts it would change; change nothing')
    .option('-v, --verbose', 'with --dry-run: print the nft operations too')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      // Usage errors are one line with a code, like every other error.
      outputError: (s, write) => write(`qnet: ${oneLine(s.replace(/^error: /, '').trimEnd())} — see --help (QNET9000)\n`),
    });
  const ctx = makeCtx(io, () => program.opts<GlobalOpts>());
  registerQubes(program, ctx);
  registerPrefs(program, ctx);
  registerLs(program, ctx);
  registerFirewall(program, ctx);
  registerAnalyze(program, ctx);
  registerConnections(program, ctx);
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

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const { program, ctx } = buildProgram(io);
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

