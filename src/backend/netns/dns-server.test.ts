// The world's DNS server. Network tests bind only 127.0.0.1 on a free port in this namespace (loopback
// never leaves the machine); the namespaced run is in world.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { answerQuery, DEFAULT_ZONE, DnsServer, handleMessage, parseZone, type Zone } from './dns-server.js';

const LOOPBACK = '127.0.0.1';
const IO_TIMEOUT_MS = 2000;

const query = (name: string, type: 'A' | 'AAAA' | 'MX' = 'A', id = 7): Buffer =>
  packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, class: 'IN', name }] });

type Rec = { type: string; data: unknown; ttl?: number };
/** The answers' data (and TTLs), with dns-packet's answer union narrowed to what these tests read. */
const dataOf = (p: packet.Packet | undefined): unknown[] => ((p?.answers ?? []) as Rec[]).map((a) => a.data);
const dataTtlOf = (p: packet.Packet | undefined): unknown[][] => ((p?.answers ?? []) as Rec[]).map((a) => [a.data, a.ttl]);

const rcodeOf = (p: packet.DecodedPacket): string => (p as { rcode?: string }).rcode ?? '?';

function udpAsk(port: number, msg: Buffer): Promise<packet.DecodedPacket> {
  const sock = dgram.createSocket('udp4');
  return new Promise<packet.DecodedPacket>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no UDP answer in time')), IO_TIMEOUT_MS);
    sock.once('message', (m) => {
      clearTimeout(timer);
      resolve(packet.decode(m));
    });
    sock.send(msg, port, LOOPBACK);
  }).finally(() => sock.close());
}

/** Send several framed queries on one connection (byte by byte, to exercise reassembly). */
function tcpAsk(port: number, msgs: Buffer[]): Promise<packet.DecodedPacket[]> {
  const c = net.connect({ host: LOOPBACK, port });
  return new Promise<packet.DecodedPacket[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no TCP answer in time')), IO_TIMEOUT_MS);
    const got: packet.DecodedPacket[] = [];
    let buf = Buffer.alloc(0);
    c.on('error', reject);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        got.push(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (got.length === msgs.length) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    const wire = Buffer.concat(msgs.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m])));
    c.on('connect', () => {
      for (const b of wire) c.write(Buffer.from([b]));
    });
  }).finally(() => c.destroy());
}

test('answerQuery: A, AAAA, NODATA and NXDOMAIN', () => {
  const ask = (name: string, type: 'A' | 'AAAA') => answerQuery(DEFAULT_ZONE, packet.decode(query(name, type)));
  const web = ask('web.example.com', 'A');
  assert.deepEqual(((web.answers ?? []) as Rec[]).map((a) => [a.type, a.data, a.ttl]), [['A', '203.0.113.10', 60]]);
  assert.equal((web.flags ?? 0) & 0xf, 0);
  assert.ok((web.flags ?? 0) & packet.AUTHORITATIVE_ANSWER, 'authoritative');
  assert.deepEqual(dataOf(ask('WEB.Example.COM.', 'AAAA')), ['2001:db8::10'], 'names are case-insensitive');
  assert.deepEqual(dataOf(ask('multi.example.com', 'A')), ['203.0.113.10', '203.0.113.20']);
  const nodata = ask('v4only.example.com', 'AAAA');
  assert.equal(nodata.answers?.length, 0);
  assert.equal((nodata.flags ?? 0) & 0xf, 0, 'a known name without AAAA is NOERROR, not NXDOMAIN');
  assert.equal((ask('nope.example.com', 'A').flags ?? 0) & 0xf, 3, 'unknown name is NXDOMAIN');
});

test('handleMessage: garbage gets FORMERR or nothing, never a throw', () => {
  assert.equal(handleMessage(DEFAULT_ZONE, Buffer.from([1, 2, 3]), 'udp'), undefined);
  const junk = Buffer.alloc(20, 0xff);
  junk.writeUInt16BE(0x1234, 0);
  const out = handleMessage(DEFAULT_ZONE, junk, 'udp');
  assert.ok(out);
  const p = packet.decode(out);
  assert.equal(p.id, 0x1234);
  assert.equal(rcodeOf(p), 'FORMERR');
});

