// `connect` asks whether the source's own rules refuse the connection's first packet on
// pathModel(), the qubes on the way only: for random models with links and random rules on the
// source, the answer (and the rule or policy it names) is the one the whole model gives with every
// qube running, which is what it asked before. (The verdict itself may differ: a connection from
// outside the path to the destination gives the destination's input rules of its own.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { arbConns, arbFwd, arbRunning, arbV6, linkModel, QUBES, withIds } from '../compile/link-arbitraries.test-helpers.js';
import { qubeIp } from '../model/addressing.js';
import { checkLinks } from '../model/connection.js';
import type { Model } from '../model/qube.js';
import { arbRule } from '../model/rule-arbitraries.test-helpers.js';
import { pathModel } from '../model/topology.js';
import { ownRefusal } from '../sim/questions.js';
import { analyse } from './analysis.js';

const NOW = 1_800_000_000;

const allRunning = (m: Model): Model => ({ ...m, qubes: new Map([...m.qubes].map(([n, q]) => [n, { ...q, state: 'Running' as const }])) });

test("what the source's rules say of a packet is the same on the path's qubes as on the whole model", () => {
  let blocked = 0;
  let runs = 0;
  fc.assert(
    fc.property(
      arbRunning,
      arbV6,
      arbConns,
      fc.uniqueArray(arbFwd, { maxLength: 4, selector: (f) => `${f.proto} ${f.port}` }),
      fc.constantFrom(...QUBES),
      fc.constantFrom(...QUBES),
      fc.option(fc.array(arbRule, { maxLength: 6 }), { nil: null }),
      fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const), dport: fc.constantFrom(22, 80, 443, 8080) }),
      (running, v6, cs, fs, from, to, rules, p) => {
        fc.pre(from !== to);
        const m = linkModel(running, v6, withIds(cs, 'c'), withIds(fs, 'f'));
        fc.pre(checkLinks(m).length === 0);
        m.qubes.get(from)!.rules = rules;
        const ip = qubeIp(m, m.qubes.get(to)!);
        fc.pre(ip !== null);
        const probe = { from, to: ip!, proto: p.proto, ...(p.proto !== 'icmp' ? { dport: p.dport } : {}) };
        const whole = ownRefusal(analyse(allRunning(m), new Map(), NOW), from, probe);
        const path = ownRefusal(analyse(pathModel(m, from, to), new Map(), NOW), from, probe);
        runs++;
        if (whole) blocked++;
        assert.deepEqual(path, whole);
      },
    ),
    { numRuns: 300 },
  );
  // Both answers occur: the property is not only ever "not refused".
  assert.ok(blocked > runs / 10 && blocked < runs - runs / 10, `${blocked} of ${runs} blocked`);
});
