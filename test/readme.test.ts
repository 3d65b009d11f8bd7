// The README's examples work as written (issue 9, item 11): every ```sh block is run, line by line,
// in order, in one temporary state directory. A line runs in-process through main() when it is a
// plain `npx qnet …`; a line with a pipe runs through sh with `npx qnet` as this checkout's bin.
// A line whose comment starts with "refused" must fail (exit 1); every other line must succeed.
// An HTML comment just before a block tells this test about it:
//   <!-- readme-test: skip — REASON -->   not run (said, with the reason)
//   <!-- readme-test: root -->            real namespaces as root; else on the simulator, where the
//                                         lines that need a kernel (run, counters) are skipped loudly
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bufferIo } from '../src/cli/io.js';
import { main } from '../src/cli/main.js';
import { netnsUnavailable, teardownLeftovers } from '../src/ops/sessions.js';
import { readRuntime } from '../src/store/runtime-file.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!readdirHas(root, 'package.json')) root = dirname(root);
function readdirHas(dir: string, f: string): boolean {
  try {
    readFileSync(join(dir, f));
    return true;
  } catch {
    return false;
  }
}

export interface Block {
  marker?: string;
  lines: string[];
  /** 1-based line of the fence in README.md. */
  at: number;
}

/** The ```sh blocks of a Markdown text, each with the readme-test marker just before it, if any. */
export function shBlocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```sh') continue;
    const m = /<!--\s*readme-test:\s*(.*?)\s*-->/.exec(lines[i - 1] ?? '');
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j]!.trim() !== '```'; j++) body.push(lines[j]!);
    out.push({ ...(m ? { marker: m[1]! } : {}), lines: body, at: i + 1 });
    i = j;
  }
  return out;
}

/** Shell words of a line and its trailing comment (quotes as sh reads them; no expansion). */
export function shellWords(line: string): { words: string[]; comment: string; plain: boolean } {
  const words: string[] = [];
  let w: string | null = null;
  let plain = true;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unclosed quote in: ${line}`);
      w = (w ?? '') + line.slice(i + 1, end);
      if (c === '"' && /[$`\\]/.test(line.slice(i + 1, end))) plain = false;
      i = end;
    } else if (c === '#' && w === null) {
      return { words, comment: line.slice(i + 1).trim(), plain };
    } else if (/\s/.test(c)) {
      if (w !== null) words.push(w);
      w = null;
    } else {
      if (/[|;&<>$`\\*?()]/.test(c)) plain = false;
      w = (w ?? '') + c;
    }
  }
  if (w !== null) words.push(w);
  return { words, comment: '', plain };
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const NEEDS_KERNEL = new Set(['run', 'counters']);

describe('README.md examples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-readme-'));
  const asRoot = netnsUnavailable() === null;
  const prefix = `qrd${process.pid % 10000}-`;
  const env: Record<string, string> = { ...(process.env as Record<string, string>), QNET_STATE: dir, QNET_NETNS_PREFIX: prefix, QNET_NO_ICMP_RATELIMIT: '1', QNET_NO_DAEMON: '1' };

  after(async () => {
    // Whatever the examples started is stopped, and what is left under this run's prefix removed.
    const rt = await readRuntime(dir, env).catch(() => null);
    if (rt?.backend === 'netns') {
      await main(['shutdown', '--all', '--force'], bufferIo({ env }).io).catch(() => 1);
      await teardownLeftovers(dir, rt).catch(() => []);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const blocks = shBlocks(readme);
  test('the README has sh blocks, and most of them run', () => {
    assert.ok(blocks.length >= 4);
    assert.ok(blocks.filter((b) => !b.marker?.startsWith('skip')).length >= 3);
  });

  for (const b of blocks) {
    const name = `README.md:${b.at}: ${b.lines.find((l) => l.trim() && !l.trim().startsWith('#'))?.trim().slice(0, 60) ?? '(comments only)'}`;
    if (b.marker?.startsWith('skip')) {
      test(name, { skip: `marked in the README: ${b.marker.replace(/^skip\s*[—:-]?\s*/, '')}` }, () => {});
      continue;
    }
    test(name, async (t) => {
      const root_ = b.marker === 'root';
      // Qubes in these blocks run on namespaces as root, else on the simulator (recorded once per state directory).
      if (root_ && !readdirHas(dir, 'runtime.json')) {
        const backend = asRoot ? 'netns' : 'sim';
        writeFileSync(join(dir, 'runtime.json'), JSON.stringify({ backend, prefix }) + '\n');
        if (!asRoot) t.diagnostic(`on the simulator: ${netnsUnavailable()}`);
      }
      for (const raw of b.lines) {
        const line = raw.trim();
        if (!line || line.startsWith('#')) continue;
        const { words, comment, plain } = shellWords(line);
        if (words[0] === 'export') {
          // QNET_STATE is this test's temporary directory, whatever the example names.
          for (const a of words.slice(1)) if (!a.startsWith('QNET_STATE=')) env[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
          continue;
        }
        const refused = /^refused\b/i.test(comment);
        const qnet = words[0] === 'npx' && words[1] === 'qnet' ? words.slice(2) : words[0] === 'qnet' ? words.slice(1) : null;
        if (qnet && NEEDS_KERNEL.has(qnet[0]!) && !asRoot) {
          t.diagnostic(`skipped \`${line}\`: it needs real namespaces (${netnsUnavailable()})`);
          continue;
        }
        // The program a `run` line runs: after --, else the first word of its shell line.
        const prog = qnet?.[0] === 'run' ? (qnet.includes('--') ? qnet[qnet.indexOf('--') + 1] : qnet[2]?.split(/\s+/)[0]) : undefined;
        if (prog && spawnSync('sh', ['-c', 'command -v "$1"', 'sh', prog]).status !== 0) {
          t.diagnostic(`skipped \`${line}\`: the program it runs is not installed`);
          continue;
        }
        let code: number;
        let err: string;
        if (qnet && plain) {
          const io = bufferIo({ env });
          code = await main(qnet, io.io);
          err = io.stderr();
        } else {
          const sh = line.replace(/\bnpx qnet\b/g, `${JSON.stringify(process.execPath)} ${JSON.stringify(join(root, 'bin', 'qnet.js'))}`);
          const r = spawnSync('sh', ['-c', sh], { env, encoding: 'utf8', timeout: 60_000 });
          code = r.status ?? 1;
          err = r.stderr;
        }
        if (refused) assert.equal(code, 1, `\`${line}\` should be refused:\n${err}`);
        else assert.equal(code, 0, `\`${line}\` exited ${code}:\n${err}`);
        // A warning in an example means the example is wrong (a name the world does not serve …).
        if (!refused) assert.doesNotMatch(err, /warning/, `\`${line}\` warned:\n${err}`);
      }
    });
  }
});
