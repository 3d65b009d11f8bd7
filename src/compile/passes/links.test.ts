// Connections and forwards compiled and walked by the simulator: the verdict, where it was decided
// and by which origin. Layout: sys-net(1) ─ sys-firewall(2) ─ work(3), personal(4), untrusted(5);
// sys-net ─ fw2(7) ─ other(8); sys-net ─ direct(9).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emitFull } from '../../ir/emit-text.js';
import { validateRuleset } from '../../ir/validate.js';
import type { Connection, PortForward } from '../../model/connection.js';
import { defaultLayout, newQube } from '../../model/layout.js';
import type { Model } from '../../model/qube.js';
import { planNetwork } from '../../model/topology.js';
import type { Probe } from '../../sim/packet.js';
import { simulate, type SimResult } from '../../sim/walk.js';
import { compile } from '../compile.js';

function model(connections: Connection[] = [], forwards: PortForward[] = []): Model {
  const m = defaultLayout();
  m.qubes.set('fw2', newQube(7, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  m.qubes.set('other', newQube(8, 'other', 'orange', { netvm: 'fw2' }));
  m.qubes.set('direct', newQube(9, 'direct', 'purple', { netvm: 'sys-net' }));
  for (const q of m.qubes.values()) q.state = 'Running';
  m.connections = connections;
  m.forwards = forwards;
  return m;
}

function run(m: Model, probe: Probe): SimResult & { diags: string[] } {
  const plan = planNetwork(m, { uplink: 'world', only: new Set([...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name)) });
  const out = compile({ model: m, plan, resolutions: new Map(), now: 0 });
  for (const rs of out.rulesets.values()) assert.deepEqual(validateRuleset(rs), []);
  return { ...simulate({ plan, rulesets: out.rulesets }, probe), diags: out.diagnostics.map((d) => d.message) };
}

const conn = (from: string, to: string, extra: Partial<Connection> = {}): Connection => ({ id: 'c1', from, to, bothWays: false, ...extra });
const ip = (n: number) => `10.137.0.${n}`;

test('one way: work opens to personal, personal cannot open to work, the reply flows', () => {
  const m = model([conn('work', 'personal', { proto: 'tcp', ports: { start: 22, end: 22 } })]);
  const r = run(m, { from: 'work', to: ip(4), proto: 'tcp', dport: 22 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.node, 'personal');
  assert.equal(r.reply?.verdict, 'accept');
  assert.equal(run(m, { from: 'personal', to: ip(3), proto: 'tcp', dport: 22 }).verdict, 'drop');
  assert.equal(run(m, { from: 'work', to: ip(4), proto: 'tcp', dport: 23 }).verdict, 'drop', 'another port');
  assert.equal(run(m, { from: 'untrusted', to: ip(4), proto: 'tcp', dport: 22 }).verdict, 'drop', 'another source');
});

test('both ways', () => {
  const m = model([conn('work', 'personal', { bothWays: true })]);
  assert.equal(run(m, { from: 'work', to: ip(4), proto: 'udp', dport: 53 }).verdict, 'accept');
  assert.equal(run(m, { from: 'personal', to: ip(3), proto: 'icmp' }).verdict, 'accept');
});

test('across branches: masqueraded up, routed down, the accepts carry connection=c1', () => {
  const m = model([conn('work', 'other', { proto: 'tcp', ports: { start: 80, end: 80 } })]);
  const r = run(m, { from: 'work', to: ip(8), proto: 'tcp', dport: 80 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.node, 'other');
  assert.equal(r.reply?.verdict, 'accept');
  // other sees sys-firewall's address (masquerade on the upward hop), as in Qubes.
  assert.equal(r.hops.at(-1)!.packet.saddr, ip(2));
  // personal shares sys-firewall's masquerade but not the connection: stopped before it.
  const p = run(m, { from: 'personal', to: ip(8), proto: 'tcp', dport: 80 });
  assert.equal(p.verdict, 'drop');
  assert.equal(p.node, 'sys-firewall');
  assert.equal(run(m, { from: 'other', to: ip(3), proto: 'tcp', dport: 80 }).verdict, 'drop');
  assert.equal(run(m, { from: 'direct', to: ip(8), proto: 'tcp', dport: 80 }).verdict, 'drop');
});

test('a connection to a netvm on the way: other clients keep what Qubes gives them (ping), not the connection', () => {
  const m = model([conn('work', 'sys-net', { proto: 'tcp', ports: { start: 22, end: 22 } })]);
  assert.equal(run(m, { from: 'work', to: ip(1), proto: 'tcp', dport: 22 }).verdict, 'accept');
  assert.equal(run(m, { from: 'personal', to: ip(1), proto: 'tcp', dport: 22 }).verdict, 'drop');
  assert.equal(run(m, { from: 'personal', to: ip(1), proto: 'icmp' }).verdict, 'accept');
});

test('one end directly under sys-net, either way round', () => {
  let m = model([conn('work', 'direct')]);
  assert.equal(run(m, { from: 'work', to: ip(9), proto: 'tcp', dport: 5 }).verdict, 'accept');
  m = model([conn('direct', 'work')]);
  const r = run(m, { from: 'direct', to: ip(3), proto: 'tcp', dport: 5 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.hops.at(-1)!.packet.saddr, ip(9));
});

test("A's own rules still decide: a restrictive firewall rejects, naming its rule", () => {
  const m = model([conn('work', 'personal')]);
  m.qubes.get('work')!.rules = [{ action: 'accept', proto: 'icmp' }];
  const r = run(m, { from: 'work', to: ip(4), proto: 'tcp', dport: 22 });
  assert.equal(r.verdict, 'reject');
  assert.equal(r.by?.origin.kind, 'policy');
  assert.equal(run(m, { from: 'work', to: ip(4), proto: 'icmp' }).verdict, 'accept');
});

test('a halted end makes the connection inactive; unrelated trees are reported', () => {
  const m = model([conn('work', 'personal')]);
  m.qubes.get('personal')!.state = 'Halted';
  assert.notEqual(run(m, { from: 'work', to: ip(4), proto: 'tcp', dport: 1 }).node, 'personal');
  const m2 = model([conn('work', 'vault')]);
  assert.match(run(m2, { from: 'work', to: ip(3), proto: 'icmp' }).diags.join('\n'), /share no netvm/);
});

const fwd = (extra: Partial<PortForward> = {}): PortForward => ({ id: 'f1', qube: 'work', proto: 'tcp', port: 8080, from: [], on: [], ...extra });
const UPLINK = '198.51.100.2'; // sys-net's address on the world link

test('a forward: from the outside through sys-net and sys-firewall to work', () => {
  const m = model([], [fwd({ toPort: 80 })]);
  const r = run(m, { from: 'outside', to: UPLINK, proto: 'tcp', dport: 8080 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.node, 'work');
  assert.equal(r.deliveredTo, ip(3));
  assert.equal(r.hops.at(-1)!.packet.dport, 80);
  assert.equal(r.hops.at(-1)!.packet.saddr, '203.0.113.10', 'no masquerade downwards');
  assert.equal(r.reply?.verdict, 'accept');
  assert.equal(run(m, { from: 'outside', to: UPLINK, proto: 'tcp', dport: 8081 }).verdict, 'drop');
  assert.equal(run(m, { from: 'outside', to: UPLINK, proto: 'udp', dport: 8080 }).verdict, 'drop');
});

test('a forward: --from limits the sources; udp; a halted qube makes it inactive', () => {
  const m = model([], [fwd({ from: ['192.0.2.0/24'] })]);
  assert.equal(run(m, { from: 'outside', to: UPLINK, proto: 'tcp', dport: 8080 }).verdict, 'drop');
  assert.equal(run(m, { from: 'outside', src: '192.0.2.7', to: UPLINK, proto: 'tcp', dport: 8080 }).verdict, 'accept');
  const u = model([], [fwd({ proto: 'udp', port: 5353 })]);
  assert.equal(run(u, { from: 'outside', to: UPLINK, proto: 'udp', dport: 5353 }).verdict, 'accept');
  u.qubes.get('work')!.state = 'Halted';
  assert.equal(run(u, { from: 'outside', to: UPLINK, proto: 'udp', dport: 5353 }).verdict, 'drop');
});

test('a forward to a qube directly under sys-net, and the DNAT chain in the text', () => {
  const m = model([], [fwd({ qube: 'direct', port: 443 })]);
  const r = run(m, { from: 'outside', to: UPLINK, proto: 'tcp', dport: 443 });
  assert.equal(r.verdict, 'accept', r.reason);
  assert.equal(r.node, 'direct');
  const plan = planNetwork(m, { uplink: 'world' });
  const text = emitFull(compile({ model: m, plan, resolutions: new Map(), now: 0 }).rulesets.get('sys-net')!);
  assert.match(text, /add chain ip qubes dnat-forwards \{ type nat hook prerouting priority -100; policy accept; \}/);
  // One lookup by protocol and port jumps to the forward's own chain, which holds its DNAT rule.
  assert.match(text, /dnat-forwards meta l4proto \. th dport vmap @dnat-forwards-ports/);
  assert.match(text, /dnat-forwards-ports \{ tcp \. 443 : jump dn_tcp_443/);
  assert.match(text, /dn_tcp_443 iifgroup 1 ip daddr 198\.51\.100\.2 tcp dport 443 counter dnat to 10\.137\.0\.9:443 comment "forward=f1"/);
  // Only what is sent to the uplink address: not a packet for an internal address passing by.
  assert.equal(run(m, { from: 'outside', to: ip(9), proto: 'tcp', dport: 443 }).node === 'direct', false);
});

test('a forward whose top netvm has no uplink says so', () => {
  const m = model([], [fwd()]);
  const plan = planNetwork(m, { uplink: 'none' });
  const out = compile({ model: m, plan, resolutions: new Map(), now: 0 });
  assert.match(out.diagnostics.map((d) => d.message).join('\n'), /sys-net has no uplink/);
});

test('IPv6 where the qubes have it: a connection across branches and a forward from the outside', () => {
  const m = model([conn('work', 'other', { proto: 'tcp', ports: { start: 80, end: 80 } })], [fwd({ toPort: 80, from: ['2001:db8:1::/48'] })]);
  m.qubes.get('sys-net')!.features = { ipv6: '1' };
  const ip6 = (qid: number) => `fd09:24ef:4179::a89:${qid.toString(16)}`;
  const c = run(m, { from: 'work', to: ip6(8), proto: 'tcp', dport: 80 });
  assert.equal(c.verdict, 'accept', c.reason);
  assert.equal(c.node, 'other');
  assert.equal(c.reply?.verdict, 'accept');
  assert.equal(run(m, { from: 'personal', to: ip6(8), proto: 'tcp', dport: 80 }).verdict, 'drop');
  const f = run(m, { from: 'outside', to: '2001:db8:ffff::2', proto: 'tcp', dport: 8080 });
  assert.equal(f.verdict, 'accept', f.reason);
  assert.equal(f.deliveredTo, ip6(3));
  // The IPv6 --from range does not admit IPv4 sources.
  assert.equal(run(m, { from: 'outside', to: UPLINK, proto: 'tcp', dport: 8080 }).verdict, 'drop');
});

test('flat layout: the same verdict, deciding origin and counted origins as the rule lists, overlaps included', () => {
  // Overlapping links on purpose: any-protocol and tcp/22 between the same pair (the pair shape),
  // a port range, both ways, icmp, two forwards on one port told apart by --from, and a connection
  // and a forward that both admit tcp/80 into work.
  const m = model(
    [
      conn('work', 'other', { id: 'c1', proto: 'tcp', ports: { start: 22, end: 22 } }),
      conn('work', 'other', { id: 'c2' }),
      conn('personal', 'other', { id: 'c3', proto: 'tcp', ports: { start: 8000, end: 8010 } }),
      conn('personal', 'other', { id: 'c4', proto: 'tcp', ports: { start: 8005, end: 8005 } }),
      conn('untrusted', 'direct', { id: 'c5', proto: 'udp', ports: { start: 53, end: 53 }, bothWays: true }),
      conn('other', 'work', { id: 'c6', proto: 'icmp' }),
      conn('direct', 'work', { id: 'c7', proto: 'tcp', ports: { start: 80, end: 80 } }),
      conn('personal', 'work', { id: 'c8', proto: 'tcp', ports: { start: 80, end: 80 } }),
    ],
    [
      fwd({ id: 'f1', qube: 'work', port: 80, from: ['192.0.2.0/24'] }),
      fwd({ id: 'f2', qube: 'personal', port: 80, from: ['203.0.113.0/24'] }),
      fwd({ id: 'f3', qube: 'direct', proto: 'udp', port: 5000, toPort: 53 }),
    ],
  );
  const plan = planNetwork(m, { uplink: 'world' });
  const flat = compile({ model: m, plan, resolutions: new Map(), now: 0 }).rulesets;
  const linear = compile({ model: m, plan, resolutions: new Map(), now: 0, layout: 'qubes-linear' }).rulesets;
  for (const rs of flat.values()) assert.deepEqual(validateRuleset(rs), []);
  assert.match(emitFull(flat.get('sys-net')!), /vmap @links-down-conn/, 'the flat layout is what is compared');
  const probes: Probe[] = [];
  for (const [from, src] of [['work', undefined], ['personal', undefined], ['untrusted', undefined], ['other', undefined], ['direct', undefined], ['outside', '192.0.2.7'], ['outside', '203.0.113.10'], ['outside', '198.51.100.9']] as const)
    for (const to of [ip(3), ip(4), ip(5), ip(8), ip(9), UPLINK])
      for (const [proto, dport] of [['tcp', 22], ['tcp', 23], ['tcp', 80], ['tcp', 8000], ['tcp', 8005], ['tcp', 8011], ['udp', 53], ['udp', 5000], ['icmp', undefined]] as const)
        probes.push({ from, ...(src ? { src } : {}), to, proto, ...(dport === undefined ? {} : { dport }) } as Probe);
  let accepted = 0;
  // Counters: the qubes' own rules are laid out differently (dispatch vs jumps); only links compare.
  const links = (r: SimResult) =>
    r.hops
      .flatMap((h) => h.counted ?? [])
      .map((c) => c.rule.origin)
      .filter((o) => o.kind === 'connection' || o.kind === 'forward')
      .map((o) => JSON.stringify(o));
  for (const p of probes) {
    const a = simulate({ plan, rulesets: flat }, p);
    const b = simulate({ plan, rulesets: linear }, p);
    const what = JSON.stringify(p);
    assert.equal(a.verdict, b.verdict, what);
    assert.equal(a.node, b.node, what);
    assert.deepEqual(links(a), links(b), what);
    if (a.verdict === 'accept') accepted++;
  }
  assert.ok(accepted > 20, `the probes reach the links (${accepted} accepted)`);
});
