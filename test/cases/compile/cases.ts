// Compile fixtures: small models whose emitted nft text is pinned in
// test/baselines/reference/compile/<name>.nft. Address plan: qubes 10.137.0.0/16, virtual DNS
// 10.139.1.1/2, "internet" 203.0.113.0/24 and 198.51.100.0/24, IPv6 2001:db8::/32.
import type { Resolution } from '../../../src/compile/dns.js';
import type { Layout } from '../../../src/compile/context.js';
import { defaultLayout, newQube } from '../../../src/model/layout.js';
import type { UplinkKind } from '../../../src/model/netplan.js';
import type { Model } from '../../../src/model/qube.js';
import type { Proto, Rule } from '../../../src/model/rule.js';

export interface CompileCase {
  name: string;
  model: Model;
  uplink: UplinkKind;
  resolutions: Map<string, Resolution>;
  now: number;
  layout?: Layout;
}

// ---- rule builders (the parser is another module; tests build Rule objects directly) ----------
export const dst4 = (text: string): Rule['dsthost'] => {
  const [addr, len] = text.split('/');
  return { type: 'dst4', text: len ? text : `${text}/32`, addr: addr!, prefix: len ? Number(len) : 32 };
};
export const dst6 = (text: string): Rule['dsthost'] => {
  const [addr, len] = text.split('/');
  return { type: 'dst6', text, addr: addr!, prefix: len ? Number(len) : 128 };
};
export const host = (text: string): Rule['dsthost'] => ({ type: 'dsthost', text });
export const ports = (start: number, end = start) => ({ start, end });
export function rule(action: Rule['action'], extra: Partial<Rule> = {}): Rule {
  return { action, ...extra };
}
export const tcp: Proto = 'tcp';

export function resolutions(table: Record<string, { a?: string[]; aaaa?: string[]; error?: string }>): Map<string, Resolution> {
  const m = new Map<string, Resolution>();
  for (const [name, e] of Object.entries(table))
    m.set(name, { name, a: [...(e.a ?? [])].sort(), aaaa: [...(e.aaaa ?? [])].sort(), ttl: 300, ...(e.error ? { error: e.error } : {}) });
  return m;
}

/** Qubes' §6 end-to-end example, with IPv6 on. */
function qubesExample(): Model {
  const m = defaultLayout();
  m.qubes.get('sys-net')!.features['ipv6'] = '1';
  m.qubes.get('work')!.rules = [
    rule('accept', { proto: 'icmp' }),
    rule('accept', { specialtarget: 'dns' }),
    rule('accept', { dsthost: host('qubes-os.org'), proto: 'tcp', dstports: ports(443) }),
  ];
  m.qubes.get('personal')!.rules = [
    rule('drop', { dsthost: dst4('192.168.0.1/24') }),
    rule('accept', { dsthost: dst6('2001:DB8::/32'), proto: 'udp', dstports: ports(1000, 2000) }),
    rule('accept', { proto: 'icmp', icmptype: 8 }),
    rule('accept', { dstports: ports(22) }),
  ];
  m.qubes.get('untrusted')!.rules = [];
  return m;
}

const EXAMPLE_DNS = resolutions({ 'qubes-os.org': { a: ['203.0.113.80'], aaaa: ['2001:db8::80'] } });

/** Enough rules of one verdict in a row to be packed into sets, with overlaps the kernel would refuse. */
function packedModel(): Model {
  const m = defaultLayout();
  const rules: Rule[] = [rule('drop', { dsthost: dst4('203.0.113.66') })];
  for (let i = 1; i <= 6; i++) rules.push(rule('accept', { dsthost: dst4(`203.0.113.${i}`), proto: 'tcp', dstports: ports(443) }));
  rules.push(rule('accept', { dsthost: dst4('198.51.100.0/24'), proto: 'tcp', dstports: ports(8000, 8100) }));
  rules.push(rule('accept', { dsthost: dst4('198.51.100.7'), proto: 'tcp', dstports: ports(8080) })); // inside the previous: dropped
  rules.push(rule('accept', { dsthost: dst4('198.51.100.8'), proto: 'tcp', dstports: ports(8050, 8200) })); // partial overlap: a second layer
  for (let i = 1; i <= 5; i++) rules.push(rule('accept', { dsthost: dst4(`192.0.2.${i * 16}/28`) }));
  for (const p of [25, 110, 143, 587]) rules.push(rule('accept', { proto: 'tcp', dstports: ports(p) }));
  rules.push(rule('drop', { proto: 'udp' }));
  rules.push(rule('accept', { specialtarget: 'dns' }));
  m.qubes.get('work')!.rules = rules;
  return m;
}

/** Names that fail, names without AAAA, DNS rules that can never match, expired rules. */
function troubleModel(): Model {
  const m = defaultLayout();
  m.qubes.get('sys-net')!.features['ipv6'] = '1';
  m.qubes.get('work')!.rules = [
    rule('accept', { dsthost: host('gone.example'), proto: 'tcp', dstports: ports(443) }),
    rule('accept', { dsthost: host('v4only.example') }),
    rule('accept', { specialtarget: 'dns', proto: 'tcp', dstports: ports(80) }),
    rule('accept', { dsthost: dst4('203.0.113.9'), expire: 1000 }),
    rule('accept', { dsthost: dst4('203.0.113.10'), expire: 3000 }),
  ];
  return m;
}

/** A second netvm chain and a disposable, no upstream DNS (uplink none). */
function noUplinkModel(): Model {
  const m = defaultLayout();
  m.qubes.set('sys-vpn', newQube(7, 'sys-vpn', 'purple', { netvm: 'sys-firewall', provides_network: true }));
  m.qubes.set('disp12', newQube(40, 'disp12', 'red', { klass: 'DispVM', dispid: 12, netvm: 'sys-vpn' }));
  m.qubes.get('disp12')!.rules = [rule('accept', { specialtarget: 'dns' })];
  m.qubes.get('sys-vpn')!.rules = [rule('accept', { specialtarget: 'dns' }), rule('accept', { dsthost: dst4('198.51.100.50'), proto: 'udp', dstports: ports(1194) })];
  return m;
}

/** Baselines written by the tests of single passes (not compile() cases), e.g. passes/blocked.test.ts. */
export const PASS_BASELINES = ['blocked(work)'];

export function compileCases(): CompileCase[] {
  return [
    { name: 'default-layout', model: defaultLayout(), uplink: 'world', resolutions: new Map(), now: 0 },
    { name: 'qubes-example', model: qubesExample(), uplink: 'world', resolutions: EXAMPLE_DNS, now: 0 },
    { name: 'qubes-example(layout=qubes-linear)', model: qubesExample(), uplink: 'world', resolutions: EXAMPLE_DNS, now: 0, layout: 'qubes-linear' },
    { name: 'packed', model: packedModel(), uplink: 'world', resolutions: new Map(), now: 0 },
    {
      name: 'dns-trouble',
      model: troubleModel(),
      uplink: 'world',
      resolutions: resolutions({ 'gone.example': { error: 'NXDOMAIN' }, 'v4only.example': { a: ['203.0.113.44', '203.0.113.45'] } }),
      now: 2000,
    },
    { name: 'no-uplink', model: noUplinkModel(), uplink: 'none', resolutions: new Map(), now: 0 },
  ];
}
