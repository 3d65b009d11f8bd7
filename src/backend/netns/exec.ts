// `qnet run VM [--user U] -- CMD…`: a program inside a qube's namespace with the terminal attached.
// Runner captures output, so this needs a second, equally narrow seam with inherited stdio.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { CODES, NetnsError } from './links.js';
import { diag } from '../../model/diagnostics.js';
import { toolPath } from './runner.js';

export interface InteractiveRunner {
  /** Run argv with stdin/stdout/stderr inherited; resolve to its exit code (128+n if killed by signal n). */
  runInteractive(argv: readonly string[]): Promise<number>;
}

export class NodeInteractiveRunner implements InteractiveRunner {
  runInteractive(argv: readonly string[]): Promise<number> {
    const [cmd, ...args] = argv;
    return new Promise((resolve) => {
      const child = spawn(cmd!, args, { stdio: 'inherit' });
      child.on('error', (e) => {
        process.stderr.write(`${cmd}: ${e.message}\n`);
        resolve(127);
      });
      child.on('close', (code, signal) => {
        const n = signal ? (constants.signals as Record<string, number>)[signal] ?? 0 : 0;
        resolve(code ?? 128 + n);
      });
    });
  }
}

/** POSIX-portable user names (useradd's default rule), plus numeric-looking names refused. */
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** `ip netns exec NS [runuser -u U --] CMD…` — argv only, never a shell. */
export function execArgv(ns: string, argv: readonly string[], user?: string): string[] {
  if (!argv.length || argv[0] === '') throw new NetnsError(diag(CODES.invalidName, 'no command given', { hint: 'qnet run VM -- CMD…' }));
  if (user !== undefined && !USER.test(user)) throw new NetnsError(diag(CODES.invalidName, `invalid user name ${JSON.stringify(user)}`));
  // ip and runuser by absolute path: the caller's environment, PATH included, is kept for its own program.
  return [toolPath('ip'), 'netns', 'exec', ns, ...(user !== undefined ? [toolPath('runuser'), '-u', user, '--'] : []), ...argv];
}
