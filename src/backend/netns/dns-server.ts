// A small authoritative DNS server for the world namespace: A/AAAA from an in-memory zone, over UDP
// and TCP. It stands in for the outside world's DNS so qnet's name resolution (rules with dsthost=NAME,
// refreshed by TTL) can be exercised end to end. The zone can be swapped at run time; world-services
// re-reads its zone file on SIGHUP, so a test can change an answer and watch qnet follow it.
import dgram from 'node:dgram';
import net, { isIPv4, isIPv6 } from 'node:net';
import { readFile } from 'node:fs/promises';
import * as packet from 'dns-packet';

export interface ZoneEntry {
  a?: string[];
  aaaa?: string[];
  /** Seconds; DEFAULT_TTL when absent. */
  ttl?: number;
}

/** Lower-case names without the trailing dot → records. */
export type Zone = Record<string, ZoneEntry>;

export const DEFAULT_TTL = 60;

/** The world's names. Addresses are the world's hosts (world.ts WORLD_HOSTS). */
export const DEFAULT_ZONE: Zone = {
  'web.example.com': { a: ['203.0.113.10'], aaaa: ['2001:db8::10'], ttl: DEFAULT_TTL },
  'other.example.com': { a: ['203.0.113.20'], aaaa: ['2001:db8::20'], ttl: DEFAULT_TTL },
  'v4only.example.com': { a: ['203.0.113.10'], ttl: DEFAULT_TTL },
  'multi.example.com': { a: ['203.0.113.10', '203.0.113.20'], aaaa: ['2001:db8::10', '2001:db8::20'], ttl: DEFAULT_TTL },
};

// RFC 1035 §2.3.4 and §4.2.1: classic UDP replies stop at 512 bytes unless EDNS announces more;
// a longer answer is sent truncated (TC) so the client retries over TCP.
const CLASSIC_UDP_MAX = 512;
const TCP_IDLE_MS = 10_000;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** Check a zone read from JSON; throws an Error that says which name and field is wrong. */
export function parseZone(data: unknown): Zone {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('zone: expected an object of name → {a, aaaa, ttl}');
  const zone: Zone = {};
  for (const [rawName, rawEntry] of Object.entries(data)) {
    const name = normalizeName(rawName);
    if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(name) || name.length > 253)
      throw new Error(`zone: '${rawName}' is not a valid DNS name`);
    if (typeof rawEntry !== 'object' || rawEntry === null) throw new Error(`zone: '${rawName}': expected {a, aaaa, ttl}`);
    const e = rawEntry as Record<string, unknown>;
    const list = (field: 'a' | 'aaaa', ok: (s: string) => boolean): string[] | undefined => {
      const v = e[field];
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string' && ok(x)))
        throw new Error(`zone: '${rawName}': ${field} must be a list of ${field === 'a' ? 'IPv4' : 'IPv6'} addresses`);
      return v;
    };
    const ttl = e.ttl;
    if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > 2 ** 31 - 1))
      throw new Error(`zone: '${rawName}': ttl must be a whole number of seconds`);
    const a = list('a', isIPv4);
    const aaaa = list('aaaa', isIPv6);
    zone[name] = { ...(a && { a }), ...(aaaa && { aaaa }), ttl: ttl ?? DEFAULT_TTL };
  }
  return zone;
}

export async function loadZoneFile(path: string): Promise<Zone> {
  return parseZone(JSON.parse(await readFile(path, 'utf8')));
}

function rcodeFlags(rcode: number, query: packet.DecodedPacket): number {
  return packet.AUTHORITATIVE_ANSWER | (query.flag_rd ? packet.RECURSION_DESIRED : 0) | rcode;
}

/** Pure: the response to one decoded query. Answers A, AAAA and ANY; other types get an empty NOERROR. */
export function answerQuery(zone: Zone, query: packet.DecodedPacket): packet.Packet {
  const questions = query.questions ?? [];
  const reply = (rcode: number, answers: packet.Answer[] = []): packet.Packet => ({
    type: 'response',
    id: query.id,
    flags: rcodeFlags(rcode, query),
    questions,
    answers,
  });
  // dns-packet decodes the opcode but its types omit it.
  const opcode = (query as { opcode?: string }).opcode;
  if (opcode !== undefined && opcode !== 'QUERY') return reply(RCODE.NOTIMP);
  const q = questions[0];
  if (questions.length !== 1 || !q) return reply(RCODE.FORMERR);
  if (q.class !== 'IN' && q.class !== 'ANY') return reply(RCODE.REFUSED);
  const entry = zone[normalizeName(q.name)];
  if (!entry) return reply(RCODE.NXDOMAIN);
  const ttl = entry.ttl ?? DEFAULT_TTL;
  const answers: packet.Answer[] = [];
  const type: string = q.type; // includes 'ANY', which dns-packet decodes but its types omit
  if (type === 'A' || type === 'ANY') for (const data of entry.a ?? []) answers.push({ type: 'A', class: 'IN', name: q.name, ttl, data });
  if (type === 'AAAA' || type === 'ANY') for (const data of entry.aaaa ?? []) answers.push({ type: 'AAAA', class: 'IN', name: q.name, ttl, data });
  // A known name without records of the asked type is NOERROR/NODATA, not NXDOMAIN: resolvers must
  // tell "no AAAA" from "no such name" (qnet treats the first as an empty family, the second as an error).
  return reply(RCODE.NOERROR, answers);
}

