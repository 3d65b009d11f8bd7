// fast-check generators for models with links (shared by the link-patch and connection tests):
// two branches under sys-net (sys-firewall, fw2), a qube right under sys-net, some qubes halted,
// IPv6 on some, random connections and forwards among them.
import fc from 'fast-check';
import type { Connection, PortForward } from '../model/connection.js';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';

export const QUBES = ['sys-net', 'sys-firewall', 'work', 'personal', 'untrusted', 'fw2', 'other', 'other2', 'direct'];
export const PORTS = [22, 80, 443, 8080];

export const arbConn: fc.Arbitrary<Omit<Connection, 'id'>> = fc
  .record({
    from: fc.constantFrom(...QUBES),
    to: fc.constantFrom(...QUBES),
    proto: fc.constantFrom(undefined, 'tcp', 'udp', 'icmp'),
    ports: fc.option(fc.tuple(fc.constantFrom(...PORTS), fc.constantFrom(0, 0, 10)), { nil: undefined }),
    bothWays: fc.boolean(),
  })
  .filter((c) => c.from !== c.to)
  .map(({ from, to, proto, ports, bothWays }) => ({
    from,
    to,
    ...(proto ? { proto: proto as Connection['proto'] } : {}),
    ...(ports && (proto === 'tcp' || proto === 'udp') ? { ports: { start: ports[0], end: ports[0] + ports[1] } } : {}),
    bothWays,
  }));

export const arbFwd: fc.Arbitrary<Omit<PortForward, 'id'>> = fc.record({
  qube: fc.constantFrom('work', 'personal', 'other', 'direct', 'fw2'),
  proto: fc.constantFrom('tcp' as const, 'udp' as const),
  port: fc.constantFrom(...PORTS),
  toPort: fc.option(fc.constantFrom(...PORTS, 9000), { nil: undefined }),
  from: fc.subarray(['192.0.2.0/24', '198.51.100.7', '2001:db8::/32'], { maxLength: 2 }),
  on: fc.constantFrom(0, 0, 1).map((x) => (x ? ['eth0'] : [])),
}).map((f) => {
  const { toPort, ...rest } = f;
  return toPort === undefined ? rest : { ...rest, toPort };
});

/** Which qubes run (four in five), which have IPv6, and up to 12 distinct connections. */
export const arbRunning = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: QUBES.length, maxLength: QUBES.length }).map((r) => r.map((x) => x > 0));
export const arbV6 = fc.array(fc.boolean(), { minLength: QUBES.length, maxLength: QUBES.length });
export const arbConns = fc.uniqueArray(arbConn, { maxLength: 12, selector: (c) => JSON.stringify([c.from, c.to, c.proto, c.ports]) });

export const withIds = <T,>(xs: T[], p: 'c' | 'f') => xs.map((x, i) => ({ id: `${p}${i + 1}`, ...x }));

export function linkModel(running: boolean[], v6: boolean[], conns: Connection[], fwds: PortForward[]): Model {
  const m = defaultLayout();
  m.qubes.set('fw2', newQube(7, 'fw2', 'green', { netvm: 'sys-net', provides_network: true }));
  m.qubes.set('other', newQube(8, 'other', 'orange', { netvm: 'fw2' }));
  m.qubes.set('other2', newQube(10, 'other2', 'orange', { netvm: 'fw2' }));
  m.qubes.set('direct', newQube(9, 'direct', 'purple', { netvm: 'sys-net' }));
  QUBES.forEach((n, i) => {
    const q = m.qubes.get(n)!;
    q.state = running[i] ? 'Running' : 'Halted';
    if (v6[i]) q.features = { ipv6: '1' };
  });
  m.connections = conns;
  m.forwards = fwds;
  return m;
}
