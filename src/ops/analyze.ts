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
import type { RuleRef } from '../sim/evaluate.js';
import type { Analysis } from '../sim/questions.js';
import { describeConnection } from '../model/connection.js';
import type { Diagnostic } from '../model/diagnostics.js';
import { uplinkKind } from '../model/netplan.js';
import { describeOrigin } from '../model/origin.js';
import type { Model } from '../model/qube.js';
import { formatApiRule } from '../model/rule-format.js';
import { ACCEPT_ALL } from '../model/rule.js';
import { planNetwork } from '../model/topology.js';
import { port, proto, qubeName } from './schema.js';
import { defineOp, result, type Host, type OpResult } from './types.js';
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

const checkInput = v.strictObject({
  src: v.pipe(v.string(), v.minLength(1), v.maxLength(64), v.description(`a qube, or ${OUTSIDE}`)),
  dst: v.pipe(v.string(), v.minLength(1), v.maxLength(255), v.description('a qube, an address, a CIDR or a DNS name')),
  proto: v.optional(v.pipe(proto, v.description('default tcp with a port, icmp without'))),
  port: v.optional(port),
  srcAddr: v.optional(v.pipe(v.string(), v.maxLength(64), v.description('send with this source address (anti-spoofing checks)'))),
});
type CheckInput = v.InferOutput<typeof checkInput>;
type Against = 'policy' | 'kernel';

/**
 * The policy to ask: the stored one compiled as if every qube ran, or what the kernel holds now —
 * the daemon's engine's mirror of what it loaded (plan of the running qubes, each node's ruleset as
 * it behaves). Offline no engine outlives a command, so the kernel's side is refused rather than
 * assumed: assuming it holds the stored policy would make every comparison agree.
 */
async function analysisFor(host: Host, m: Model, against: Against): Promise<Analysis> {
  if (against === 'policy') return host.analysis(m);
  const k = host.kernel?.();
  if (!k)
    throw new QnetError(
      diag('QNET4206', 'what the kernel holds is known to the daemon only (its engine keeps what it loaded)', { hint: 'start qnet daemon; without it, check answers for the stored policy' }),
    );
  const plan = k.plan ?? planNetwork(m, { uplink: uplinkKind(m), only: new Set() });
  return { model: m, plan, rulesets: new Map(k.rulesets), diagnostics: [], resolutions: k.resolutions };
}

/** check's answer for one side, its rule references annotated with the rules they stand for. */
async function answer(i: CheckInput, host: Host, m: Model, against: Against): Promise<OpResult<SimResult[]>> {
  if (i.src !== OUTSIDE) getQube(m, i.src);
  const p = i.proto ?? (i.port !== undefined ? 'tcp' : 'icmp');
  if (p === 'icmp' && i.port !== undefined) throw new QnetError(diag('QNET4204', 'icmp has no ports', { hint: 'give --proto tcp or udp with a port' }));
  const host_ = i.dst;
  if (!m.qubes.has(host_) && host_ !== OUTSIDE && !parseDstHost(host_).ok)
    throw new QnetError(diag('QNET4205', `'${host_}' is not a qube, an address, a network or a host name`, { hint: 'DST, DST:PORT or [IPv6]:PORT, e.g. work, 192.0.2.1:80, web.example.com:443' }));
  const a = await analysisFor(host, m, against);
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
        hint: target.kind === 'qube' ? (i.src === OUTSIDE && against === 'kernel' ? 'no uplink leads to it now: is its netvm chain running?' : 'a qube without a netvm has no address') : undefined,
      }),
    );
  // A name with AAAA records: try IPv6 only from a source that has it (the outside always does).
  const srcQube = m.qubes.get(i.src);
  const hasV6 = !srcQube || qubeIp6(m, srcQube) !== null;
  const addrs = target.kind === 'name' && !hasV6 ? target.addrs.filter((x) => !x.includes(':')) : target.addrs;
  if (!addrs.length) throw new QnetError(diag('QNET4203', `'${host_}' has only IPv6 addresses and ${i.src} has no IPv6`));
  const results = addrs.map((to) => annotate(m, ask(a, { from: i.src, to, proto: p, ...(i.port !== undefined ? { dport: i.port } : {}), ...(i.srcAddr ? { src: i.srcAddr } : {}) })));
  // The kernel has no namespace for a qube that does not run: say that, not "not in the plan".
  if (against === 'kernel' && srcQube && !a.plan.nodes.some((n) => n.name === i.src))
    for (const r of results) if (!r.hops.length) r.reason = `${i.src} is not running: the kernel holds no network stack for it`;
  // A qube whose rules file is broken is blocked: the answer is what the kernel does, not its policy.
  const crossed = new Set(results.flatMap((r) => [r.probe.from, ...r.hops.map((h) => h.node)]));
  return result(results, problemsOf(m, [...m.qubes.values()].filter((q) => crossed.has(q.name))));
}

