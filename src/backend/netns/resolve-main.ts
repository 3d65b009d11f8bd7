// Runs inside a network namespace (`ip netns exec NS node resolve-main.js`): reads a ResolveRequest
// as JSON on stdin, resolves every name from here, and prints `{ "answers": RawAnswer[] }` (with
// `--serve`, one request per line until stdin ends: see serve()). Kept
// tiny: the policy that turns answers into Resolutions stays in the caller (resolver.ts).
import { createInterface } from 'node:readline';
import { runRequest, type ResolveRequest } from './resolver.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseRequest(text: string): ResolveRequest {
  const r = JSON.parse(text) as Partial<ResolveRequest>;
  const num = (v: unknown, dflt: number): number => (typeof v === 'number' && v > 0 ? v : dflt);
  if (!Array.isArray(r.names) || !r.names.every((n) => typeof n === 'string')) throw new Error('request: names must be a list of strings');
  if (r.servers !== undefined && (!Array.isArray(r.servers) || !r.servers.every((s) => typeof s === 'string')))
    throw new Error('request: servers must be a list of strings');
  return {
    names: r.names,
    servers: r.servers,
    attemptTimeoutMs: num(r.attemptTimeoutMs, 2000),
    tries: num(r.tries, 2),
    deadlineMs: num(r.deadlineMs, 10_000),
  };
}

/**
 * `--serve` (the daemon's session, resolver-session.ts): one request per line, each answered with
 * one line in turn, until stdin ends. A request that fails is answered `{ "error": … }`.
 */
async function serve(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    let out: object;
    try {
      out = { answers: await runRequest(parseRequest(line)) };
    } catch (e) {
      out = { error: (e as Error).message };
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}

try {
  if (process.argv.includes('--serve')) await serve();
  else {
    const answers = await runRequest(parseRequest(await readStdin()));
    process.stdout.write(`${JSON.stringify({ answers })}\n`);
  }
} catch (e) {
  process.stderr.write(`resolve-main: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
