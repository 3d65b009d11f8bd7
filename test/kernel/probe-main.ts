// The kernel side of the differential test: runs inside one source namespace (started by
// prober.ts under `ip netns exec`), reads batches of probes as JSON lines on stdin, sends every
// probe of a batch at once, and answers one JSON line per batch with what the kernel did:
//   accept — delivered: TCP connected or refused (RST from the destination), UDP answered or
//            port-unreachable (from the destination), ICMP echo reply;
//   reject — an ICMP error from a hop (host/admin-prohibited, unreachable) arrived;
//   drop   — nothing within the timeout;
//   error  — the probe could not be sent (a test problem, never an agreement).
// Each batch also reports how many TCP opens, UDP datagrams and ICMP echoes left this namespace's
// stack (/proc/net/snmp deltas), as proof that every probe ran. Nothing here runs longer than the
// batch timeout plus a margin, and the process exits when stdin closes.
// Keep imports to node built-ins: this starts once per source namespace and must start fast.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

export interface WireProbe {
  i: number;
  proto: 'tcp' | 'udp' | 'icmp';
  to: string;
  dport?: number;
  /** Local port to bind (tcp/udp): unique per probe, so no conntrack entry is shared. */
  sport?: number;
  /** Local address to send from (tcp/udp), one of the namespace's own: the world's several hosts. */
  src?: string;
}

export type KernelClass = 'accept' | 'reject' | 'drop' | 'error';

export interface WireResult {
  i: number;
  outcome: KernelClass;
  /** What was observed: connected, ECONNREFUSED, EHOSTUNREACH, answer, timeout, ping's line… */
  raw: string;
  ms: number;
}

export interface WireBatch {
  id: number;
  timeoutMs: number;
  probes: WireProbe[];
}

export interface Snmp {
  tcpActiveOpens: number;
  udpOutDatagrams: number;
  icmpOutEchos: number;
  /** ICMP errors this namespace did not send because of a rate limit (global bucket, per host). */
  icmpOutRateLimitGlobal: number;
  icmpOutRateLimitHost: number;
}

export interface WireAnswer {
  id: number;
  results: WireResult[];
  sent: Snmp;
}

/** ICMP errors the kernel turns into these errnos: the packet was refused by a hop on the way. */
const REJECT_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'EPERM', 'EHOSTDOWN', 'ENONET', 'EPROTO']);

/** A socket error's class: refused by the destination is delivery, an ICMP error from a hop a reject. */
function classify(code: string): KernelClass {
  if (code === 'ECONNREFUSED') return 'accept';
  return REJECT_CODES.has(code) ? 'reject' : 'error';
}

export function readSnmp(text: string): Snmp {
  const rows = new Map<string, Map<string, number>>();
  const lines = text.split('\n');
  for (let k = 0; k + 1 < lines.length; k += 2) {
    const head = lines[k]!.split(/\s+/);
    const vals = lines[k + 1]!.split(/\s+/);
    const m = new Map<string, number>();
    head.slice(1).forEach((h, j) => m.set(h, Number(vals[j + 1])));
    rows.set(head[0]!.replace(/:$/, ''), m);
  }
  const get = (t: string, f: string) => rows.get(t)?.get(f) ?? NaN;
  return {
    tcpActiveOpens: get('Tcp', 'ActiveOpens'),
    udpOutDatagrams: get('Udp', 'OutDatagrams'),
    icmpOutEchos: get('Icmp', 'OutEchos'),
    icmpOutRateLimitGlobal: get('Icmp', 'OutRateLimitGlobal'),
    icmpOutRateLimitHost: get('Icmp', 'OutRateLimitHost'),
  };
}

/** A DNS query for web.example.com A: the world's DNS server answers it, so delivery is visible. */
function dnsQuery(id: number): Buffer {
  const name = Buffer.concat(
    ['web', 'example', 'com'].map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])).concat([Buffer.from([0])]),
  );
  const head = Buffer.from([(id >> 8) & 255, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, name, Buffer.from([0, 1, 0, 1])]);
}

