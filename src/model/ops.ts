// Operations on the model: create, remove, rename, clone, and per-qube properties (qvm-prefs).
// Pure functions on a Model; the offline CLI runs them through Store.update and the daemon runs the
// very same functions, so the two paths cannot drift apart.
import { isIP } from 'node:net';
import { gateway, gateway6, isNetworked, netvmName, qubeIp, qubeIp6 } from './addressing.js';
import { dropLinksOf, renameInLinks } from './connection.js';
import { diag } from './diagnostics.js';
import { newQube } from './layout.js';
import { VIRTUAL_DNS } from './netplan.js';
import { LABELS, QUBE_CLASSES, type Label, type Model, type Qube, type QubeClass } from './qube.js';
import { QnetError, unwrap } from './result.js';
import { clientsOf, validateNetvm, validateQubeName } from './topology.js';

export function getQube(model: Model, name: string): Qube {
  const q = model.qubes.get(name);
  if (!q) throw new QnetError(diag('QNET2003', `no such qube '${name}'`, { hint: 'see qnet ls' }));
  return q;
}

/** Qubes allocates the lowest unused qid (and dispid) starting at 1. */
function lowestFree(used: Iterable<number | undefined>): number {
  const s = new Set(used);
  let i = 1;
  while (s.has(i)) i++;
  return i;
}

export interface CreateSpec {
  name: string;
  klass?: QubeClass;
  label?: Label;
  /** A qube name, null for none; undefined follows default_netvm. */
  netvm?: string | null;
  provides_network?: boolean;
}

export function createQube(model: Model, spec: CreateSpec): Qube {
  const name = unwrap(validateQubeName(spec.name));
  if (model.qubes.has(name)) throw new QnetError(diag('QNET2006', `a qube named '${name}' already exists`));
  const klass = spec.klass ?? 'AppVM';
  const q = newQube(lowestFree([...model.qubes.values()].map((x) => x.qid)), name, spec.label ?? 'red', {
    klass,
    provides_network: spec.provides_network ?? false,
    ...(spec.netvm !== undefined ? { netvm: spec.netvm } : {}),
    ...(klass === 'DispVM' ? { dispid: lowestFree([...model.qubes.values()].map((x) => x.dispid)) } : {}),
  });
  unwrap(validateNetvm(model, q, netvmName(model, q)));
  model.qubes.set(name, q);
  return q;
}

/** Who depends on this qube (as netvm or as the global default). Empty = free to go. */
function users(model: Model, name: string): string[] {
  const out = clientsOf(model, name).map((c) => c.name);
  if (model.default_netvm === name) out.push('the global default_netvm');
  return out;
}

export function removeQube(model: Model, name: string): void {
  const q = getQube(model, name);
  if (q.state === 'Running')
    throw new QnetError(diag('QNET2007', `cannot remove running qube '${name}'`, { hint: `qnet shutdown ${name}` }));
  const u = users(model, name);
  if (u.length)
    throw new QnetError(
      diag('QNET2008', `'${name}' is in use as netvm of: ${u.join(', ')}`, { hint: 'change their netvm first' }),
    );
  model.qubes.delete(name);
  dropLinksOf(model, name);
}

/** Rename, keeping rules and every reference (other qubes' netvm, default_netvm). Halted only, as Qubes. */
export function renameQube(model: Model, oldName: string, newName: string): void {
  const q = getQube(model, oldName);
  unwrap(validateQubeName(newName));
  if (model.qubes.has(newName)) throw new QnetError(diag('QNET2006', `a qube named '${newName}' already exists`));
  if (q.state === 'Running')
    throw new QnetError(diag('QNET2009', `cannot rename running qube '${oldName}'`, { hint: `qnet shutdown ${oldName}` }));
  rekeyQube(model, oldName, newName);
}

/**
 * The rename itself: `from` becomes `to` in place (map order kept) and references follow (other
 * qubes' netvm, default_netvm). No checks: the store also uses it for temporary names mid-commit.
 */
export function rekeyQube(model: Model, from: string, to: string): void {
  model.qubes = new Map(
    [...model.qubes].map(([name, q]) => {
      if (q.netvm === from) q.netvm = to;
      if (name !== from) return [name, q];
      q.name = to;
      return [to, q];
    }),
  );
  if (model.default_netvm === from) model.default_netvm = to;
  renameInLinks(model, from, to);
}

