// Explaining the policy: qnet nft VM (the ruleset a qube runs), qnet check SRC DST[:PORT] (verdict
// and hop-by-hop explanation from the simulator), qnet matrix (who can reach whom).
import type { Command } from 'commander';
import { emitJson } from '../../ir/emit-json.js';
import { emitFull } from '../../ir/emit-text.js';
import { diag } from '../../model/diagnostics.js';
import { getQube } from '../../model/ops.js';
import { qubeIp6 } from '../../model/addressing.js';
import { QnetError } from '../../model/result.js';
import { ask, reachabilityMatrix, resolveTarget } from '../../sim/questions.js';
import { OUTSIDE } from '../../sim/walk.js';
import { formatTrace } from '../../sim/trace.js';
import type { Ctx } from '../context.js';
import { printWarnings, UsageError } from '../errors.js';
import { analysisOf, offlineResolver } from '../runtime.js';
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
      const m = await ctx.store().load();
      getQube(m, vm);
      const a = await analysisOf(m, ctx.stateDir(), ctx.now());
      printWarnings(ctx.io, a.diagnostics);
      const rs = a.rulesets.get(vm);
      if (!rs) throw new QnetError(diag('QNET4201', `'${vm}' has no network stack to load rules into`, { hint: 'it has no netvm and provides no network' }));
      ctx.io.out(o.json ? json(emitJson(rs)) : emitFull(rs));
    });

  program
    .command('check')
    .description('can SRC reach DST? verdict and the rule that decided, hop by hop')
    .argument('<src>', `a qube, or ${OUTSIDE}`)
    .argument('<dst>', 'a qube, an address, a CIDR or a DNS name, with an optional :PORT ([v6]:PORT)')
    .option('-p, --proto <proto>', 'tcp, udp or icmp (default tcp with a port, icmp without)')
    .option('--port <port>', 'destination port (same as DST:PORT)')
    .option('--src-addr <addr>', 'send with this source address (anti-spoofing checks)')
    .option('--json', 'JSON output')
    .addHelpText('after', `\nExamples:\n  qnet check work web.example.com:443\n  qnet check personal work --proto icmp\n  qnet check outside work:22\n  qnet check work 10.139.1.1:53 --proto udp`)
    .action(async (src: string, dst: string, o: { proto?: string; port?: string; srcAddr?: string; json?: boolean }) => {
      const m = await ctx.store().load();
      if (src !== OUTSIDE) getQube(m, src);
      const { host, port: p1 } = splitPort(dst);
      const port = portOpt(o.port ?? p1);
      const proto = protoOpt(o.proto) ?? (port !== undefined ? 'tcp' : 'icmp');
      if (proto === 'icmp' && port !== undefined) throw new UsageError('icmp has no ports');
      const a = await analysisOf(m, ctx.stateDir(), ctx.now());
      const isName = !m.qubes.has(host) && host !== OUTSIDE && !/^[\d.]+(\/\d+)?$/.test(host) && !host.includes(':');
      const target = resolveTarget(m, host, isName ? await offlineResolver(m, ctx.stateDir()).resolveAll([host]) : new Map());
      if (!target.addrs.length)
        throw new QnetError(
          diag('QNET4202', target.kind === 'name' ? `cannot resolve '${host}': ${target.error}` : `'${host}' has no address`, {
            hint: target.kind === 'qube' ? 'a qube without a netvm has no address' : undefined,
          }),
        );
      // A name with AAAA records: try IPv6 only from a source that has it (the outside always does).
      const srcQube = m.qubes.get(src);
      const hasV6 = !srcQube || qubeIp6(m, srcQube) !== null;
      const addrs = target.kind === 'name' && !hasV6 ? target.addrs.filter((x) => !x.includes(':')) : target.addrs;
      if (!addrs.length) throw new QnetError(diag('QNET4203', `'${host}' has only IPv6 addresses and ${src} has no IPv6`));
      const results = addrs.map((to) =>
        ask(a, { from: src, to, proto, ...(port !== undefined ? { dport: port } : {}), ...(o.srcAddr ? { src: o.srcAddr } : {}) }),
      );
      if (wantsJson(o)) return void ctx.io.out(json(results.length === 1 ? results[0] : results));
      ctx.io.out(results.map((r) => formatTrace(r)).join('\n\n') + '\n');
    });

  program
    .command('matrix')
    .description('who can reach whom: every qube and the outside, as sources and destinations')
    .option('-p, --proto <proto>', 'tcp, udp or icmp', 'icmp')
    .option('--port <port>', 'destination port for tcp/udp (default 80)')
    .option('--json', 'JSON output')
    .action(async (o: { proto: string; port?: string; json?: boolean }) => {
      const proto = protoOpt(o.proto)!;
      const port = portOpt(o.port) ?? (proto === 'icmp' ? undefined : 80);
      const m = await ctx.store().load();
      const mx = reachabilityMatrix(await analysisOf(m, ctx.stateDir(), ctx.now()), { proto, ...(port !== undefined ? { port } : {}) });
      if (wantsJson(o)) return void ctx.io.out(json({ proto, port: port ?? null, ...mx }));
      const mark = { accept: 'yes', reject: 'no', drop: 'no', '-': '-' } as const;
      ctx.io.out(`${proto}${port !== undefined ? `/${port}` : ''}: rows can reach columns? ("no" = rejected or dropped)\n`);
      ctx.io.out(
        formatTable([
          ['FROM \\ TO', ...mx.destinations],
          ...mx.sources.map((s) => [s, ...mx.destinations.map((d) => mark[mx.cells[s]![d]!])]),
        ]),
      );
    });
}
