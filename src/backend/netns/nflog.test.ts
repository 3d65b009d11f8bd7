import test from 'node:test';
import assert from 'node:assert/strict';
import { NflogPcapParser } from './nflog.js';

/** A little-endian pcap of NFLOG records, as tcpdump -w writes it on this machine. */
function pcap(records: Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(239, 20);
  return Buffer.concat([head, ...records.map((r, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1_700_000_000 + i, 0);
    h.writeUInt32LE(250_000, 4);
    h.writeUInt32LE(r.length, 8);
    h.writeUInt32LE(r.length, 12);
    return Buffer.concat([h, r]);
  })]);
}

function tlv(type: number, v: Buffer): Buffer {
  const len = 4 + v.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  v.copy(b, 4);
  return b;
}

function nflog(af: number, prefix: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([af, 0, 0x1c, 0x03]), tlv(1, Buffer.from([0x08, 0, 1, 0])), tlv(10, Buffer.from(prefix + '\0', 'latin1')), tlv(9, payload)]);
}

function udp4(src: number[], dst: number[], dport: number): Buffer {
  const b = Buffer.alloc(30);
  b[0] = 0x45;
  b.writeUInt16BE(30, 2);
  b[8] = 64;
  b[9] = 17;
  Buffer.from(src).copy(b, 12);
  Buffer.from(dst).copy(b, 16);
  b.writeUInt16BE(40000, 20);
  b.writeUInt16BE(dport, 22);
  return b;
}

function tcp6(dport: number): Buffer {
  const b = Buffer.alloc(60);
  b[0] = 0x60;
  b.writeUInt16BE(20, 4);
  b[6] = 6;
  Buffer.from('fd0924ef417900000000000000000a89', 'hex').copy(b, 8);
  b.writeUInt16BE(0x2001, 24);
  b.writeUInt16BE(0x0db8, 26);
  b[39] = 5;
  b.writeUInt16BE(dport, 42);
  return b;
}

test('NFLOG pcap: prefix, addresses, protocol and port of v4 and v6 packets, in any chunking', () => {
  const stream = pcap([nflog(2, 'qube=work rule=3', udp4([10, 137, 0, 3], [192, 0, 2, 7], 9999)), nflog(10, 'qube=work policy', tcp6(443))]);
  for (const step of [stream.length, 1, 7, 33]) {
    const p = new NflogPcapParser();
    const got = [];
    for (let i = 0; i < stream.length; i += step) got.push(...p.push(stream.subarray(i, i + step)));
    assert.deepEqual(got, [
      { time: 1_700_000_000_250, prefix: 'qube=work rule=3', family: 4, src: '10.137.0.3', dst: '192.0.2.7', proto: 'udp', dport: 9999, length: 30 },
      { time: 1_700_000_001_250, prefix: 'qube=work policy', family: 6, src: 'fd09:24ef:4179::a89', dst: '2001:db8::5', proto: 'tcp', dport: 443, length: 60 },
    ]);
  }
});

test('NFLOG pcap: anything else ends the reader (not pcap, another link type, an oversized record)', () => {
  assert.throws(() => new NflogPcapParser().push(Buffer.alloc(24, 1)), /not a pcap/);
  const eth = pcap([]);
  eth.writeUInt32LE(1, 20);
  assert.throws(() => new NflogPcapParser().push(eth), /link type 1/);
  const big = Buffer.concat([pcap([]), Buffer.alloc(16)]);
  big.writeUInt32LE(1 << 20, 24 + 8);
  assert.throws(() => new NflogPcapParser().push(big), /record of/);
  // A record without a prefix (not ours) is skipped.
  assert.deepEqual(new NflogPcapParser().push(pcap([Buffer.concat([Buffer.from([2, 0, 0, 1]), tlv(9, udp4([1, 2, 3, 4], [5, 6, 7, 8], 1))])])), []);
});
