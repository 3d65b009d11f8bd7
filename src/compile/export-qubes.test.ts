import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Connection, PortForward } from '../model/connection.js';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { exportQubes, exportShares, iptablesLines, nftRule } from './export-qubes.js';

const conn = (c: Partial<Connection> & Pick<Connection, 'id' | 'from' | 'to'>): Connection => ({ bothWays: false, ...c });
const fwd = (f: Partial<PortForward> & Pick<PortForward, 'id' | 'qube'>): PortForward => ({ proto: 'tcp', port: 8080, from: [], on: [], ...f });

function model(conns: Connection[] = [], fwds: PortForward[] = []): Model {
  const m = defaultLayout();
  m.connections = conns;
  m.forwards = fwds;
  return m;
}

const nftOf = (m: Model, f: 'ip' | 'ip6', q: string) => (exportShares(m).rules.get(`${f} ${q}`) ?? []).map((r) => `${r.chain}: ${nftRule(f, r)}`);

test('a connection under one firewall qube: an accept in its forward chain, one in the target input', () => {
  const m = model([conn({ id: 'c1', from: 'work', to: 'personal', proto: 'tcp', ports: { start: 22, end: 22 } })]);
  assert.deepEqual(nftOf(m, 'ip', 'sys-firewall'), ['forward: ip saddr 10.137.0.3 ip daddr 10.137.0.4 tcp dport 22 counter accept comment "qnet connection c1"']);
  assert.deepEqual(nftOf(m, 'ip', 'personal'), ['input: ip saddr 10.137.0.3 tcp dport 22 counter accept comment "qnet connection c1"']);
  assert.deepEqual(nftOf(m, 'ip', 'work'), [], 'one way: nothing opens work');
  const { files, diagnostics } = exportQubes(m);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(files.map((f) => `${f.qube}/${f.path}`), ['sys-firewall/qubes-firewall-user-script', 'work/rc.local', 'personal/rc.local']);
  const rc = files.find((f) => f.qube === 'personal')!.text;
  assert.match(rc, /^#!\/bin\/sh\n# \/rw\/config\/rc\.local of personal/);
  assert.match(rc, /re-export/);
  assert.match(rc, /flush chain ip qubes qnet-input\n/);
  assert.match(rc, /nft list chain ip qubes custom-input \| grep -Eq '\^\[\[:space:\]\]\*jump qnet-input\( \|\$\)' \|\|\n\tnft add rule ip qubes custom-input jump qnet-input/);
  assert.doesNotMatch(rc, /qnet-forward|qnet-dnat/, 'an app qube gets only its input chain');
});

test('upward hops accept the flow out of the uplink, then guard; the next hop sees the masqueraded source', () => {
  const m = model([
    conn({ id: 'c1', from: 'work', to: 'vault', proto: 'tcp', ports: { start: 22, end: 23 } }),
    conn({ id: 'c2', from: 'personal', to: 'vault', proto: 'tcp', ports: { start: 22, end: 23 } }),
  ]);
  m.qubes.get('vault')!.netvm = 'sys-net';
  assert.deepEqual(nftOf(m, 'ip', 'sys-firewall'), [
    'forward: ip saddr 10.137.0.3 ip daddr 10.137.0.6 tcp dport 22-23 oifgroup 1 counter accept comment "qnet connection c1"',
    'forward: ip saddr 10.137.0.4 ip daddr 10.137.0.6 tcp dport 22-23 oifgroup 1 counter accept comment "qnet connection c2"',
    'forward: ip daddr 10.137.0.6 tcp dport 22-23 oifgroup 1 counter drop comment "qnet connection c1"',
  ]);
  assert.deepEqual(nftOf(m, 'ip', 'sys-net'), [
    'forward: ip saddr 10.137.0.2 ip daddr 10.137.0.6 tcp dport 22-23 counter accept comment "qnet connection c1"',
    'forward: ip saddr 10.137.0.2 ip daddr 10.137.0.6 tcp dport 22-23 counter accept comment "qnet connection c2"',
  ]);
  assert.equal(nftOf(m, 'ip', 'vault')[0], 'input: ip saddr 10.137.0.2 tcp dport 22-23 counter accept comment "qnet connection c1"');
});

test('a path down through a netvm below the common one is refused, with why', () => {
  const m = model([conn({ id: 'c1', from: 'work', to: 'other' })]);
  m.qubes.set('fw2', newQube(7, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  m.qubes.set('other', newQube(8, 'other', 'orange', { netvm: 'fw2' }));
  const { files, diagnostics } = exportQubes(m);
  assert.deepEqual(files, []);
  assert.equal(diagnostics[0]!.code, 'QNET4007');
  assert.match(diagnostics[0]!.message, /goes down through fw2/);
});

test('a forward: DNAT at every hop, the top on what is sent to itself, accepts only for DNATed flows', () => {
  const m = model([], [fwd({ id: 'f1', qube: 'work', toPort: 8000, from: ['203.0.113.7/24', '198.51.100.1'] })]);
  assert.deepEqual(nftOf(m, 'ip', 'sys-net'), [
    'dnat: iifgroup 1 fib daddr type local ip saddr { 203.0.113.0/24, 198.51.100.1 } tcp dport 8080 counter dnat to 10.137.0.2:8080 comment "qnet forward f1"',
    'forward: iifgroup 1 ip saddr { 203.0.113.0/24, 198.51.100.1 } ip daddr 10.137.0.2 tcp dport 8080 ct status dnat counter accept comment "qnet forward f1"',
  ]);
  assert.deepEqual(nftOf(m, 'ip', 'sys-firewall'), [
    'dnat: iifgroup 1 ip saddr { 203.0.113.0/24, 198.51.100.1 } ip daddr 10.137.0.2 tcp dport 8080 counter dnat to 10.137.0.3:8000 comment "qnet forward f1"',
    'forward: iifgroup 1 ip saddr { 203.0.113.0/24, 198.51.100.1 } ip daddr 10.137.0.3 tcp dport 8000 ct status dnat counter accept comment "qnet forward f1"',
  ]);
  assert.deepEqual(nftOf(m, 'ip', 'work'), ['input: ip saddr { 203.0.113.0/24, 198.51.100.1 } tcp dport 8000 counter accept comment "qnet forward f1"']);
  const net = exportQubes(m).files.find((f) => f.qube === 'sys-net')!.text;
  assert.match(net, /chain qnet-dnat \{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\}/);
  assert.match(net, /flush chain ip qubes qnet-dnat\n/);
});

test('IPv6 where the qubes have it: ip6 table, bracketed DNAT target, no IPv4 --from in it', () => {
  const m = model([], [fwd({ id: 'f1', qube: 'work', proto: 'udp', port: 53, on: ['ens6', 'wlan0'] })]);
  m.qubes.get('sys-net')!.features.ipv6 = '1';
  assert.deepEqual(nftOf(m, 'ip6', 'sys-net')[0], 'dnat: iifname { "ens6", "wlan0" } udp dport 53 counter dnat to [fd09:24ef:4179::a89:2]:53 comment "qnet forward f1"');
  const text = exportQubes(m).files.find((f) => f.qube === 'work')!.text;
  assert.match(text, /table ip6 qubes \{\n\tchain qnet-input/);
  const v4only = model([], [fwd({ id: 'f1', qube: 'work', from: ['192.0.2.1'] })]);
  v4only.qubes.get('sys-net')!.features.ipv6 = '1';
  assert.deepEqual(nftOf(v4only, 'ip6', 'work'), [], 'an IPv4 --from admits nobody over IPv6');
});

test('selection: links whose path touches a named qube; each file holds all of its qube\'s share', () => {
  const m = model(
    [conn({ id: 'c1', from: 'work', to: 'personal' })],
    [fwd({ id: 'f1', qube: 'untrusted' })],
  );
  const { files } = exportQubes(m, { qubes: ['personal'] });
  assert.deepEqual(files.map((f) => f.qube), ['sys-firewall', 'work', 'personal']);
  assert.match(files[0]!.text, /forward f1/, "sys-firewall's script keeps the forward it also carries");
  const none = exportQubes(m, { qubes: ['vault'] });
  assert.deepEqual(none.files, []);
  assert.equal(none.diagnostics[0]!.code, 'QNET2203');
});

test('hostile stored links are skipped with their diagnostic, never written', () => {
  const m = model(
    [conn({ id: 'c1', from: 'work', to: 'personal', comment: 'x\n"QNET' })],
    [fwd({ id: 'f1', qube: 'work', on: ['eth0"; flush ruleset; "'] })],
  );
  const { files, diagnostics } = exportQubes(m);
  assert.deepEqual(files, []);
  assert.deepEqual(diagnostics.map((d) => d.code), ['QNET2201', 'QNET2201']);
});

test('iptables (R4.1): one line per source and interface, devgroup/addrtype/conntrack, guarded jumps', () => {
  const m = model([], [fwd({ id: 'f1', qube: 'work', toPort: 8000, from: ['203.0.113.0/24', '198.51.100.1'] })]);
  const net = exportShares(m).rules.get('ip sys-net')!;
  assert.deepEqual(net.flatMap((r) => iptablesLines('ip', r)), [
    '-A QNET-DNAT -m devgroup --src-group 1 -m addrtype --dst-type LOCAL -s 203.0.113.0/24 -p tcp --dport 8080 -m comment --comment "qnet forward f1" -j DNAT --to-destination 10.137.0.2:8080',
    '-A QNET-DNAT -m devgroup --src-group 1 -m addrtype --dst-type LOCAL -s 198.51.100.1 -p tcp --dport 8080 -m comment --comment "qnet forward f1" -j DNAT --to-destination 10.137.0.2:8080',
    '-A QNET-FWD -m devgroup --src-group 1 -s 203.0.113.0/24 -d 10.137.0.2 -p tcp --dport 8080 -m conntrack --ctstate DNAT -m comment --comment "qnet forward f1" -j ACCEPT',
    '-A QNET-FWD -m devgroup --src-group 1 -s 198.51.100.1 -d 10.137.0.2 -p tcp --dport 8080 -m conntrack --ctstate DNAT -m comment --comment "qnet forward f1" -j ACCEPT',
  ]);
  const c = model([conn({ id: 'c1', from: 'work', to: 'vault', proto: 'tcp', ports: { start: 22, end: 23 } })]);
  c.qubes.get('vault')!.netvm = 'sys-net';
  assert.deepEqual(exportShares(c).rules.get('ip sys-firewall')!.flatMap((r) => iptablesLines('ip', r)), [
    '-A QNET-FWD -s 10.137.0.3 -d 10.137.0.6 -p tcp --dport 22:23 -m devgroup --dst-group 1 -m comment --comment "qnet connection c1" -j ACCEPT',
    '-A QNET-FWD -d 10.137.0.6 -p tcp --dport 22:23 -m devgroup --dst-group 1 -m comment --comment "qnet connection c1" -j DROP',
  ]);
  const text = exportQubes(m, { iptables: true }).files.find((f) => f.qube === 'sys-net')!.text;
  assert.match(text, /iptables-restore --noflush <<'QNET'\n\*filter\n:QNET-FWD - \[0:0\]\n:QNET-IN - \[0:0\]\n/);
  assert.match(text, /\*nat\n:QNET-DNAT - \[0:0\]\n/);
  for (const [chain, hook, t] of [['QNET-FWD', 'FORWARD', ''], ['QNET-IN', 'INPUT', ''], ['QNET-DNAT', 'PREROUTING', '-t nat ']])
    assert.ok(text.includes(`iptables -w ${t}-C ${hook} -j ${chain} 2>/dev/null ||\n\tiptables -w ${t}-I ${hook} 1 -j ${chain}`), chain);
});