function tcpProbe(p: WireProbe, timeoutMs: number): Promise<Omit<WireResult, 'i' | 'ms'>> {
  return new Promise((resolve) => {
    let done = false;
    const s = connect({ host: p.to, port: p.dport!, ...(p.sport ? { localPort: p.sport } : {}), ...(p.src ? { localAddress: p.src } : {}) });
    const finish = (outcome: KernelClass, raw: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.on('error', () => {});
      // A reset, not a FIN: no TIME_WAIT left behind on either end.
      if (s.readyState === 'open') s.resetAndDestroy();
      else s.destroy();
      resolve({ outcome, raw });
    };
    const timer = setTimeout(() => finish('drop', 'timeout'), timeoutMs);
    s.once('connect', () => finish('accept', 'connected'));
    s.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      finish(classify(code), code);
    });
  });
}

function udpProbe(p: WireProbe, timeoutMs: number): Promise<Omit<WireResult, 'i' | 'ms'>> {
  return new Promise((resolve) => {
    let done = false;
    const s = createSocket('udp4');
    const finish = (outcome: KernelClass, raw: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.on('error', () => {});
      try {
        s.close();
      } catch {
        // already closed
      }
      resolve({ outcome, raw });
    };
    const timer = setTimeout(() => finish('drop', 'timeout'), timeoutMs);
    s.on('message', (m) => finish('accept', `answer (${m.length} bytes)`));
    s.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      const outcome = classify(code);
      finish(outcome, outcome === 'error' ? `${e.syscall ?? ''} ${code}`.trim() : code);
    });
    s.bind(p.sport ?? 0, p.src, () => {
      // A connected socket: the kernel reports ICMP errors for this flow as socket errors.
      s.connect(p.dport!, p.to, () => {
        s.send(dnsQuery(p.i & 0xffff), (e) => {
          if (e) finish('error', `send ${(e as NodeJS.ErrnoException).code ?? e.message}`);
        });
      });
    });
  });
}

function icmpProbe(p: WireProbe, timeoutMs: number): Promise<Omit<WireResult, 'i' | 'ms'>> {
  return new Promise((resolve) => {
    // ping itself waits -W seconds; the kill timer is only a bound in case it hangs.
    const k = spawn('ping', ['-n', '-c', '1', '-W', (timeoutMs / 1000).toFixed(3), p.to], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    k.stdout.on('data', (d: Buffer) => (out += d.toString()));
    k.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const kill = setTimeout(() => k.kill('SIGKILL'), timeoutMs + 3000);
    k.on('error', (e) => {
      clearTimeout(kill);
      resolve({ outcome: 'error', raw: `ping: ${e.message}` });
    });
    k.on('close', (code) => {
      clearTimeout(kill);
      const line = out.split('\n').find((l) => /^From |bytes from/.test(l))?.trim() ?? '';
      if (code === 0) resolve({ outcome: 'accept', raw: line || 'echo reply' });
      else if (/^From /.test(line)) resolve({ outcome: 'reject', raw: line });
      else if (code === 1) resolve({ outcome: 'drop', raw: 'no reply' });
      else resolve({ outcome: 'error', raw: `ping exited ${code}: ${out.trim().split('\n').pop() ?? ''}` });
    });
  });
}

export async function runBatch(b: WireBatch): Promise<WireAnswer> {
  const before = readSnmp(readFileSync('/proc/net/snmp', 'utf8'));
  const results = await Promise.all(
    b.probes.map(async (p): Promise<WireResult> => {
      const t0 = performance.now();
      const run = p.proto === 'tcp' ? tcpProbe : p.proto === 'udp' ? udpProbe : icmpProbe;
      const r = await run(p, b.timeoutMs);
      return { i: p.i, ...r, ms: Math.round(performance.now() - t0) };
    }),
  );
  const after = readSnmp(readFileSync('/proc/net/snmp', 'utf8'));
  const sent = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof Snmp]])) as unknown as Snmp;
  return { id: b.id, results, sent };
}

// Run as a program (not when imported for its types or readSnmp).
if (process.env['QNET_PROBE_MAIN'] === '1') {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const b = JSON.parse(line) as WireBatch;
    void runBatch(b).then((a) => process.stdout.write(JSON.stringify(a) + '\n'));
  });
  rl.on('close', () => process.exit(0));
  process.stdout.write(JSON.stringify({ ready: process.pid }) + '\n');
}