/** A rule reference with what it stands for: `text` (work rule 3) and the qube's rules or the link it is. */
export type AnnotatedRef = RuleRef & { text: string; rules?: { qube: string; no: number; text: string }[]; detail?: string };

const MAX_LISTED = 20;

function annotateRef(m: Model, ref: RuleRef): AnnotatedRef {
  const o = ref.origin;
  const out: AnnotatedRef = { ...ref, text: describeOrigin(o) };
  const ruleOf = (qube: string, no: number) => {
    const q = m.qubes.get(qube);
    // No firewall file is Qubes' one accept rule.
    const r = q && (q.rules ?? [ACCEPT_ALL])[no];
    return { qube, no, text: r ? formatApiRule(r) + (q.rules === null ? ' (no firewall file: accept all)' : '') : '(no such rule in the stored policy)' };
  };
  if (o.kind === 'rule') out.rules = [ruleOf(o.qube, o.index)];
  else if (o.kind === 'rules') out.rules = o.ranges.flatMap(([lo, hi]) => Array.from({ length: Math.min(hi - lo + 1, MAX_LISTED) }, (_, k) => lo + k)).slice(0, MAX_LISTED).map((n) => ruleOf(o.qube, n));
  else if (o.kind === 'connection') {
    const c = m.connections?.find((x) => x.id === o.id);
    out.detail = c ? describeConnection(c) : '(no such connection in the stored policy)';
  } else if (o.kind === 'forward') {
    const f = m.forwards?.find((x) => x.id === o.id);
    out.detail = f ? `${f.proto}/${f.port} → ${f.qube}${f.toPort !== undefined ? `:${f.toPort}` : ''}` : '(no such forward in the stored policy)';
  }
  return out;
}

/** Every rule reference of a result (its own, each step's, each NAT's, the reply's) annotated. */
function annotate(m: Model, r: SimResult): SimResult {
  const ref = (x: RuleRef | undefined) => (x ? annotateRef(m, x) : undefined);
  return {
    ...r,
    ...(r.by ? { by: ref(r.by)! } : {}),
    hops: r.hops.map((h) => ({
      ...h,
      steps: h.steps.map((st) => ({ ...st, ...(st.by ? { by: ref(st.by)! } : {}), ...(st.nat ? { nat: { ...st.nat, by: ref(st.nat.by)! } } : {}) })),
      nat: h.nat.map((n) => (n.by ? { ...n, by: ref(n.by)! } : n)),
    })),
    ...(r.reply ? { reply: annotate(m, r.reply) } : {}),
  };
}

export const check = defineOp({
  name: 'check',
  kind: 'read',
  summary: 'can SRC reach DST? the verdict and the rule that decided, hop by hop, and the reply; for the stored policy or what the kernel holds now',
  output: v.array(CheckResultSchema),
  input: v.strictObject({
    ...checkInput.entries,
    against: v.optional(v.pipe(v.picklist(['policy', 'kernel']), v.description('policy: as stored (default); kernel: what the daemon loaded')), 'policy'),
  }),
  run: async (i, host): Promise<OpResult<SimResult[]>> => answer(i, host, await host.read(), i.against),
});

/** What decided at each hop, as text: `sys-firewall: work rule 1`. */
function decisions(r: SimResult): string[] {
  return r.hops.map((h) => `${h.node}: ${h.steps.filter((st) => st.verdict !== 'skipped' && st.by).map((st) => (st.by as AnnotatedRef).text).join(', ') || h.outcome}`);
}

