// Explaining the policy: qnet nft VM (the ruleset a qube runs), qnet check SRC DST[:PORT] (verdict
// and hop-by-hop explanation from the simulator), qnet matrix (who can reach whom).
import type { Command } from 'commander';
import type { Matrix } from '../../sim/questions.js';
import type { SimResult } from '../../sim/walk.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { formatTable, json, wantsJson } from '../table.js';

const PROTOS = ['tcp', 'udp', 'icmp'] as const;
type P = (typeof PROTOS)[number];

function protoOpt(v: string | undefined): P | undefined {
  if (v === undefined) return undefined;
  if (!(PROTOS as readonly string[]).includes(v)) throw new UsageError(`unknown protocol '${v}'`, PROTOS.join(', '));
  return v as P;
}

function portOpt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`'${v}' is not a port (1-65535)`);
  return Number(v);
}

/** `DST[:PORT]`: a trailing :N is a port unless DST is an IPv6 address (then write [addr]:port). */
function splitPort(dst: string): { host: string; port?: string } {
  const br = /^\[(.+)\](?::(\d+))?$/.exec(dst);
  if (br) return { host: br[1]!, ...(br[2] ? { port: br[2] } : {}) };
  const m = /^([^:]+):(\d+)$/.exec(dst);
  return m ? { host: m[1]!, port: m[2]! } : { host: dst };
}

export function registerAnalyze(program: Command, ctx: Ctx): void {
  program
    .command('nft')
    .description('print the nftables ruleset a qube runs (every qube as if running)')
    .argument('<vm>', 'qube')
    .option('--json', 'nft JSON (what `nft -j -f` loads)')
    .action(async (vm: string, o: { json?: boolean }) => {
      const r = await ctx.call<{ text?: string; json?: unknown }>('nft', { qube: vm, format: o.json ? 'json' : 'text' });
      printWarnings(ctx.io, r.warnings);
      ctx.io.out(o.json ? json(r.value.json) : r.value.text!);
    });

  program
    .command('check')
    .description('can SRC reach DST? verdict and the rule that decided, hop by hop')
    .argument('<src>', 'a qube, or outside')
    .argument('<dst>', 'a qube, an address, a CIDR or a DNS name, with an optional :PORT ([v6]:PORT)')
    .option('-p, --proto <proto>', 'tcp, udp or icmp (default tcp with a port, icmp without)')
    .option('--port <port>', 'destination port (same as DST:PORT)')
    .option('--src-addr <addr>', 'send with this source address (anti-spoofing checks)')
    .option('--kernel', 'ask what the kernel holds now (the daemon knows it) instead of the stored policy')
    .option('--json', 'JSON output')
    .addHelpText('after', `\nExamples:\n  qnet check work web.example.com:443\n  qnet check work web.example.com:443 --kernel\n  qnet check personal work --proto icmp\n  qnet check outside work:22\n  qnet check work 10.139.1.1:53 --proto udp`)
    .action(async (src: string, dst: string, o: { proto?: string; port?: string; srcAddr?: string; kernel?: boolean; json?: boolean }) => {
      const { host, port: p1 } = splitPort(dst);
      const port = portOpt(o.port ?? p1);
      const proto = protoOpt(o.proto);
      if (proto === 'icmp' && port !== undefined) throw new UsageError('icmp has no ports');
      const input = { src, dst: host, ...(proto ? { proto } : {}), ...(port !== undefined ? { port } : {}), ...(o.srcAddr ? { srcAddr: o.srcAddr } : {}), ...(o.kernel ? { against: 'kernel' } : {}) };
      const { value: results, warnings } = await ctx.call<SimResult[]>('check', input);
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(results.length === 1 ? results[0] : results));
      const { formatTrace } = await import('../../sim/trace.js');
      ctx.io.out(results.map((r) => formatTrace(r)).join('\n\n') + '\n');
    });

  program
    .command('matrix')
    .description('who can reach whom: every qube and the outside, as sources and destinations')
    .option('-p, --proto <proto>', 'tcp, udp or icmp (default icmp; tcp when --port is given)')
    .option('--port <port>', 'destination port for tcp/udp (default 80)')
    .option('--json', 'JSON output')
    .action(async (o: { proto?: string; port?: string; json?: boolean }) => {
      const port = portOpt(o.port);
      // A port means tcp unless a protocol is named, as in `check`.
      const proto = protoOpt(o.proto) ?? (port !== undefined ? 'tcp' : 'icmp');
      if (proto === 'icmp' && port !== undefined) throw new UsageError('icmp has no ports');
      const { value: mx, warnings } = await ctx.call<{ proto: string; port: number | null; unknown: string[] } & Matrix>('matrix', { proto, ...(port !== undefined ? { port } : {}) });
      printWarnings(ctx.io, warnings);
      if (wantsJson(o)) return void ctx.io.out(json(mx));
      const unknown = new Set(mx.unknown);
      const mark = { accept: 'yes', reject: 'no', drop: 'no', '-': '-' } as const;
      ctx.io.out(`${mx.proto}${mx.port !== null ? `/${mx.port}` : ''}: rows can reach columns? ("no" = rejected or dropped)\n`);
      ctx.io.out(
        formatTable([
          ['FROM \\ TO', ...mx.destinations],
          // `?`: the source's rules are unknown (its file is broken; the kernel blocks it).
          ...mx.sources.map((s) => [s, ...mx.destinations.map((d) => (unknown.has(s) && d !== s ? '?' : mark[mx.cells[s]![d]!]))]),
        ]),
      );
    });
}