/** Clone: properties, features and rules; a new qid (and derived addresses, so no ip clash). */
export function cloneQube(model: Model, src: string, dst: string): Qube {
  const s = getQube(model, src);
  const q = createQube(model, {
    name: dst,
    klass: s.klass,
    label: s.label,
    provides_network: s.provides_network,
    ...(s.netvm !== undefined ? { netvm: s.netvm } : {}),
  });
  q.features = { ...s.features };
  if (s.autostart !== undefined) q.autostart = s.autostart; // qvm-clone copies properties, this one too
  // A list of its own; the rule objects are shared, as the store shares them (frozen, never edited in place).
  q.rules = s.rules?.slice() ?? null;
  return q;
}

// ---- Properties (qvm-prefs) -----------------------------------------------------------------

export interface PropView {
  name: string;
  /** As qvm-prefs prints it: Python's str() (True/False), '' for None. */
  value: string;
  isDefault: boolean;
}

interface PropDef {
  help: string;
  get(model: Model, q: Qube): string | number | boolean | null;
  isDefault(q: Qube): boolean;
  set?(model: Model, q: Qube, value: string): void;
  reset?(model: Model, q: Qube): void;
}

const py = (v: string | number | boolean | null): string => (v === null ? '' : v === true ? 'True' : v === false ? 'False' : String(v));

function parseBool(prop: string, v: string): boolean {
  const l = v.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(l)) return true;
  if (['false', '0', 'no', 'off', ''].includes(l)) return false;
  throw new QnetError(diag('QNET2010', `property '${prop}': '${v}' is not a boolean (True or False)`));
}

function checkAddress(model: Model, q: Qube, v: string, family: 4 | 6): void {
  if (isIP(v) !== family)
    throw new QnetError(diag('QNET2011', `'${v}' is not an IPv${family} address`, { qube: q.name }));
  for (const o of model.qubes.values())
    if (o !== q && (family === 4 ? qubeIp(model, o) : qubeIp6(model, o)) === v)
      throw new QnetError(diag('QNET2012', `address ${v} is already used by '${o.name}'`, { qube: q.name }));
}

