// Qubes and global properties: init, list, create, remove, rename, clone (qvm-ls, qvm-create,
// qvm-remove, qvm-clone), per-qube properties (qvm-prefs) and global ones (qubes-prefs).
import * as v from 'valibot';
import { diag } from '../model/diagnostics.js';
import { defaultLayout } from '../model/layout.js';
import { LABELS, QUBE_CLASSES, type Label, type QubeClass } from '../model/qube.js';
import { cloneQube, createQube, getProp, getQube, listProps, removeQube, renameQube, resetProp, setDefaultNetvm, setProp, type PropView } from '../model/ops.js';
import { QnetError } from '../model/result.js';
import { isUplink } from '../model/topology.js';
import { noInput, qubeName, qubeNames } from './schema.js';
import { defineOp, result, type OpResult } from './types.js';
import { problemsOf, qubeView, QubeViewSchema, type QubeView } from './views.js';

const name = qubeName;
const names = v.pipe(qubeNames, v.minLength(1));
/** A netvm reference: a qube name, or null for none; absent = the global default. */
const netvmRef = v.nullable(v.string());

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export const qubesInit = defineOp({
  name: 'qubes.init',
  kind: 'change',
  summary: 'create the layout of a fresh Qubes install: sys-net, sys-firewall, work, personal, untrusted, vault',
  input: noInput,
  run: async (_i, host) => {
    await host.change({ kind: 'all' }, (m) => {
      if (m.qubes.size)
        throw new QnetError(diag('QNET3101', `${host.stateDir} already has ${m.qubes.size} qubes`, { hint: 'use another --state directory, or remove the qubes first' }));
      const fresh = defaultLayout();
      m.default_netvm = fresh.default_netvm;
      m.qubes = fresh.qubes;
    });
    return result({ stateDir: host.stateDir, qubes: [...defaultLayout().qubes.keys()] });
  },
});

export const qubesList = defineOp({
  name: 'qubes.list',
  kind: 'read',
  summary: 'list qubes with their state, class, label, netvm and addresses (qvm-ls)',
  output: v.array(QubeViewSchema),
  input: v.strictObject({ names: v.optional(qubeNames) }),
  run: async (i, host): Promise<OpResult<QubeView[]>> => {
    const m = await host.read();
    if (i.names?.length) {
      const missing = i.names.filter((n) => !m.qubes.has(n));
      if (missing.length) throw new QnetError(diag('QNET2003', `no such qube: ${missing.join(', ')}`, { hint: 'see qnet ls' }));
    }
    const status = host.applyStatus();
    const qubes = [...m.qubes.values()].filter((q) => !i.names?.length || i.names.includes(q.name)).sort(byName);
    return result(
      qubes.map((q) => qubeView(m, q, status?.get(q.name))),
      problemsOf(m, qubes),
    );
  },
});

export const qubesCreate = defineOp({
  name: 'qubes.create',
  kind: 'change',
  summary: 'create a new qube (qvm-create)',
  input: v.strictObject({
    name,
    class: v.optional(v.picklist(QUBE_CLASSES as QubeClass[]), 'AppVM'),
    label: v.optional(v.picklist(LABELS as Label[]), 'red'),
    netvm: v.optional(netvmRef),
    provides_network: v.optional(v.boolean(), false),
  }),
  run: async (i, host) => {
    const q = await host.change({ kind: 'props', qubes: [i.name] }, (m) =>
      createQube(m, { name: i.name, klass: i.class, label: i.label, provides_network: i.provides_network, ...(i.netvm !== undefined ? { netvm: i.netvm } : {}) }),
    );
    return result({ name: q.name, qid: q.qid });
  },
});

export const qubesRemove = defineOp({
  name: 'qubes.remove',
  kind: 'change',
  summary: 'remove qubes and their rules (qvm-remove)',
  input: v.strictObject({ names }),
  run: async (i, host) => {
    await host.change({ kind: 'props', qubes: i.names }, (m) => i.names.forEach((n) => removeQube(m, n)));
    return result({ removed: i.names });
  },
});

export const qubesRename = defineOp({
  name: 'qubes.rename',
  kind: 'change',
  summary: 'rename a halted qube, keeping its rules and every reference to it',
  input: v.strictObject({ from: name, to: name }),
  run: async (i, host) => {
    await host.change({ kind: 'props', qubes: [i.from, i.to] }, (m) => renameQube(m, i.from, i.to));
    return result({ from: i.from, to: i.to });
  },
});

export const qubesClone = defineOp({
  name: 'qubes.clone',
  kind: 'change',
  summary: 'copy a qube with its properties, features and rules (qvm-clone)',
  input: v.strictObject({ from: name, to: name }),
  run: async (i, host) => {
    const q = await host.change({ kind: 'props', qubes: [i.to] }, (m) => cloneQube(m, i.from, i.to));
    return result({ name: q.name, qid: q.qid });
  },
});

export const prefsList = defineOp({
  name: 'prefs.list',
  kind: 'read',
  summary: "a qube's properties, with D for those at their default (qvm-prefs VM)",
  input: v.strictObject({ qube: name }),
  run: async (i, host): Promise<OpResult<PropView[]>> => {
    const m = await host.read();
    return result(listProps(m, getQube(m, i.qube)));
  },
});