/** Where the kernel's answer differs from the stored policy's, one line each (empty: they agree). */
function compare(policy: SimResult[], kernel: SimResult[]): string[] {
  const out: string[] = [];
  if (policy.length !== kernel.length) out.push(`the destination has ${policy.length} address(es) in the stored policy and ${kernel.length} in the kernel`);
  for (let n = 0; n < Math.min(policy.length, kernel.length); n++) {
    const leg = (p: SimResult, k: SimResult, what: string) => {
      const at = policy.length > 1 ? ` (${p.probe.to})` : '';
      // A different outcome says it all; the hops are on the page.
      if (p.verdict !== k.verdict || p.node !== k.node) return void out.push(`${what}${at}: ${p.verdict} at ${p.node} in the stored policy, ${k.verdict} at ${k.node} in the kernel`);
      if ((p.by as AnnotatedRef | undefined)?.text !== (k.by as AnnotatedRef | undefined)?.text)
        out.push(`${what}${at}: decided by ${(p.by as AnnotatedRef | undefined)?.text ?? 'a policy'} in the stored policy, by ${(k.by as AnnotatedRef | undefined)?.text ?? 'a policy'} in the kernel`);
      const dp = decisions(p);
      const dk = decisions(k);
      if (dp.join('|') !== dk.join('|')) {
        const hopsP = p.hops.map((h) => h.node).join(' → ');
        const hopsK = k.hops.map((h) => h.node).join(' → ');
        if (hopsP !== hopsK) out.push(`${what}${at}: path ${hopsP} in the stored policy, ${hopsK} in the kernel`);
        else dp.forEach((d, j) => d !== dk[j] && out.push(`${what}${at}: at ${d} in the stored policy; ${dk[j]!.slice(dk[j]!.indexOf(': ') + 2)} in the kernel`));
      }
    };
    const p = policy[n]!;
    const k = kernel[n]!;
    leg(p, k, 'request');
    if (p.reply && k.reply) leg(p.reply, k.reply, 'reply');
  }
  return out;
}

export const ExplainSchema = v.strictObject({
  /** check against the stored policy. */
  policy: v.array(CheckResultSchema),
  /** check against what the kernel holds now; null when this host cannot say (kernelRefused). */
  kernel: v.nullable(v.array(CheckResultSchema)),
  kernelRefused: v.nullable(v.looseObject({ code: v.string(), message: v.string() })),
  /** null when there is no kernel side to compare. */
  agree: v.nullable(v.boolean()),
  differences: v.array(v.string()),
  /** With `verify`: where the kernels on the path hold other chains or rule counts than qnet loaded; null when not read back. */
  kernelDrift: v.nullable(v.array(v.string())),
});

export const explain = defineOp({
  name: 'explain',
  kind: 'read',
  summary: 'check for the stored policy and for what the kernel holds now, side by side, and where they disagree',
  output: ExplainSchema,
  input: v.strictObject({
    ...checkInput.entries,
    verify: v.optional(v.pipe(v.boolean(), v.description('also read the rulesets of the nodes on the path back from the kernel (slower) and say where they differ from what qnet loaded')), false),
  }),
  run: async (i, host) => {
    const m = await host.read();
    const policy = await answer(i, host, m, 'policy');
    let kernel: OpResult<SimResult[]> | undefined;
    let kernelRefused: Diagnostic | null = null;
    try {
      kernel = await answer(i, host, m, 'kernel');
    } catch (e) {
      if (!(e instanceof QnetError)) throw e;
      kernelRefused = e.diag;
    }
    const differences = kernel ? compare(policy.value, kernel.value) : [];
    // The mirror is what qnet loaded; reading back says whether the kernel still holds it.
    const legs = (r: SimResult): SimResult[] => [r, ...(r.reply ? legs(r.reply) : [])];
    const path = kernel ? kernel.value.flatMap(legs).flatMap((r) => r.hops.map((h) => h.node)) : [];
    const kernelDrift = i.verify && kernel && host.kernelDrift ? await host.kernelDrift(path) : null;
    return result({ policy: policy.value, kernel: kernel?.value ?? null, kernelRefused, agree: kernel ? differences.length === 0 : null, differences, kernelDrift }, policy.warnings);
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
