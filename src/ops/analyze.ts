// Questions of the policy (no privileges needed): the ruleset a qube runs, can SRC reach DST and
// why (hop by hop), who can reach whom. Answered by the simulator over the compiled model.
import * as v from 'valibot';
import { emitJson } from '../ir/emit-json.js';
import { emitFull } from '../ir/emit-text.js';
import { qubeIp6 } from '../model/addressing.js';
import { diag } from '../model/diagnostics.js';
import { getQube } from '../model/ops.js';
import { parseDstHost } from '../model/rule-parse.js';
import { QnetError } from '../model/result.js';
import { ask, outsideAddrs, reachabilityMatrix, resolveTarget, type Matrix } from '../sim/questions.js';
import { OUTSIDE, type SimResult } from '../sim/walk.js';
import { port, proto, qubeName } from './schema.js';
import { defineOp, result, type OpResult } from './types.js';
import { CheckResultSchema, problemsOf } from './views.js';

const qube = qubeName;

export const nftRuleset = defineOp({
  name: 'nft',
  kind: 'read',
  summary: 'the nftables ruleset a qube runs (every qube as if running), as nft text or nft JSON',
  input: v.strictObject({ qube, format: v.optional(v.picklist(['text', 'json']), 'text') }),
  run: async (i, host) => {
    const m = await host.read();
    getQube(m, i.qube);
    const a = await host.analysis(m);
    const rs = a.rulesets.get(i.qube);
    if (!rs) throw new QnetError(diag('QNET4201', `'${i.qube}' has no network stack to load rules into`, { hint: 'it has no netvm and provides no network' }));
    return result(i.format === 'json' ? { json: emitJson(rs) as unknown } : { text: emitFull(rs) }, a.diagnostics);
  },
});

export const check = defineOp({
  name: 'check',
  kind: 'read',
  summary: 'can SRC reach DST? the verdict and the rule that decided, hop by hop, and the reply',
  output: v.array(CheckResultSchema),
  input: v.strictObject({
    src: v.pipe(v.string(), v.minLength(1), v.maxLength(64), v.description(`a qube, or ${OUTSIDE}`)),
    dst: v.pipe(v.string(), v.minLength(1), v.maxLength(255), v.description('a qube, an address, a CIDR or a DNS name')),
    proto: v.optional(v.pipe(proto, v.description('default tcp with a port, icmp without'))),
    port: v.optional(port),
    srcAddr: v.optional(v.pipe(v.string(), v.maxLength(64), v.description('send with this source address (anti-spoofing checks)'))),
  }),
  run: async (i, host): Promise<OpResult<SimResult[]>> => {
    const m = await host.read();
    if (i.src !== OUTSIDE) getQube(m, i.src);
    const p = i.proto ?? (i.port !== undefined ? 'tcp' : 'icmp');
    if (p === 'icmp' && i.port !== undefined) throw new QnetError(diag('QNET4204', 'icmp has no ports', { hint: 'give --proto tcp or udp with a port' }));
    const a = await host.analysis(m);
    const host_ = i.dst;
    if (!m.qubes.has(host_) && host_ !== OUTSIDE && !parseDstHost(host_).ok)
      throw new QnetError(diag('QNET4205', `'${host_}' is not a qube, an address, a network or a host name`, { hint: 'DST, DST:PORT or [IPv6]:PORT, e.g. work, 192.0.2.1:80, web.example.com:443' }));
    const isName = !m.qubes.has(host_) && host_ !== OUTSIDE && !/^[\d.]+(\/\d+)?$/.test(host_) && !host_.includes(':');
    const known = isName ? a.resolutions.get(host_) : undefined;
    const answers = isName ? (known ? new Map([[host_, known]]) : await host.resolve(m, [host_])) : new Map();
    const target = resolveTarget(m, host_, answers);
    // The outside reaches a qube only through the uplink above it (port forwards), never by its
    // internal address.
    if (i.src === OUTSIDE && target.kind === 'qube') target.addrs = outsideAddrs(a, target.name);
    if (!target.addrs.length)
      throw new QnetError(
        diag('QNET4202', target.kind === 'name' ? `cannot resolve '${host_}': ${target.error}` : `'${host_}' has no address`, {
          hint: target.kind === 'qube' ? 'a qube without a netvm has no address' : undefined,
        }),
      );
    // A name with AAAA records: try IPv6 only from a source that has it (the outside always does).
    const srcQube = m.qubes.get(i.src);
    const hasV6 = !srcQube || qubeIp6(m, srcQube) !== null;
    const addrs = target.kind === 'name' && !hasV6 ? target.addrs.filter((x) => !x.includes(':')) : target.addrs;
    if (!addrs.length) throw new QnetError(diag('QNET4203', `'${host_}' has only IPv6 addresses and ${i.src} has no IPv6`));
    const results = addrs.map((to) => ask(a, { from: i.src, to, proto: p, ...(i.port !== undefined ? { dport: i.port } : {}), ...(i.srcAddr ? { src: i.srcAddr } : {}) }));
    // A qube whose rules file is broken is blocked: the answer is what the kernel does, not its policy.
    const crossed = new Set(results.flatMap((r) => [r.probe.from, ...r.hops.map((h) => h.node)]));
    return result(results, problemsOf(m, [...m.qubes.values()].filter((q) => crossed.has(q.name))));
  },
});

export const matrix = defineOp({
  name: 'matrix',
  kind: 'read',
  summary: 'who can reach whom: every qube and the outside, as sources and destinations',
  input: v.strictObject({ proto: v.optional(proto, 'icmp'), port: v.optional(port) }),
  run: async (i, host): Promise<OpResult<{ proto: string; port: number | null; unknown: string[] } & Matrix>> => {
    if (i.proto === 'icmp' && i.port !== undefined) throw new QnetError(diag('QNET4204', 'icmp has no ports', { hint: 'give --proto tcp or udp with a port' }));
    const port = i.port ?? (i.proto === 'icmp' ? undefined : 80);
    const m = await host.read();
    const mx = reachabilityMatrix(await host.analysis(m), { proto: i.proto, ...(port !== undefined ? { port } : {}) });
    // Sources whose rules file is broken: blocked in the kernel, their policy unknown.
    const unknown = [...m.qubes.values()].filter((q) => q.rulesProblem).map((q) => q.name);
    return result({ proto: i.proto, port: port ?? null, ...mx, unknown }, problemsOf(m, [...m.qubes.values()].filter((q) => q.rulesProblem)));
  },
});
