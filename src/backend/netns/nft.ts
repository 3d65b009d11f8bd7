// nftables in a qube's namespace: one atomic `nft -f -` per change (DESIGN: one change, one
// transaction), a check-only pass, and counters read back from `nft -j list ruleset`.
// nft 1.0.6 has no namespace option, so everything runs under `nsenter --net` (the runner's
// netnsArgv; kernel notes).
import { CommandError, runChecked, type Runner } from './runner.js';
import { classifyCommandError, CODES, NetnsError } from './links.js';
import { diag } from '../../model/diagnostics.js';
import type { Family } from '../../ir/types.js';

/** One error nft reported, located in the loaded text. */
export interface NftErrorLine {
  line: number;
  /** 1-based column range, as nft prints it. */
  col?: [number, number];
  message: string;
  /** The offending line of input, as nft echoes it. */
  text?: string;
}

/** nft rejected a ruleset; nothing of it was applied (the transaction is atomic). */
export class NftError extends NetnsError {
  constructor(
    readonly errors: NftErrorLine[],
    qube: string | undefined,
    cause: CommandError,
  ) {
    const first = errors[0];
    const notFound = errors.some((e) => /No such file or directory/.test(e.message));
    const message = first
      ? `nft rejected the ruleset at line ${first.line}: ${first.message}${first.text ? ` in "${first.text.trim()}"` : ''}`
      : `nft failed: ${cause.message}`;
    super(
      diag(notFound ? CODES.nftNotFound : CODES.nftRejected, message, {
        ...(qube ? { qube } : {}),
        hint: notFound ? 'the ruleset refers to a table, chain or set that does not exist' : 'the rules were left unchanged',
      }),
      { cause },
    );
    this.name = 'NftError';
  }
}

const ERR = /^(?:[^:]*):(\d+):(\d+)-(\d+): Error: (.*)$/;

/** Parse nft's `file:line:col-col: Error: message` blocks (each followed by the line and a caret). */
export function parseNftErrors(stderr: string): NftErrorLine[] {
  const lines = stderr.split('\n');
  const out: NftErrorLine[] = [];
  lines.forEach((l, i) => {
    const m = ERR.exec(l);
    if (!m) return;
    const next = lines[i + 1];
    out.push({
      line: Number(m[1]),
      col: [Number(m[2]), Number(m[3])],
      message: m[4]!,
      ...(next !== undefined && !ERR.test(next) ? { text: next } : {}),
    });
  });
  if (!out.length && stderr.trim()) {
    // Errors without a location (netlink failures on commit): `Error: Could not process rule: …`
    for (const l of lines) if (/Error:/.test(l)) out.push({ line: 0, message: l.replace(/^.*?Error:\s*/, '') });
  }
  return out;
}

function classifyNft(e: unknown, qube?: string): unknown {
  if (e instanceof CommandError && e.result.code !== 127 && !/Cannot open network namespace/.test(e.result.stderr))
    return new NftError(parseNftErrors(e.result.stderr), qube, e);
  return classifyCommandError(e, qube);
}

/** What nft printed on refusing a transaction in `ns`, as the error loadRuleset would throw. */
export function nftRefusal(output: string, ns: string, qube?: string): unknown {
  return classifyNft(new CommandError(['nft', '-f', '-'], { code: 1, stdout: '', stderr: output }, ns), qube);
}

/** Load nft text into a namespace as one atomic transaction. */
export async function loadRuleset(runner: Runner, ns: string, text: string, qube?: string): Promise<void> {
  await runChecked(runner, ['nft', '-f', '-'], { netns: ns, stdin: text }).catch((e) => {
    throw classifyNft(e, qube);
  });
}

/**
 * Check without applying (`nft -c`). In a namespace, references to objects already loaded there
 * resolve; without one it runs in the caller's namespace and commits nothing.
 */
export async function checkRuleset(runner: Runner, text: string, ns?: string, qube?: string): Promise<void> {
  await runChecked(runner, ['nft', '-c', '-f', '-'], { stdin: text, ...(ns ? { netns: ns } : {}) }).catch((e) => {
    throw classifyNft(e, qube);
  });
}

export interface RuleCounter {
  family: Family;
  table: string;
  chain: string;
  handle: number;
  packets: number;
  bytes: number;
  /** The rule's comment, when it has one: for qnet's rules an origin (`qube=work rule=3`, parseOrigin). */
  comment?: string;
}

interface JsonRule {
  family: Family;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
  expr?: unknown[];
}

/** Every rule with an inline `counter` in `nft -j list ruleset` output. */
export function parseCounters(json: string): RuleCounter[] {
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const out: RuleCounter[] = [];
  for (const item of doc.nftables ?? []) {
    const rule = item['rule'] as JsonRule | undefined;
    if (!rule) continue;
    for (const ex of rule.expr ?? []) {
      const c = (ex as { counter?: unknown }).counter;
      // A named counter (`counter name "x"`) appears as a string; only inline counters carry numbers.
      if (!c || typeof c !== 'object') continue;
      const { packets, bytes } = c as { packets: number; bytes: number };
      out.push({
        family: rule.family,
        table: rule.table,
        chain: rule.chain,
        handle: rule.handle,
        packets,
        bytes,
        ...(rule.comment !== undefined ? { comment: rule.comment } : {}),
      });
      break;
    }
  }
  return out;
}

export async function listCounters(runner: Runner, ns: string, qube?: string): Promise<RuleCounter[]> {
  const out = await runChecked(runner, ['nft', '-j', 'list', 'ruleset'], { netns: ns }).catch((e) => {
    throw classifyCommandError(e, qube);
  });
  return parseCounters(out);
}

/**
 * How many rules each chain holds, by `family table chain` (chains without rules too), from
 * `nft -j list ruleset` output: what the kernel holds, to hold against what qnet loaded.
 */
export function parseChainSizes(json: string): Map<string, number> {
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const out = new Map<string, number>();
  for (const item of doc.nftables ?? []) {
    const c = (item['chain'] ?? item['rule']) as { family?: string; table?: string; name?: string; chain?: string } | undefined;
    if (!c) continue;
    const key = `${c.family} ${c.table} ${c.name ?? c.chain}`;
    out.set(key, (out.get(key) ?? 0) + (item['rule'] ? 1 : 0));
  }
  return out;
}

export async function listChainSizes(runner: Runner, ns: string, qube?: string): Promise<Map<string, number>> {
  const out = await runChecked(runner, ['nft', '-j', 'list', 'ruleset'], { netns: ns }).catch((e) => {
    throw classifyCommandError(e, qube);
  });
  return parseChainSizes(out);
}

