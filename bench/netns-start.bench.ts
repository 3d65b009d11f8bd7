// Starting N app qubes behind sys-firewall/sys-net: the batched netns backend against the naive way
// (one `ip`/`sysctl` process per step), measured in the same run. Target: N = 200 under 5 s.
// Run: npx tsx bench/netns-start.bench.ts   (root; every namespace is removed, even on failure)
import { performance } from 'node:perf_hooks';
import { NodeRunner, runChecked, type RunOptions, type RunResult, type Runner } from '../src/backend/netns/runner.js';
import { NetnsBackend } from '../src/backend/netns/netns-backend.js';
import { vmidToIpv4 } from '../src/model/addressing.js';
import type { NetNode, NetPlan } from '../src/model/netplan.js';
import { naiveBringUp, round, skipWithoutKernel, withNs } from './support.js';

class CountingRunner implements Runner {
  spawns = 0;
  constructor(private readonly inner: Runner) {}
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.spawns++;
    return this.inner.run(argv, opts);
  }
}

/** sys-net (qid 1) ← sys-firewall (qid 2) ← app-3 … app-(n+2); Qubes /32 links (§5.1). */
function plan(n: number): NetPlan {
  const ip = (qid: number) => vmidToIpv4('10.137', qid);
  const node = (name: string, forwarding: boolean): NetNode => ({ name, kind: 'qube', ifaces: [], routes: [], forwarding });
  const net = node('sys-net', true);
  const fw = node('sys-firewall', true);
  const apps: NetNode[] = [];
  const attach = (client: NetNode, cqid: number, netvm: NetNode, nqid: number) => {
    const vif = `vif${cqid}.0`;
    client.ifaces.push({ name: 'eth0', group: client.forwarding ? 1 : 0, addrs: [{ addr: ip(cqid), len: 32 }], peer: { node: netvm.name, iface: vif } });
    client.routes.push({ dst: `${ip(nqid)}/32`, dev: 'eth0', family: 4 }, { dst: 'default', dev: 'eth0', via: ip(nqid), family: 4 });
    netvm.ifaces.push({ name: vif, group: 2, addrs: [{ addr: ip(nqid), len: 32 }], peer: { node: client.name, iface: 'eth0' } });
    netvm.routes.push({ dst: `${ip(cqid)}/32`, dev: vif, family: 4 });
  };
  attach(fw, 2, net, 1);
  for (let i = 0; i < n; i++) {
    const app = node(`app-${i + 3}`, false);
    attach(app, i + 3, fw, 2);
    apps.push(app);
  }
  return { nodes: [net, fw, ...apps], virtualDns: [], upstreamDns: [], uplink: 'none' };
}

const names = (p: NetPlan) => p.nodes.map((n) => n.name);

async function check(runner: Runner, prefix: string, p: NetPlan): Promise<void> {
  // One sample ping proves the result is a working network, not just fast.
  const last = p.nodes[p.nodes.length - 1]!.name;
  await runChecked(runner, ['ping', '-n', '-q', '-c', '1', '-W', '1', vmidToIpv4('10.137', 2)], { netns: prefix + last, timeoutMs: 3000 });
}

interface Row {
  n: number;
  method: 'batched' | 'naive';
  ms: number;
  perQubeMs: number;
  spawns: number;
  teardownMs: number;
}

async function measure(n: number, method: Row['method'], runs: number): Promise<Row> {
  const samples: { ms: number; spawns: number; teardownMs: number }[] = [];
  for (let r = 0; r < runs; r++) {
    // withNs: scripts/bench.mjs stops a long bench with SIGINT, and its namespaces must go too.
    await withNs('qb', async (prefix) => {
      const runner = new CountingRunner(new NodeRunner());
      const be = new NetnsBackend({ runner, prefix });
      const p = plan(n);
      const t0 = performance.now();
      if (method === 'batched') await be.bringUp(p, names(p));
      else await naiveBringUp(runner, p, prefix);
      const ms = performance.now() - t0;
      const spawns = runner.spawns;
      await check(runner, prefix, p);
      const t1 = performance.now();
      await be.tearDown(names(p));
      samples.push({ ms, spawns, teardownMs: performance.now() - t1 });
    });
  }
  samples.sort((a, b) => a.ms - b.ms);
  const med = samples[Math.floor(samples.length / 2)]!;
  return { n, method, ms: round(med.ms), perQubeMs: round(med.ms / n), spawns: med.spawns, teardownMs: round(med.teardownMs) };
}

async function main(): Promise<void> {
  if (skipWithoutKernel('netns-start')) return;
  const rows: Row[] = [];
  for (const n of [10, 50]) {
    rows.push(await measure(n, 'naive', 3));
    rows.push(await measure(n, 'batched', 3));
  }
  rows.push(await measure(200, 'batched', 3));

  console.log('N    method    total ms  per qube ms  spawns  teardown ms  vs naive');
  for (const r of rows) {
    const base = rows.find((x) => x.n === r.n && x.method === 'naive');
    const ratio = base && r.method === 'batched' ? `${round(base.ms / r.ms)}× faster` : '';
    console.log(
      `${String(r.n).padEnd(4)} ${r.method.padEnd(9)} ${String(r.ms).padStart(8)}  ${String(r.perQubeMs).padStart(11)}  ${String(r.spawns).padStart(6)}  ${String(r.teardownMs).padStart(11)}  ${ratio}`,
    );
  }
  const at200 = rows.find((r) => r.n === 200)!;
  console.log(JSON.stringify({ bench: 'netns-start', rows, target: { n: 200, maxMs: 5000, ok: at200.ms < 5000 } }));
}

await main();
