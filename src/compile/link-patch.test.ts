// A link patch must be the full compile: for random models (two branches, a qube right under
// sys-net, some qubes halted, IPv6 on some) with random connections and forwards, and one random
// add, remove or change of a link, patchLinks() on compile(before) gives, node by node, what
// compile(after) gives: the same chains with the same rules in the same order, the same sets and
// maps with the same elements (declaration order aside, which nft does not keep); and so does the
// offline form, on the `qubes` tables alone. Where it declines (null), the caller compiles in
// full; that must stay the exception.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalRuleset } from '../ir/canonical.test-helpers.js';
import type { Ruleset } from '../ir/types.js';
import { changedConnections, checkLinks, nextId, type Connection, type PortForward } from '../model/connection.js';
import type { Model } from '../model/qube.js';
import type { NetPlan } from '../model/netplan.js';
import { linkRoutesHold, planNetwork } from '../model/topology.js';
import { compile, compileQubesTables } from './compile.js';
import { QUBES_TABLE } from './names.js';
import { patchLinks } from './link-patch.js';
import { arbConn, arbConns, arbFwd, arbRunning, arbV6, linkModel, withIds } from './link-arbitraries.test-helpers.js';

type Edit = { kind: 'add-conn'; c: Omit<Connection, 'id'> } | { kind: 'add-fwd'; f: Omit<PortForward, 'id'> } | { kind: 'del-conn' | 'del-fwd' | 'change-conn'; at: number; c?: Omit<Connection, 'id'> };

const arbEdit: fc.Arbitrary<Edit> = fc.oneof(
  arbConn.map((c) => ({ kind: 'add-conn' as const, c })),
  arbFwd.map((f) => ({ kind: 'add-fwd' as const, f })),
  fc.nat().map((at) => ({ kind: 'del-conn' as const, at })),
  fc.nat().map((at) => ({ kind: 'del-fwd' as const, at })),
  fc.tuple(fc.nat(), arbConn).map(([at, c]) => ({ kind: 'change-conn' as const, at, c })),
);

function edited(m: Model, e: Edit): Model {
  const conns = [...(m.connections ?? [])];
  const fwds = [...(m.forwards ?? [])];
  if (e.kind === 'add-conn') conns.push({ id: nextId('c', conns), ...e.c });
  if (e.kind === 'add-fwd') fwds.push({ id: nextId('f', fwds), ...e.f });
  if (e.kind === 'del-conn' && conns.length) conns.splice(e.at % conns.length, 1);
  if (e.kind === 'del-fwd' && fwds.length) fwds.splice(e.at % fwds.length, 1);
  if (e.kind === 'change-conn' && conns.length) {
    const i = e.at % conns.length;
    conns[i] = { id: conns[i]!.id, ...e.c! };
  }
  return { ...m, connections: conns, forwards: fwds };
}

test('patchLinks on compile(before) is compile(after), node by node, for a random link add/remove/change', () => {
  let patched = 0;
  let declined = 0;
  fc.assert(
    fc.property(
      arbRunning,
      arbV6,
      arbConns,
      fc.uniqueArray(arbFwd, { maxLength: 6, selector: (f) => `${f.proto} ${f.port}` }),
      arbEdit,
      (running, v6, cs, fs, edit) => {
        const before = linkModel(running, v6, withIds(cs, 'c'), withIds(fs, 'f'));
        const after = edited(before, edit);
        fc.pre(checkLinks(before).length === 0 && checkLinks(after).length === 0);
        const only = new Set([...before.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
        const plan = planNetwork(before, { uplink: 'world', only });
        const input = { plan, resolutions: new Map(), now: 0 };
        const held = compile({ ...input, model: before }).rulesets;
        const want = compile({ ...input, model: after }).rulesets;
        const p = patchLinks(input, before, after, (n) => held.get(n));
        if (!p) return void declined++;
        patched++;
        for (const [node, rs] of want) assert.deepEqual(canonicalRuleset(p.rulesets.get(node) ?? held.get(node)), canonicalRuleset(rs), `node ${node}`);
        for (const node of p.rulesets.keys()) assert.ok(want.has(node), `patched ${node}, which compile() does not give`);
        // Offline, only the `qubes` tables of compile(before) are made (compileQubesTables): the
        // same patch, on those alone.
        const qubesOnly = (rs: Ruleset | undefined) => rs && { tables: rs.tables.filter((t) => t.name === QUBES_TABLE) };
        const tables = compileQubesTables({ ...input, model: before });
        for (const node of held.keys()) assert.deepEqual(tables(node), qubesOnly(held.get(node)), `qubes tables of ${node}`);
        const q = patchLinks(input, before, after, tables);
        assert.ok(q, 'declines on the qubes tables alone where it patches the whole rulesets');
        assert.deepEqual([...q.rulesets.keys()], [...p.rulesets.keys()]);
        for (const [node, rs] of q.rulesets) assert.deepEqual(canonicalRuleset(rs), canonicalRuleset(qubesOnly(want.get(node))), `offline: node ${node}`);
      },
    ),
    { numRuns: 400 },
  );
  // Declining is always correct, but a patch that always declines is no patch.
  console.log(`patched ${patched}, declined ${declined}`);
  assert.ok(patched > declined, `patched ${patched}, declined ${declined}`);
});

test('linkRoutesHold answers as planning again and comparing the connection routes does, for a random link add/remove/change', () => {
  const routes = (p: NetPlan) => new Set(p.nodes.flatMap((n) => n.routes.filter((r) => r.forLink).map((r) => JSON.stringify([n.name, r]))));
  let hold = 0;
  let move = 0;
  fc.assert(
    fc.property(
      arbRunning,
      arbV6,
      arbConns,
      arbEdit,
      (running, v6, cs, edit) => {
        const before = linkModel(running, v6, withIds(cs, 'c'), []);
        const after = edited(before, edit);
        const only = new Set([...before.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name));
        const [planBefore, planAfter] = [before, after].map((m) => planNetwork(m, { uplink: 'world', only }));
        const [was, now] = [routes(planBefore!), routes(planAfter!)];
        const same = was.size === now.size && [...was].every((r) => now.has(r));
        const changed = changedConnections(after, before);
        assert.equal(linkRoutesHold(after, planBefore!, changed), same, 'daemon: the model after, the plan before');
        assert.equal(linkRoutesHold(before, planAfter!, changed), same, 'offline: the model before, the plan after');
        if (same) hold++;
        else move++;
      },
    ),
    { numRuns: 1200 },
  );
  // About one run in ten moves a route (≈ 120 of 1,200; ≥ 50 leaves a margin of several deviations).
  assert.ok(hold > 50 && move > 50, `routes held ${hold}, moved ${move}`);
});
