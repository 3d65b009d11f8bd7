// The Qubes scenarios again, on rulesets from src/compile (not the hand-built mirrors), asserting
// verdict and where it was decided; origin texts are the compiler's own. Address plan: see sim.test.ts
// (10.137.0.0/16 qubes, 10.139.1.1/2 virtual DNS, 203.0.113.0/24 outside, 198.51.100.0/24 uplink).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compile } from '../compile/compile.js';
import { defaultLayout } from '../model/layout.js';
import type { Rule } from '../model/rule.js';
import { planNetwork } from '../model/topology.js';
import { newSimState } from './conntrack.js';
import type { Probe } from './packet.js';
import { formatTrace } from './trace.js';
import { simulate, type World } from './walk.js';

function compiled(rules: Record<string, Rule[] | null>): World {
  const model = defaultLayout();
  for (const [name, r] of Object.entries(rules)) model.qubes.set(name, { ...model.qubes.get(name)!, rules: r });
  const plan = planNetwork(model, { uplink: 'world' });
  const out = compile({ model, plan, resolutions: new Map(), now: 0 });
  return { plan, rulesets: out.rulesets };
}

const dst4 = (a: string): Rule['dsthost'] => ({ type: 'dst4', text: `${a}/32`, addr: a, prefix: 32 });
const work = (to: string, proto: Probe['proto'], dport?: number, extra: Partial<Probe> = {}): Probe => ({ from: 'work', to, proto, ...(dport !== undefined ? { dport } : {}), ...extra });

const cases: { name: string; rules: Rule[] | null; probe: Probe; verdict: 'accept' | 'drop' | 'reject'; at: string }[] = [
  { name: 'block all: work to 203.0.113.5 tcp/443 is rejected at sys-firewall', rules: [], probe: work('203.0.113.5', 'tcp', 443), verdict: 'reject', at: 'sys-firewall' },
  { name: 'ICMP only: work pings the outside', rules: [{ action: 'accept', proto: 'icmp' }], probe: work('203.0.113.5', 'icmp'), verdict: 'accept', at: 'world' },
  { name: 'ICMP only: work to tcp/443 is rejected', rules: [{ action: 'accept', proto: 'icmp' }], probe: work('203.0.113.5', 'tcp', 443), verdict: 'reject', at: 'sys-firewall' },
  { name: 'ICMP and DNS: work resolves through 10.139.1.1', rules: [{ action: 'accept', proto: 'icmp' }, { action: 'accept', specialtarget: 'dns' }], probe: work('10.139.1.1', 'udp', 53), verdict: 'accept', at: 'world' },
  { name: 'allow one target: work reaches 203.0.113.5 tcp/443', rules: [{ action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: { start: 443, end: 443 } }], probe: work('203.0.113.5', 'tcp', 443), verdict: 'accept', at: 'world' },
  { name: 'allow one target: work to 203.0.113.6 tcp/443 is rejected', rules: [{ action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: { start: 443, end: 443 } }], probe: work('203.0.113.6', 'tcp', 443), verdict: 'reject', at: 'sys-firewall' },
  { name: 'deny one target: work to 203.0.113.66 is rejected', rules: [{ action: 'drop', dsthost: dst4('203.0.113.66') }, { action: 'accept' }], probe: work('203.0.113.66', 'tcp', 443), verdict: 'reject', at: 'sys-firewall' },
  { name: 'deny one target: work reaches 203.0.113.67', rules: [{ action: 'drop', dsthost: dst4('203.0.113.66') }, { action: 'accept' }], probe: work('203.0.113.67', 'tcp', 443), verdict: 'accept', at: 'world' },
  { name: 'two qubes cannot reach each other', rules: null, probe: work('10.137.0.4', 'tcp', 22), verdict: 'drop', at: 'sys-firewall' },
  { name: 'a spoofed source is dropped at sys-firewall', rules: null, probe: work('203.0.113.5', 'tcp', 443, { src: '10.137.0.4' }), verdict: 'drop', at: 'sys-firewall' },
  { name: 'vault (no netvm) reaches nothing', rules: null, probe: { from: 'vault', to: '203.0.113.5', proto: 'tcp', dport: 443 }, verdict: 'drop', at: 'vault' },
];

for (const c of cases) {
  test(`compiled: ${c.name}`, () => {
    const r = simulate(compiled({ work: c.rules }), c.probe);
    assert.equal(r.verdict, c.verdict, formatTrace(r));
    assert.equal(r.node, c.at, formatTrace(r));
  });
}

test('compiled: an established flow survives tightening the rules, a new one does not', () => {
  const state = newSimState();
  const https = work('203.0.113.5', 'tcp', 443);
  const open = simulate(compiled({ work: [{ action: 'accept', dsthost: dst4('203.0.113.5'), proto: 'tcp', dstports: { start: 443, end: 443 } }] }), https, state);
  assert.equal(open.verdict, 'accept', formatTrace(open));
  const blocked = compiled({ work: [] });
  const again = simulate(blocked, https, state);
  assert.equal(again.verdict, 'accept', formatTrace(again));
  const fresh = simulate(blocked, { ...https, sport: 50001 }, state);
  assert.equal(fresh.verdict, 'reject', formatTrace(fresh));
});
