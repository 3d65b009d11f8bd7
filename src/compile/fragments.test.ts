import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NamedSet, Ruleset, Table } from '../ir/types.js';
import type { ClientFragment } from './compile.js';
import { clientSets, patchClient } from './fragments.js';
import { clientOwns, FIREWALL_TABLE } from './names.js';

const set = (name: string): NamedSet => ({ kind: 'set', name, keyType: ['ipv4_addr'], interval: false, elements: [] });
const chain = (name: string) => ({ name, rules: [] });

/** What clientSets meant before its index: every set clientOwns() gives the chain, in table order. */
const byFilter = (rs: Ruleset, f: ClientFragment) => rs.tables.find((t) => t.name === FIREWALL_TABLE && t.family === f.family)!.sets.filter((x) => clientOwns(f.chain.name)(x.name));

test("a client's sets through the per-table index are exactly clientOwns()'s, across patches (chain names that extend others too)", () => {
  // `qbs-a-1` extends `qbs-a` at a `-`: clientOwns('qbs-a') owns its sets too (the index must agree).
  const chains = ['qbs-a', 'qbs-a-1', 'qbs-b', 'qbs-b0'];
  const table: Table = {
    family: 'ip',
    name: FIREWALL_TABLE,
    chains: chains.map(chain),
    sets: ['qbs-a-d0', 'qbs-a-1-d0', 'qbs-a-1-d0-g1', 'qbs-b-dp0', 'qbs-b0-d0', 'qbs-b-d1-g2', 'dispatch'].map(set),
  };
  let rs: Ruleset = { tables: [table, { ...table, family: 'ip6' }] };
  const frag = (c: string, ...sets: string[]): ClientFragment => ({ family: 'ip', table: FIREWALL_TABLE, chain: chain(c), sets: sets.map(set) });
  const check = () => {
    for (const c of chains) assert.deepEqual(clientSets(rs, frag(c)), byFilter(rs, frag(c)), c);
  };
  check();
  for (const f of [frag('qbs-b', 'qbs-b-d0', 'qbs-b-pt1'), frag('qbs-a-1', 'qbs-a-1-d0'), frag('qbs-a', 'qbs-a-dpt0'), frag('qbs-b0'), frag('qbs-b', 'qbs-b-d0-g1')]) {
    rs = patchClient(rs, [f])!;
    check();
    assert.deepEqual(
      clientSets(rs, f).filter((x) => f.sets.some((y) => y.name === x.name)).map((x) => x.name),
      f.sets.map((x) => x.name),
    );
  }
  assert.equal(patchClient(rs, [frag('qbs-new')]), null);
});
