// Qubes' address plan (reference qubes-firewall.md §5.1, qubes/vm/mix/net.py, qubes/config.py).
import type { Model, Qube } from './qube.js';

export const QUBES_IPV4_PREFIX = '10.137';
export const DISPVM_IPV4_PREFIX = '10.138';
export const QUBES_IPV6_PREFIX = 'fd09:24ef:4179::';

/**
 * R4.2 vmid_to_ipv4: ids below 255 map to prefix.(id>>8).(id&255); from 255 on, v = id-1 gives
 * prefix.(v//254).(v%254+1), which never ends in .0 or .255 (255 → .1.1, 508 → .1.254, 509 → .2.1).
 */
export function vmidToIpv4(prefix: string, id: number): string {
  if (id < 255) return `${prefix}.${id >> 8}.${id & 255}`;
  const v = id - 1;
  return `${prefix}.${Math.floor(v / 254)}.${(v % 254) + 1}`;
}

/** `fd09:24ef:4179::a89:<qid hex>`; disposables use `a8a`. */
export function vmidToIpv6(disposable: boolean, id: number): string {
  return `${QUBES_IPV6_PREFIX}${disposable ? 'a8a' : 'a89'}:${id.toString(16)}`;
}

/** The qube's netvm after resolving "default"; a qube never defaults to itself. */
export function netvmName(model: Model, q: Qube): string | null {
  if (q.netvm !== undefined) return q.netvm;
  const d = model.default_netvm;
  return d !== null && d !== q.name ? d : null;
}

/** Qubes' is_networked(): it has a netvm, or it provides network to others. */
export function isNetworked(model: Model, q: Qube): boolean {
  return q.provides_network || netvmName(model, q) !== null;
}

const isDisposable = (q: Qube) => q.klass === 'DispVM' && q.dispid !== undefined;

/** The `ip` property: set by hand, else derived; none for a qube that is not networked. */
export function qubeIp(model: Model, q: Qube): string | null {
  if (q.ip !== undefined) return q.ip;
  if (!isNetworked(model, q)) return null;
  return isDisposable(q) ? vmidToIpv4(DISPVM_IPV4_PREFIX, q.dispid!) : vmidToIpv4(QUBES_IPV4_PREFIX, q.qid);
}

/**
 * Qubes' features.check_with_netvm('ipv6'): the qube's own feature if set, else its netvm's,
 * recursively. An empty value switches it off (qvm-features VM ipv6 '').
 */
export function ipv6Enabled(model: Model, q: Qube, seen = new Set<string>()): boolean {
  const own = q.features['ipv6'];
  if (own !== undefined) return own !== '';
  const nv = netvmName(model, q);
  if (nv === null || seen.has(nv)) return false;
  seen.add(q.name);
  const up = model.qubes.get(nv);
  return up ? ipv6Enabled(model, up, seen) : false;
}

export function qubeIp6(model: Model, q: Qube): string | null {
  if (!ipv6Enabled(model, q) || !isNetworked(model, q)) return null;
  if (q.ip6 !== undefined) return q.ip6;
  return isDisposable(q) ? vmidToIpv6(true, q.dispid!) : vmidToIpv6(false, q.qid);
}

/** The gateway a client sees: its netvm's own address. */
export function gateway(model: Model, q: Qube): string | null {
  const nv = netvmName(model, q);
  const up = nv === null ? undefined : model.qubes.get(nv);
  return up ? qubeIp(model, up) : null;
}

export function gateway6(model: Model, q: Qube): string | null {
  const nv = netvmName(model, q);
  const up = nv === null ? undefined : model.qubes.get(nv);
  return up && qubeIp6(model, q) !== null ? qubeIp6(model, up) : null;
}
