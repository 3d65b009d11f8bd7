// The one seam through which qnet runs external programs (ip, nft, conntrack). Argument vectors only,
// input on stdin, never a shell. Tests substitute ScriptedRunner, which fails on the first
// unexpected command (knftables' fakeExec). Failures are classified here, once, so callers never
// match stderr themselves.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/**
 * Where external programs (ip, nft, nsenter, conntrack, sysctl, runuser) are looked up. qnet runs as
 * root, and an interactive root shell's $PATH may start with ~/.cargo/bin or a pyenv shim: an `nft`
 * there would run as root. /usr/local is left out too (group `staff` may write it on Debian).
 */
export const TOOL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

let toolSearchPath = TOOL_PATH;
/**
 * Tests put a directory of fake programs first. In-process only, on purpose: an environment
 * variable would hand the choice back to whoever sets root's environment.
 */
export function setToolPathForTest(path: string = TOOL_PATH): void {
  toolSearchPath = path;
}

/** The environment for a tool: the caller's, with PATH fixed (nsenter and ip look the next program up in it). */
export function toolEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, PATH: toolSearchPath };
}

const toolPaths = new Map<string, string>();
/**
 * The absolute path of a tool in TOOL_PATH, for spawns that keep the caller's environment (a user's
 * program in `qnet run`). A name not found there maps to a path that fails with ENOENT, never to a
 * lookup in the caller's $PATH.
 */
export function toolPath(name: string): string {
  if (name.includes('/')) return name;
  let p = toolPaths.get(name);
  if (p === undefined) {
    const dirs = TOOL_PATH.split(':');
    p = join(dirs[0]!, name);
    for (const d of dirs) {
      try {
        accessSync(join(d, name), constants.X_OK);
        p = join(d, name);
        break;
      } catch {
        // not in this directory
      }
    }
    toolPaths.set(name, p);
  }
  return p;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  /** Run inside this network namespace (`nsenter --net` or `ip netns exec`: see netnsArgv). */
  netns?: string;
  /** Kill the process after this many milliseconds (default 30 s). */
  timeoutMs?: number;
}

export interface Runner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
    readonly netns?: string,
  ) {
    const where = netns ? ` (in ${netns})` : '';
    super(`${argv.join(' ')}${where} failed (exit ${result.code}): ${firstLines(result.stderr || result.stdout)}`);
    this.name = 'CommandError';
  }
  get alreadyExists(): boolean {
    return isAlreadyExists(this.result.stderr);
  }
}

export const isNotFound = (stderr: string): boolean =>
  /No such file or directory|does not exist|Cannot find device|No such process|not found/i.test(stderr);
const isAlreadyExists = (stderr: string): boolean => /File exists|already exists/i.test(stderr);

function firstLines(s: string, n = 4): string {
  return s.trim().split('\n').slice(0, n).join(' | ');
}

/** Run and throw CommandError on a non-zero exit. */
export async function runChecked(runner: Runner, argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await runner.run(argv, opts);
  if (r.code !== 0) throw new CommandError(argv, r, opts.netns);
  return r.stdout;
}

/**
 * Tools that only talk netlink (or /proc/sys/net, which follows the network namespace) need only the
 * namespace's network stack: `nsenter --net` gives exactly that. `ip netns exec` also builds a new
 * mount namespace (copying every mount, and each network namespace is a bind mount under /run/netns)
 * to bind /etc/netns/<ns>/ files and remount /sys — its cost grows with the number of qubes
 * (≈10–20 ms at 300). Anything else, e.g. a program that reads the qube's resolv.conf, keeps ip netns exec.
 */
const NETLINK_ONLY = new Set(['nft', 'conntrack', 'sysctl', 'ip']);

function netnsArgv(netns: string, argv: readonly string[]): string[] {
  return NETLINK_ONLY.has(argv[0] ?? '') ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}

export class NodeRunner implements Runner {
  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = opts.netns ? netnsArgv(opts.netns, argv) : [...argv];
    const [cmd, ...args] = full;
    return new Promise((resolve) => {
      const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => errOut.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        resolve({ code: 127, stdout: '', stderr: `${cmd}: ${e.message}` });
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(errOut).toString('utf8') + (signal ? `\nkilled by ${signal}` : ''),
        });
      });
      child.stdin.on('error', () => {}); // the program may exit before reading all input
      child.stdin.end(opts.stdin ?? '');
    });
  }
}

export interface ExpectedCommand {
  argv: readonly string[];
  netns?: string;
  /** Exact stdin, or a predicate over it. */
  stdin?: string | ((s: string) => boolean);
  result?: Partial<RunResult>;
}

/** A fake that plays a script and fails loudly on anything unexpected. */
export class ScriptedRunner implements Runner {
  readonly calls: { argv: readonly string[]; netns?: string; stdin?: string }[] = [];
  private i = 0;
  constructor(private readonly script: ExpectedCommand[]) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv, netns: opts.netns, stdin: opts.stdin });
    const exp = this.script[this.i++];
    const got = `${opts.netns ? `[${opts.netns}] ` : ''}${argv.join(' ')}`;
    if (!exp) throw new Error(`ScriptedRunner: unexpected command ${got}`);
    const want = `${exp.netns ? `[${exp.netns}] ` : ''}${exp.argv.join(' ')}`;
    if (want !== got) throw new Error(`ScriptedRunner: expected ${want}\n  got ${got}`);
    if (typeof exp.stdin === 'string' && exp.stdin !== (opts.stdin ?? ''))
      throw new Error(`ScriptedRunner: stdin of ${got} differs:\n${opts.stdin}`);
    if (typeof exp.stdin === 'function' && !exp.stdin(opts.stdin ?? ''))
      throw new Error(`ScriptedRunner: stdin of ${got} rejected by predicate:\n${opts.stdin}`);
    return { code: 0, stdout: '', stderr: '', ...exp.result };
  }

  /** Call at the end of a test: every scripted command must have run. */
  assertDone(): void {
    if (this.i !== this.script.length)
      throw new Error(`ScriptedRunner: ${this.script.length - this.i} scripted command(s) never ran`);
  }
}