const PROPS: Record<string, PropDef> = {
  autostart: {
    help: 'Start this qube (and its netvm chain) when the qnet daemon starts: at boot, under systemd',
    get: (_m, q) => q.autostart === true,
    isDefault: (q) => q.autostart === undefined,
    set: (_m, q, v) => {
      const on = parseBool('autostart', v);
      if (on && q.klass === 'TemplateVM') throw new QnetError(diag('QNET2102', `${q.name} is a template: templates are not started here`, { qube: q.name }));
      q.autostart = on;
    },
    reset: (_m, q) => void delete q.autostart,
  },
  dns: {
    help: 'DNS servers the qube uses (Qubes virtual resolvers)',
    get: (m, q) => (isNetworked(m, q) ? VIRTUAL_DNS.join(' ') : null),
    isDefault: () => true,
  },
  gateway: { help: 'Gateway: the netvm\'s own address', get: (m, q) => gateway(m, q), isDefault: () => true },
  gateway6: { help: 'IPv6 gateway', get: (m, q) => gateway6(m, q), isDefault: () => true },
  ip: {
    help: 'IPv4 address of this qube (derived from qid unless set)',
    get: (m, q) => qubeIp(m, q),
    isDefault: (q) => q.ip === undefined,
    set: (m, q, v) => {
      checkAddress(m, q, v, 4);
      q.ip = v;
    },
    reset: (_m, q) => void delete q.ip,
  },
  ip6: {
    help: 'IPv6 address of this qube (with the ipv6 feature)',
    get: (m, q) => qubeIp6(m, q),
    isDefault: (q) => q.ip6 === undefined,
    set: (m, q, v) => {
      checkAddress(m, q, v, 6);
      q.ip6 = v;
    },
    reset: (_m, q) => void delete q.ip6,
  },
  klass: { help: 'Class of the qube', get: (_m, q) => q.klass, isDefault: () => false },
  label: {
    help: 'Colourful label assigned to the qube',
    get: (_m, q) => q.label,
    isDefault: () => false,
    set: (_m, q, v) => {
      if (!(LABELS as readonly string[]).includes(v))
        throw new QnetError(diag('QNET2013', `'${v}' is not a label`, { hint: LABELS.join(', ') }));
      q.label = v as Label;
    },
  },
  name: {
    help: 'User-visible name of the qube',
    get: (_m, q) => q.name,
    isDefault: () => false,
    set: (m, q, v) => renameQube(m, q.name, v),
  },
  netvm: {
    help: 'Qube that provides network to this one (none for no network)',
    get: (m, q) => netvmName(m, q),
    isDefault: (q) => q.netvm === undefined,
    set: (m, q, v) => {
      const target = v === '' || v.toLowerCase() === 'none' ? null : v;
      unwrap(validateNetvm(m, q, target));
      // Qubes: a running qube is moved live, and only to a netvm that runs.
      if (q.state === 'Running' && target !== null && m.qubes.get(target)?.state !== 'Running')
        throw new QnetError(diag('QNET2017', `cannot dynamically attach to stopped qube '${target}'`, { qube: q.name, hint: `qnet start ${target}` }));
      q.netvm = target;
    },
    reset: (m, q) => {
      unwrap(validateNetvm(m, q, m.default_netvm === q.name ? null : m.default_netvm));
      delete q.netvm;
    },
  },
  provides_network: {
    help: 'Whether this qube provides network to other qubes',
    get: (_m, q) => q.provides_network,
    isDefault: (q) => !q.provides_network,
    set: (m, q, v) => setProvidesNetwork(m, q, parseBool('provides_network', v)),
    reset: (m, q) => setProvidesNetwork(m, q, false),
  },
  qid: { help: 'Internal, persistent identifier of the qube', get: (_m, q) => q.qid, isDefault: () => false },
  visible_gateway: { help: 'Default gateway as seen by the qube', get: (m, q) => gateway(m, q), isDefault: () => true },
  visible_ip: { help: 'IP address as seen by other qubes', get: (m, q) => qubeIp(m, q), isDefault: () => true },
};

function setProvidesNetwork(model: Model, q: Qube, v: boolean): void {
  if (!v && users(model, q.name).length)
    throw new QnetError(
      diag('QNET2014', `'${q.name}' provides network to: ${users(model, q.name).join(', ')}`, {
        hint: "change theirs 'netvm' first",
      }),
    );
  q.provides_network = v;
}

export const PROPERTY_NAMES = Object.keys(PROPS).sort();

function propDef(name: string): PropDef {
  const p = PROPS[name.replace(/-/g, '_')];
  if (!p) throw new QnetError(diag('QNET9001', `no such property: '${name}'`, { hint: PROPERTY_NAMES.join(', ') }));
  return p;
}

export function propertyHelp(name: string): string {
  return propDef(name).help;
}

export function listProps(model: Model, q: Qube): PropView[] {
  return PROPERTY_NAMES.map((name) => getProp(model, q, name));
}

export function getProp(model: Model, q: Qube, name: string): PropView {
  const p = propDef(name);
  return { name, value: py(p.get(model, q)), isDefault: p.isDefault(q) };
}

export function setProp(model: Model, q: Qube, name: string, value: string): void {
  const p = propDef(name);
  if (!p.set) throw new QnetError(diag('QNET2015', `property '${name}' is read-only`, { qube: q.name }));
  p.set(model, q, value);
}

export function resetProp(model: Model, q: Qube, name: string): void {
  const p = propDef(name);
  if (!p.reset) throw new QnetError(diag('QNET2016', `property '${name}' has no default value`, { qube: q.name }));
  p.reset(model, q);
}

export function setDefaultNetvm(model: Model, name: string | null): void {
  if (name !== null) {
    const q = getQube(model, name);
    if (!q.provides_network) throw new QnetError(diag('QNET2004', `'${name}' does not provide network`));
    for (const c of model.qubes.values())
      if (c.netvm === undefined && c.name !== name) unwrap(validateNetvm(model, c, name));
  }
  model.default_netvm = name;
}

export const isQubeClass = (s: string): s is QubeClass => (QUBE_CLASSES as readonly string[]).includes(s);
export const isLabel = (s: string): s is Label => (LABELS as readonly string[]).includes(s);