export const prefsGet = defineOp({
  name: 'prefs.get',
  kind: 'read',
  summary: 'one property of a qube (qvm-prefs VM PROP)',
  input: v.strictObject({ qube: name, property: v.string() }),
  run: async (i, host): Promise<OpResult<PropView>> => {
    const m = await host.read();
    return result(getProp(m, getQube(m, i.qube), i.property));
  },
});

export const prefsSet = defineOp({
  name: 'prefs.set',
  kind: 'change',
  summary: 'set a property of a qube, or reset it to its default with value null (qvm-prefs VM PROP VALUE, --default)',
  input: v.strictObject({ qube: name, property: v.string(), value: v.nullable(v.string()) }),
  run: async (i, host) => {
    await host.change({ kind: 'props', qubes: [i.qube] }, (m) => {
      const q = getQube(m, i.qube);
      if (i.value === null) resetProp(m, q, i.property);
      else setProp(m, q, i.property, i.value);
    });
    return result({ qube: i.qube, property: i.property });
  },
});

export interface GlobalPrefsView {
  default_netvm: string | null;
  uplink: string;
  uplink_is_default: boolean;
}

export const globalGet = defineOp({
  name: 'global.get',
  kind: 'read',
  summary: 'global properties: default_netvm and uplink (qubes-prefs)',
  input: noInput,
  run: async (_i, host): Promise<OpResult<GlobalPrefsView>> => {
    const m = await host.read();
    return result({ default_netvm: m.default_netvm, uplink: m.uplink ?? 'world', uplink_is_default: m.uplink === undefined });
  },
});

export const globalSet = defineOp({
  name: 'global.set',
  kind: 'change',
  summary: 'set a global property: default_netvm (a qube that provides network, or null) or uplink',
  input: v.variant('property', [
    v.strictObject({ property: v.literal('default_netvm'), value: v.nullable(v.string()) }),
    v.strictObject({ property: v.literal('uplink'), value: v.string() }),
  ]),
  run: async (i, host) => {
    if (i.property === 'uplink') {
      const value = i.value;
      if (!isUplink(value)) throw new QnetError(diag('QNET2106', `'${value}' is not an uplink`, { hint: 'world, none, veth-host, move:DEV' }));
      await host.change({ kind: 'all' }, (m) => {
        if ([...m.qubes.values()].some((q) => q.state === 'Running'))
          throw new QnetError(diag('QNET2105', 'the uplink cannot change while qubes run', { hint: 'qnet shutdown --all first' }));
        m.uplink = value;
      });
    } else await host.change({ kind: 'all' }, (m) => setDefaultNetvm(m, i.value));
    return result({ property: i.property });
  },
});

// qvm-features: free-form key/value pairs on a qube. qnet reads `ipv6` (model/addressing.ts: the
// qube's own value, else its netvm's; '' switches it off), so IPv6 is switched on as in Qubes:
// `qnet features sys-net ipv6 1`.
/** Names as Qubes' extensions use them (`ipv6`, `service.cups`, `boot-mode.kernelopts`). */
const featureName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$/, 'a feature name is a letter or digit, then letters, digits, _ . - (at most 64)'));
/** A value is a string of printable ASCII (empty means false to the extensions that read booleans). */
const featureValue = v.pipe(v.string(), v.maxLength(1024), v.regex(/^[\x20-\x7e]*$/, 'a feature value is printable ASCII'));

export const featuresList = defineOp({
  name: 'features.list',
  kind: 'read',
  summary: "a qube's features, sorted by name (qvm-features VM)",
  input: v.strictObject({ qube: name }),
  run: async (i, host): Promise<OpResult<{ name: string; value: string }[]>> => {
    const q = getQube(await host.read(), i.qube);
    return result(Object.keys(q.features).sort().map((n) => ({ name: n, value: q.features[n]! })));
  },
});

export const featuresGet = defineOp({
  name: 'features.get',
  kind: 'read',
  summary: 'one feature of a qube; refused (QNET2110) when it is not set (qvm-features VM FEATURE)',
  input: v.strictObject({ qube: name, feature: v.string() }),
  run: async (i, host): Promise<OpResult<string>> => {
    const q = getQube(await host.read(), i.qube);
    if (!Object.hasOwn(q.features, i.feature)) throw new QnetError(diag('QNET2110', `no feature '${i.feature}' is set`, { qube: i.qube, hint: `qnet features ${i.qube}` }));
    return result(q.features[i.feature]!);
  },
});

export const featuresSet = defineOp({
  name: 'features.set',
  kind: 'change',
  summary: 'set a feature of a qube, or unset it with value null (qvm-features VM FEATURE VALUE, --unset)',
  input: v.strictObject({ qube: name, feature: v.string(), value: v.nullable(v.string()) }),
  run: async (i, host) => {
    const bad = [v.safeParse(featureName, i.feature), ...(i.value !== null ? [v.safeParse(featureValue, i.value)] : [])].find((r) => !r.success);
    if (bad && !bad.success) throw new QnetError(diag('QNET2111', bad.issues[0].message, { qube: i.qube }));
    // A feature can change every qube below this one (ipv6 is inherited down the netvm tree).
    await host.change({ kind: 'props', qubes: [i.qube] }, (m) => {
      const q = getQube(m, i.qube);
      if (i.value === null) delete q.features[i.feature];
      else q.features = { ...q.features, [i.feature]: i.value };
    });
    return result({ qube: i.qube, feature: i.feature, value: i.value });
  },
});
