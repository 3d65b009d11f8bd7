// Per-namespace sysctls, one process per namespace: `nsenter --net=… sysctl -q -w k=v …` (runner.ts).
// (net.* sysctls are per namespace; /proc/sys reflects the namespace of the writing process.)
import { runChecked, type Runner } from './runner.js';
import { classifyCommandError, NetnsError, CODES } from './links.js';
import { diag } from '../../model/diagnostics.js';

export type Sysctls = Readonly<Record<string, string | number>>;

/**
 * Network-providing nodes forward. Writing `all.forwarding` also sets `default`, so vifs created
 * later (new clients) forward too.
 */
export const FORWARDING: Sysctls = {
  'net.ipv4.ip_forward': 1,
  'net.ipv6.conf.all.forwarding': 1,
};

/**
 * For test namespaces: ICMP errors are rate-limited per namespace, so quick probes into a reject
 * rule would look like drops (kernel notes).
 */
export const NO_ICMP_RATELIMIT: Sysctls = {
  'net.ipv4.icmp_ratelimit': 0,
  'net.ipv6.icmp.ratelimit': 0,
};

const KEY = /^net\.[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/;
const VALUE = /^[A-Za-z0-9_.:-]+$/;

export function sysctlArgv(settings: Sysctls): string[] {
  const argv = ['sysctl', '-q', '-w'];
  for (const [k, v] of Object.entries(settings)) {
    const val = String(v);
    if (!KEY.test(k) || !VALUE.test(val))
      throw new NetnsError(diag(CODES.invalidName, `invalid sysctl ${JSON.stringify(`${k}=${val}`)}`, { hint: 'only net.* keys' }));
    argv.push(`${k}=${val}`);
  }
  return argv;
}

/** Set `settings` in one namespace with one process. */
export async function setSysctls(runner: Runner, ns: string, settings: Sysctls, qube?: string): Promise<void> {
  if (!Object.keys(settings).length) return;
  await runChecked(runner, sysctlArgv(settings), { netns: ns }).catch((e) => {
    throw classifyCommandError(e, qube);
  });
}
