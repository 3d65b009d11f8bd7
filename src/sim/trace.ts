// A verdict explained hop by hop, in the spirit of kube-proxy's "By matching:" failure output.
import type { RejectWith } from '../ir/types.js';
import type { ChainStep } from './evaluate.js';
import type { Hop, PacketView, SimResult } from './walk.js';
import { describeOrigin } from '../model/origin.js';

const svc = (v: PacketView) => (v.dport !== undefined ? `${v.proto}/${v.dport}` : v.icmpType !== undefined ? `${v.proto}/${v.icmpType}` : v.proto);
const ep = (a: string, port: number | undefined) => (port === undefined ? a : a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
const pkt = (v: PacketView) => `${ep(v.saddr, v.sport)} → ${ep(v.daddr, v.dport)} ${svc(v)}`;

export function formatReject(r: RejectWith | undefined): string {
  if (!r) return 'icmp port-unreachable';
  return r.type === 'tcp reset' ? 'tcp reset' : `${r.type} ${r.code}`;
}

function step(s: ChainStep): string {
  const head = `${s.hook} ${s.family} ${s.table} ${s.chain} (${s.type} ${s.priority})`;
  if (s.verdict === 'skipped') return `${head}: skipped — ${s.note ?? ''}`;
  let v = s.policy ? `${s.verdict} (policy)` : `${s.verdict}${s.by ? ` by ${describeOrigin(s.by.origin)} [${s.by.chain} rule ${s.by.index}]` : ''}`;
  if (s.verdict === 'reject') v += ` with ${formatReject(s.reject)}`;
  if (s.nat) v += s.nat.kind === 'dnat' ? ` — dnat to ${s.nat.addr}${s.nat.port !== undefined ? `:${s.nat.port}` : ''}` : ' — masquerade';
  const path = s.path && s.path.length > 1 ? ` via ${s.path.join(' → ')}` : '';
  const logs = s.logs ? ` log ${s.logs.map((l) => JSON.stringify(l)).join(', ')}` : '';
  return `${head}: ${v}${path}${logs} (${s.rulesEvaluated} rule${s.rulesEvaluated === 1 ? '' : 's'})`;
}

function hop(h: Hop, out: string[], indent: string): void {
  const dirs = [h.in ? `in ${h.in}` : 'created here', h.out ? `out ${h.out}` : ''].filter(Boolean).join(', ');
  out.push(`${indent}${h.node} (${dirs}): ${pkt(h.packet)}, ct ${h.ct} → ${h.outcome}`);
  let routed = false;
  for (const s of h.steps) {
    // The routing decision sits between prerouting/output and what follows it.
    if (!routed && h.route && s.hook !== 'prerouting' && s.hook !== 'output') {
      out.push(`${indent}    route: ${h.route}`);
      routed = true;
    }
    out.push(`${indent}    ${step(s)}`);
  }
  if (!routed && h.route) out.push(`${indent}    route: ${h.route}`);
  for (const n of h.nat) out.push(`${indent}    nat (${n.hook}): ${n.field} ${n.from} → ${n.to}${n.by ? ` by ${describeOrigin(n.by.origin)}` : n.kind === 'ct' ? ' (conntrack)' : ''}`);
  for (const c of h.counted) out.push(`${indent}    counter: ${describeOrigin(c.rule.origin)} [${c.rule.table} ${c.rule.chain} rule ${c.rule.index}] = ${c.packets}`);
}

export function formatTrace(r: SimResult): string {
  const out: string[] = [];
  const p = r.probe;
  const what = `${p.proto}${p.dport !== undefined ? `/${p.dport}` : p.icmpType !== undefined ? `/${p.icmpType}` : ''}`;
  const head = r.verdict === 'accept' ? 'ACCEPT' : r.verdict === 'reject' ? `REJECT (${formatReject(r.reject)})` : 'DROP';
  out.push(`${p.from}${p.src ? ` (as ${p.src})` : ''} → ${p.to} ${what}: ${head} — ${r.reason}`);
  out.push(`By matching (${r.rulesEvaluated} rules evaluated):`);
  for (const h of r.hops) hop(h, out, '  ');
  if (r.reply) {
    const rr = r.reply;
    out.push(`Reply: ${rr.verdict === 'accept' ? 'ACCEPT' : rr.verdict.toUpperCase()} — ${rr.reason}`);
    for (const h of rr.hops) hop(h, out, '  ');
  }
  return out.join('\n');
}
