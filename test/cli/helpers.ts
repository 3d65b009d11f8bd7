// Run the CLI in-process against a temporary state directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bufferIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

export interface Run {
  code: number;
  out: string;
  err: string;
}

export class StateDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'qnet-cli-'));
  now = 1_800_000_000;

  async run(args: string[] | string, stdin?: string): Promise<Run> {
    const argv = typeof args === 'string' ? args.split(' ').filter(Boolean) : args;
    const b = bufferIo({ stdin, now: this.now, env: {} });
    const code = await main(['--state', this.dir, ...argv], b.io);
    return { code, out: b.stdout(), err: b.stderr() };
  }

  /** Run and require success. */
  async ok(args: string[] | string, stdin?: string): Promise<string> {
    const r = await this.run(args, stdin);
    if (r.code !== 0) throw new Error(`qnet ${args} exited ${r.code}: ${r.err}`);
    return r.out;
  }

  path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
