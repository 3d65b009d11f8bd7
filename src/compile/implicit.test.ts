// The implicit rows are what the compiler emits: each names a rule of the table and chain it says,
// with that origin, in the netvm it says, and in that order around the qube's own chain.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout } from '../model/layout.js';
import { planNetwork } from '../model/topology.js';
import { compile } from './compile.js';
import { implicitRows } from './implicit.js';

for (const uplink of ['world', 'none'] as const) {
  test(`every implicit row of work is a rule compile() puts in its netvm (uplink ${uplink})`, () => {
    const m = defaultLayout();
    const plan = planNetwork(m, { uplink });
    const rows = implicitRows(m, plan, 'work');
    assert.deepEqual(rows.map((r) => r.part), ['antispoof', 'dns-dnat', 'icmp-from-clients', 'refuse-clients', 'replies', 'policy', 'no-new-flows-to-clients']);
    const rs = compile({ model: m, plan, resolutions: new Map(), now: 0 }).rulesets;
    for (const r of rows) {
      const [table, chain] = r.chain.split(' ');
      const t = rs.get(r.node)!.tables.find((x) => x.family === 'ip' && x.name === table)!;
      const c = t.chains.find((x) => x.name === (r.part === 'policy' ? 'qbs-10-137-0-3' : chain));
      assert.ok(c, `${r.node} has ${r.chain}`);
      const origins = c.rules.map((x) => x.origin);
      assert.ok(origins.some((o) => (r.part === 'policy' ? o?.kind === 'policy' && o.qube === 'work' : o?.kind === 'base' && o.part === r.part)), `${r.part} in ${r.node} ${r.chain}`);
    }
    // sys-firewall is a ProxyVM: its DNS goes to the virtual resolvers again, one level up.
    assert.match(rows[1]!.match, /10\.139\.1\.1, 10\.139\.1\.2 → 10\.139\.1\.1, 10\.139\.1\.2/);
    // The top netvm's client redirects to the real upstream (the world's resolver, or none).
    const top = implicitRows(m, plan, 'sys-firewall');
    if (uplink === 'world') assert.equal(top[1]!.part, 'dns-dnat');
    else assert.equal(top[1]!.part, 'dns-no-upstream');
    assert.deepEqual(implicitRows(m, plan, 'sys-net'), [], 'no netvm: nothing enforces rules for it');
  });
}
