// The drop log's reader: refused first packets a netvm's kernel sent to NFLOG (compile/passes/
// drop-log.ts), read inside its namespace by Debian's tcpdump on the `nflog:<group>` interface,
// which writes pcap to our pipe. Node cannot open netlink sockets; tcpdump is a well-known reader
// that drops root after opening its socket. The pcap link type NFLOG (239) carries the log prefix
// (our origin) and the packet as TLVs; this file parses that stream, bounded: a record larger than
// the snap length we ask for, or a stream that is not pcap of NFLOG, ends the reader.
//
// The reader holds its namespace while it runs (as an nft session does): its owner stops it before
// the namespace is deleted. `setpriv --pdeathsig KILL` ends it with the daemon, however that dies —
// as long as tcpdump keeps its user: the kernel clears the parent-death signal when a process changes
// credentials, and Debian's tcpdump drops to user tcpdump unless `-Z root`. With `-w -` tcpdump only
// copies packets to the pipe and never dissects them, so keeping root costs little; a reader that
// outlived a crashed daemon held its netvm's namespace until killed by hand.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { DroppedPacket } from '../../model/drop-log.js';
import { formatV4, formatV6 } from '../../model/ip.js';
import { toolEnv } from './runner.js';

/** One logged packet: the prefix the rule gave, and what the packet's headers say. */
export interface NflogRecord extends DroppedPacket {
  /** Milliseconds since the epoch (the capture's timestamp). */
  time: number;
  prefix: string;
}

/** Bytes of each packet copied to us: IP and transport headers are all we read. */
export const SNAPLEN = 160;
/** pcap record header + NFLOG header + TLVs around the copied bytes: anything larger is not ours. */
const MAX_RECORD = 1024;
const LINKTYPE_NFLOG = 239;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp', 47: 'gre' };

/** A pcap stream of NFLOG records, fed in chunks. Throws on anything else (the reader then stops). */
export class NflogPcapParser {
  private buf: Buffer = Buffer.alloc(0);
  private le: boolean | undefined;
  private nano = false;

  push(chunk: Buffer): NflogRecord[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: NflogRecord[] = [];
    if (this.le === undefined) {
      if (this.buf.length < 24) return out;
      const magic = this.buf.readUInt32LE(0);
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.le = true;
      else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.le = false;
      else throw new Error('not a pcap stream');
      this.nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
      const link = this.u32(20) & 0x0fffffff;
      if (link !== LINKTYPE_NFLOG) throw new Error(`pcap link type ${link}, not NFLOG`);
      this.buf = this.buf.subarray(24);
    }
    while (this.buf.length >= 16) {
      const incl = this.u32(8);
      if (incl > MAX_RECORD) throw new Error(`a pcap record of ${incl} bytes`);
      if (this.buf.length < 16 + incl) break;
      const time = this.u32(0) * 1000 + Math.floor(this.u32(4) / (this.nano ? 1_000_000 : 1000));
      const rec = parseNflog(this.buf.subarray(16, 16 + incl), this.le!, time);
      if (rec) out.push(rec);
      this.buf = this.buf.subarray(16 + incl);
    }
    return out;
  }

  private u32(off: number): number {
    return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }
}

/** One NFLOG record (family, version, group, then TLVs in the capturing host's order), or null if it is not an IP packet with a prefix. */
export function parseNflog(b: Buffer, le: boolean, time: number): NflogRecord | null {
  if (b.length < 4) return null;
  const af = b[0]!;
  let prefix: string | undefined;
  let payload: Buffer | undefined;
  for (let off = 4; off + 4 <= b.length; ) {
    const len = le ? b.readUInt16LE(off) : b.readUInt16BE(off);
    const type = (le ? b.readUInt16LE(off + 2) : b.readUInt16BE(off + 2)) & 0x7fff;
    if (len < 4 || off + len > b.length) break;
    const v = b.subarray(off + 4, off + len);
    if (type === NFULA_PREFIX) prefix = v.toString('latin1').replace(/\0.*$/s, '');
    else if (type === NFULA_PAYLOAD) payload = v;
    off += (len + 3) & ~3;
  }
  if (prefix === undefined || !payload) return null;
  const ip = af === 2 ? parseV4Packet(payload) : af === 10 ? parseV6Packet(payload) : null;
  return ip ? { time, prefix, ...ip } : null;
}

