// How the CLI reaches the operations: through the daemon serving the state directory when one runs
// (the only writer then), else on the state directory itself. Chosen once per command. The daemon
// transport loads nothing of qnet's core (the client is node:http and a few files), so a command
// served by the daemon starts as fast as node does.
import type { Diagnostic } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import type { OpResult } from '../ops/types.js';
import type { Io } from './io.js';

export interface Transport {
  readonly kind: 'daemon' | 'local';
  call<O = unknown>(name: string, input: unknown): Promise<OpResult<O>>;
}

/** The daemon's refusal, as the QnetError the op raised there (its first diagnostic). */
export function refusalOf(status: number, body: unknown): QnetError {
  const ds = (body as { diagnostics?: Diagnostic[] } | null)?.diagnostics;
  const d = Array.isArray(ds) && ds[0] && typeof ds[0].code === 'string' ? ds[0] : undefined;
  return new QnetError(d ?? { code: 'QNET6002', severity: 'error', message: `the daemon refused the request (HTTP ${status})` });
}

export async function daemonTransport(stateDir: string): Promise<Transport | null> {
  const { DaemonClient } = await import('../daemon/client.js');
  const client = await DaemonClient.connect(stateDir);
  if (!client) return null;
  return {
    kind: 'daemon',
    async call<O>(name: string, input: unknown): Promise<OpResult<O>> {
      const r = await client.request('POST', `/v1/ops/${encodeURIComponent(name)}`, input ?? {});
      if (r.status !== 200) throw refusalOf(r.status, r.body);
      return r.body as OpResult<O>;
    },
  };
}

export async function localTransport(stateDir: string, io: Io): Promise<Transport> {
  const [{ OfflineHost }, { invoke }] = await Promise.all([import('../ops/offline-host.js'), import('../ops/registry.js')]);
  const host = new OfflineHost({
    stateDir,
    env: io.env,
    now: io.now,
    onLockWait: (pid) => io.err(`qnet: waiting for the lock on ${stateDir}${pid ? ` held by pid ${pid}` : ''}\n`),
  });
  return { kind: 'local', call: (name, input) => invoke(host, name, input) as never };
}

/** The daemon's when one serves `stateDir` (unless QNET_NO_DAEMON is set), else the state directory's. */
export async function chooseTransport(stateDir: string, io: Io): Promise<Transport> {
  if (!io.env['QNET_NO_DAEMON']) {
    const t = await daemonTransport(stateDir);
    if (t) return t;
  }
  return localTransport(stateDir, io);
}
