// `qnet`: one program, Qubes' command words. Each command group registers itself from commands/;
// a command loads only its own group (the word after the global options picks it), so `qnet ls`
// never loads what `qnet check` or `qnet demo` needs. Help and unknown words load them all.
import { Command, CommanderError } from 'commander';
import { makeCtx, type Ctx, type GlobalOpts } from './context.js';
import { oneLine, reportError } from './errors.js';
import { processIo, type Io } from './io.js';
import { VERSION } from './version.js';

type Register = (program: Command, ctx: Ctx) => void;
const GROUPS = {
  qubes: async (): Promise<Register> => (await import('./commands/qubes.js')).registerQubes,
  prefs: async (): Promise<Register> => (await import('./commands/prefs.js')).registerPrefs,
  features: async (): Promise<Register> => (await import('./commands/features.js')).registerFeatures,
  ls: async (): Promise<Register> => (await import('./commands/ls.js')).registerLs,
  firewall: async (): Promise<Register> => (await import('./commands/firewall.js')).registerFirewall,
  analyze: async (): Promise<Register> => (await import('./commands/analyze.js')).registerAnalyze,
  connections: async (): Promise<Register> => (await import('./commands/connections.js')).registerConnections,
  lifecycle: async (): Promise<Register> => (await import('./commands/lifecycle.js')).registerLifecycle,
  daemon: async (): Promise<Register> => (await import('./commands/daemon.js')).registerDaemon,
  demo: async (): Promise<Register> => (await import('./commands/demo.js')).registerDemo,
  import: async (): Promise<Register> => (await import('./commands/import.js')).registerImport,
  export: async (): Promise<Register> => (await import('./commands/export.js')).registerExport,
  checkpoints: async (): Promise<Register> => (await import('./commands/checkpoints.js')).registerCheckpoints,
};
type Group = keyof typeof GROUPS;

/** Which group defines each command word (a test checks it against what the groups register). */
export const COMMAND_GROUPS: Readonly<Record<string, Group>> = {
  init: 'qubes', create: 'qubes', remove: 'qubes', rename: 'qubes', clone: 'qubes', 'qubes-prefs': 'qubes',
  prefs: 'prefs', ls: 'ls', firewall: 'firewall', nft: 'analyze', check: 'analyze', matrix: 'analyze',
  start: 'lifecycle', shutdown: 'lifecycle', kill: 'lifecycle', run: 'lifecycle', counters: 'lifecycle', log: 'lifecycle',
  daemon: 'daemon', events: 'daemon', manager: 'daemon', demo: 'demo', features: 'features', 'import-qubes': 'import',
  connect: 'connections', connections: 'connections', disconnect: 'connections', forward: 'connections',
  export: 'export',
  history: 'checkpoints', confirm: 'checkpoints', rollback: 'checkpoints', undo: 'checkpoints',
};

/** The command word: the first word that is not a global option or its value; undefined for none. */
function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** The groups to load for argv: the command's own, or all (help, an unknown word, `diff CMD…`). */
export function groupsFor(argv: readonly string[]): Group[] {
  const w = commandWord(argv);
  const g = w !== undefined && Object.hasOwn(COMMAND_GROUPS, w) ? COMMAND_GROUPS[w] : undefined;
  return g ? [g] : (Object.keys(GROUPS) as Group[]);
}

/** The command words each group registers (for the test that holds COMMAND_GROUPS to them). */
export async function registeredCommands(io: Io): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const g of Object.keys(GROUPS) as Group[]) {
    const program = new Command('qnet');
    (await GROUPS[g]())(program, makeCtx(io, () => ({})));
    out[g] = program.commands.map((c) => c.name());
  }
  return out;
}

async function buildProgram(io: Io, groups: readonly Group[]): Promise<{ program: Command; ctx: Ctx }> {
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
  for (const register of await Promise.all(groups.map((g) => GROUPS[g]()))) register(program, ctx);
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
  const { program, ctx } = await buildProgram(io, groupsFor(argv));
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