type Ip = Omit<NflogRecord, 'time' | 'prefix'>;

function l4(proto: number, b: Buffer, off: number, out: Ip): Ip {
  if ((proto === 6 || proto === 17 || proto === 132) && b.length >= off + 4) out.dport = b.readUInt16BE(off + 2);
  if ((proto === 1 || proto === 58) && b.length > off) out.icmpType = b[off]!;
  return out;
}

function parseV4Packet(b: Buffer): Ip | null {
  if (b.length < 20 || b[0]! >> 4 !== 4) return null;
  const ihl = (b[0]! & 0xf) * 4;
  const proto = b[9]!;
  const out: Ip = { family: 4, src: formatV4(b.readUInt32BE(12)), dst: formatV4(b.readUInt32BE(16)), proto: PROTOS[proto] ?? String(proto), length: b.readUInt16BE(2) };
  // A later fragment has no transport header.
  return (b.readUInt16BE(6) & 0x1fff) === 0 ? l4(proto, b, ihl, out) : out;
}

function parseV6Packet(b: Buffer): Ip | null {
  if (b.length < 40 || b[0]! >> 4 !== 6) return null;
  const addr = (o: number) => formatV6((b.readBigUInt64BE(o) << 64n) | b.readBigUInt64BE(o + 8));
  let next = b[6]!;
  let off = 40;
  // Hop-by-hop, routing, destination options, fragment: skipped to the transport header (a few at most).
  for (let n = 0; n < 4 && [0, 43, 60, 44].includes(next) && b.length >= off + 8; n++) {
    const h = next;
    next = b[off]!;
    off += h === 44 ? 8 : (b[off + 1]! + 1) * 8;
  }
  const out: Ip = { family: 6, src: addr(8), dst: addr(24), proto: PROTOS[next] ?? String(next), length: 40 + b.readUInt16BE(4) };
  return l4(next, b, off, out);
}

/** A running reader; `stop` ends it and resolves once the process is gone. */
export interface NflogReader {
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/**
 * Read NFLOG `group` in the namespace at `netnsPath`. `onRecord` gets each logged packet; `onEnd`
 * is called once, with why, if the reader ends without stop() (tcpdump missing or failing, the
 * namespace gone, a stream we cannot parse).
 */
export function readNflog(netnsPath: string, group: number, onRecord: (r: NflogRecord) => void, onEnd: (why: string) => void): NflogReader {
  // -U: each packet written at once; -w -: pcap to stdout; -s: only headers; -q -n: no look-ups.
  const child: ChildProcessWithoutNullStreams = spawn(
    'setpriv',
    ['--pdeathsig', 'KILL', '--', 'nsenter', `--net=${netnsPath}`, '--', 'tcpdump', '-Z', 'root', '-i', `nflog:${group}`, '-U', '-w', '-', '-s', String(SNAPLEN), '-n', '-q'],
    { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() },
  );
  const parser = new NflogPcapParser();
  let stopping = false;
  let ended = false;
  let err = '';
  const end = (why: string) => {
    if (ended) return;
    ended = true;
    if (!stopping) onEnd(why);
  };
  child.stdout.on('data', (chunk: Buffer) => {
    try {
      for (const r of parser.push(chunk)) onRecord(r);
    } catch (e) {
      end(`the reader's output: ${(e as Error).message}`);
      child.kill('SIGKILL');
    }
  });
  // Bounded: only the last few hundred bytes of what it says are kept for the reason.
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-400)));
  child.stdin.end();
  const exited = new Promise<void>((resolve) => {
    child.on('error', (e) => {
      end(e.message);
      resolve();
    });
    child.on('close', (code, signal) => {
      const said = err.split('\n').filter((l) => l && !/^(listening on|\d+ packets?)/.test(l)).at(-1);
      end(`tcpdump exited (${signal ?? code})${said ? `: ${said}` : ''}`);
      resolve();
    });
  });
  return {
    pid: child.pid,
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}