/** Bytes in → bytes out; undefined when the input is not even a DNS header worth answering. */
export function handleMessage(zone: Zone, msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
  let query: packet.DecodedPacket;
  try {
    query = packet.decode(msg);
  } catch {
    if (msg.length < 12) return undefined;
    // Reply FORMERR with the id we could read, so the client fails fast instead of timing out.
    return packet.encode({ type: 'response', id: msg.readUInt16BE(0), flags: RCODE.FORMERR, questions: [], answers: [] });
  }
  if (query.type !== 'query') return undefined;
  const res = answerQuery(zone, query);
  let out = packet.encode(res);
  if (transport === 'udp') {
    const opt = query.additionals?.find((r) => r.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const max = Math.max(CLASSIC_UDP_MAX, opt?.udpPayloadSize ?? 0);
    if (out.length > max) out = packet.encode({ ...res, flags: (res.flags ?? 0) | packet.TRUNCATED_RESPONSE, answers: [] });
  }
  return out;
}

export interface DnsServerOptions {
  /** Addresses to bind (UDP and TCP on each). */
  addresses: readonly string[];
  /** 53 by default; 0 picks one free port shared by every address and both transports. */
  port?: number;
  zone?: Zone;
  /** Where reloadZone() reads from. */
  zoneFile?: string;
}

export class DnsServer {
  private udp: dgram.Socket[] = [];
  private tcp: net.Server[] = [];
  private conns = new Set<net.Socket>();
  private current: Zone;
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(private readonly opts: DnsServerOptions) {
    this.current = opts.zone ?? DEFAULT_ZONE;
  }

  static async start(opts: DnsServerOptions): Promise<DnsServer> {
    if (opts.addresses.length === 0) throw new Error('dns-server: no address to bind');
    const s = new DnsServer(opts);
    // With port 0 the first UDP socket picks the port and everything else must get the same one;
    // another process can grab it in between, so retry a few times (bounded).
    const attempts = opts.port === 0 ? 5 : 1;
    for (let i = 1; ; i++) {
      try {
        await s.bindAll(opts.port ?? 53);
        return s;
      } catch (e) {
        await s.close();
        if (i >= attempts) throw e;
      }
    }
  }

  get zone(): Zone {
    return this.current;
  }

  setZone(zone: Zone): void {
    this.current = zone;
  }

  /** Re-read the zone file; on a bad file the old zone stays and the error is thrown. */
  async reloadZone(): Promise<Zone> {
    if (!this.opts.zoneFile) throw new Error('dns-server: no zone file to reload');
    this.current = await loadZoneFile(this.opts.zoneFile);
    return this.current;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    await Promise.all([
      ...this.udp.map((u) => new Promise<void>((r) => u.close(() => r()))),
      ...this.tcp.map((t) => new Promise<void>((r) => t.close(() => r()))),
    ]);
    this.udp = [];
    this.tcp = [];
  }

  private async bindAll(wanted: number): Promise<void> {
    let port = wanted;
    for (const addr of this.opts.addresses) {
      port = await this.bindUdp(addr, port);
      await this.bindTcp(addr, port);
    }
    this.port = port;
  }

  private bindUdp(address: string, port: number): Promise<number> {
    const sock = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
    this.udp.push(sock);
    sock.on('message', (msg, rinfo) => {
      const out = handleMessage(this.current, msg, 'udp');
      if (out) sock.send(out, rinfo.port, rinfo.address);
    });
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address, port, exclusive: true }, () => {
        sock.off('error', reject);
        sock.on('error', () => {}); // a send to a vanished client must not crash the world
        resolve(sock.address().port);
      });
    });
  }

  private bindTcp(address: string, port: number): Promise<void> {
    const server = net.createServer((c) => this.serveTcp(c));
    this.tcp.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address, port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  // RFC 1035 §4.2.2: each message is prefixed by its 16-bit length; a connection may carry several.
  private serveTcp(c: net.Socket): void {
    this.conns.add(c);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('error', () => {});
    let buf = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const out = handleMessage(this.current, msg, 'tcp');
        if (!out) {
          c.destroy();
          return;
        }
        const head = Buffer.alloc(2);
        head.writeUInt16BE(out.length);
        c.write(Buffer.concat([head, out]));
      }
    });
  }
}