test('parseZone: accepts the default zone and says what is wrong otherwise', () => {
  assert.deepEqual(parseZone(JSON.parse(JSON.stringify(DEFAULT_ZONE))), DEFAULT_ZONE);
  assert.deepEqual(parseZone({ 'X.Example.': { a: ['192.0.2.1'] } }), { 'x.example': { a: ['192.0.2.1'], ttl: 60 } });
  assert.throws(() => parseZone({ 'a.example': { a: ['2001:db8::1'] } }), /'a.example': a must be a list of IPv4/);
  assert.throws(() => parseZone({ 'a.example': { aaaa: ['192.0.2.1'] } }), /aaaa must be a list of IPv6/);
  assert.throws(() => parseZone({ 'a.example': { ttl: -1 } }), /ttl/);
  assert.throws(() => parseZone({ 'bad name!': {} }), /not a valid DNS name/);
  assert.throws(() => parseZone([]), /expected an object/);
});

test('serves UDP and TCP on loopback; zone swaps and file reloads take effect', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'qnet-dns-'));
  const zoneFile = join(dir, 'zone.json');
  const server = await DnsServer.start({ addresses: [LOOPBACK], port: 0, zoneFile });
  try {
    assert.ok(server.port > 0);
    const a = await udpAsk(server.port, query('web.example.com', 'A', 42));
    assert.equal(a.id, 42);
    assert.deepEqual(dataOf(a), ['203.0.113.10']);
    assert.equal(rcodeOf(await udpAsk(server.port, query('nope.example.com'))), 'NXDOMAIN');

    const [t1, t2, t3] = await tcpAsk(server.port, [query('other.example.com', 'A', 1), query('other.example.com', 'AAAA', 2), query('other.example.com', 'MX', 3)]);
    assert.deepEqual([t1?.id, dataOf(t1)], [1, ['203.0.113.20']]);
    assert.deepEqual([t2?.id, dataOf(t2)], [2, ['2001:db8::20']]);
    assert.deepEqual([t3?.id, t3?.answers?.length, t3 && rcodeOf(t3)], [3, 0, 'NOERROR']);

    server.setZone({ 'web.example.com': { a: ['203.0.113.20'], ttl: 7 } });
    const swapped = await udpAsk(server.port, query('web.example.com'));
    assert.deepEqual(dataTtlOf(swapped), [['203.0.113.20', 7]]);

    await writeFile(zoneFile, JSON.stringify({ 'new.example.com': { a: ['198.51.100.9'] } }));
    await server.reloadZone();
    assert.deepEqual(dataOf(await udpAsk(server.port, query('new.example.com'))), ['198.51.100.9']);
    assert.equal(rcodeOf(await udpAsk(server.port, query('web.example.com'))), 'NXDOMAIN');

    await writeFile(zoneFile, '{ not json');
    await assert.rejects(server.reloadZone());
    assert.deepEqual(Object.keys(server.zone), ['new.example.com'], 'a bad file keeps the old zone');
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a UDP answer over 512 bytes is truncated; TCP carries it whole', async () => {
  const many = Array.from({ length: 40 }, (_, i) => `203.0.113.${100 + i}`);
  const zone: Zone = { 'big.example.com': { a: many } };
  const server = await DnsServer.start({ addresses: [LOOPBACK], port: 0, zone });
  try {
    const udp = await udpAsk(server.port, query('big.example.com'));
    assert.ok(udp.flag_tc, 'TC set');
    assert.equal(udp.answers?.length, 0);
    const [tcp] = await tcpAsk(server.port, [query('big.example.com')]);
    assert.equal(tcp?.answers?.length, 40);
    assert.equal(tcp?.flag_tc, false);
  } finally {
    await server.close();
  }
});

test('start fails clearly when the address cannot be bound, and leaves nothing open', async () => {
  // An address of TEST-NET-2 that this namespace does not hold: bind fails with EADDRNOTAVAIL before
  // anything is sent anywhere.
  await assert.rejects(DnsServer.start({ addresses: ['198.51.100.254'], port: 0 }), /EADDRNOTAVAIL/);
});
