// qubes.json: the qubes and the global properties (Qubes keeps these in qubes.xml). Rules are not
// here; each qube's firewall.xml holds them. Output is deterministic (sorted by qid, fixed key order,
// features sorted, 2-space JSON, trailing newline) so an unchanged model gives identical bytes and
// the store can tell "changed" by comparing text.
//
//   { "version": 1, "default_netvm": "sys-firewall" | null,
//     "qubes": [ { "qid", "name", "class", "label", "netvm"?: string | null (absent = default),
//                  "provides_network", "ip"?, "ip6"?, "dispid"?, "state", "autostart"?: boolean,
//                  "features": {…} } ],
//     "connections"?: [ { "id", "from", "to", "proto"?, "ports"?: {start, end}, "bothWays", "comment"? } ],
//     "forwards"?: [ { "id", "qube", "proto", "port", "toPort"?, "from": [CIDR…], "on": [IFACE…], "comment"? } ] }
// (autostart, connections and forwards only when set, so older files keep their bytes).
//
// Codes: QNET3010 not JSON; QNET3011 valid JSON with a wrong shape or value (one per problem,
// each with its JSON path, e.g. `qubes[3].label`).
import { isIPv4, isIPv6 } from 'node:net';
import { diag, type Diagnostic } from '../model/diagnostics.js';
import { checkLinks, type Connection, type PortForward } from '../model/connection.js';
import { LABELS, QUBE_CLASSES, type Model, type Qube } from '../model/qube.js';
import { err, ok, type Result } from '../model/result.js';
import { checkTopology, isUplink, validateQubeName } from '../model/topology.js';
import { oneLine } from './state-file.js';

export const QUBES_FILE_VERSION = 1;
export const QUBES_JSON_SYNTAX = 'QNET3010';
export const QUBES_JSON_INVALID = 'QNET3011';

const QUBE_KEYS = [
  'qid', 'name', 'class', 'label', 'netvm', 'provides_network', 'ip', 'ip6', 'dispid', 'state', 'autostart', 'features',
] as const;
const TOP_KEYS = ['version', 'default_netvm', 'uplink', 'qubes', 'connections', 'forwards'] as const;
const CONN_KEYS = ['id', 'from', 'to', 'proto', 'ports', 'bothWays', 'comment'] as const;
const FWD_KEYS = ['id', 'qube', 'proto', 'port', 'toPort', 'from', 'on', 'comment'] as const;
const STATES = ['Halted', 'Running'] as const;

/** The file's text for `model` (its rules are ignored). Does not validate; see checkModel. */
export function formatQubesFile(model: Model): string {
  const qubes = [...model.qubes.values()].sort((a, b) => a.qid - b.qid).map(qubeToJson);
  const uplink = model.uplink !== undefined ? { uplink: model.uplink } : {};
  const links = {
    ...(model.connections?.length ? { connections: [...model.connections].sort(byId).map(connToJson) } : {}),
    ...(model.forwards?.length ? { forwards: [...model.forwards].sort(byId).map(fwdToJson) } : {}),
  };
  return JSON.stringify({ version: QUBES_FILE_VERSION, default_netvm: model.default_netvm, ...uplink, qubes, ...links }, null, 2) + '\n';
}

/** c2 before c10: ids in number order. */
const byId = (a: { id: string }, b: { id: string }) => Number(a.id.slice(1)) - Number(b.id.slice(1)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function connToJson(c: Connection): Record<string, unknown> {
  const o: Record<string, unknown> = { id: c.id, from: c.from, to: c.to };
  if (c.proto !== undefined) o.proto = c.proto;
  if (c.ports !== undefined) o.ports = { start: c.ports.start, end: c.ports.end };
  o.bothWays = c.bothWays;
  if (c.comment !== undefined) o.comment = c.comment;
  return o;
}

function fwdToJson(f: PortForward): Record<string, unknown> {
  const o: Record<string, unknown> = { id: f.id, qube: f.qube, proto: f.proto, port: f.port };
  if (f.toPort !== undefined) o.toPort = f.toPort;
  o.from = [...f.from];
  o.on = [...f.on];
  if (f.comment !== undefined) o.comment = f.comment;
  return o;
}

/**
 * Parse and fully validate. Every problem is reported (not just the first), each message starting
 * with the file and the JSON path. Qubes come back sorted by qid with `rules: null`.
 */
export function parseQubesFile(text: string, file = 'qubes.json'): Result<Model, Diagnostic[]> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return err([diag(QUBES_JSON_SYNTAX, `${file}: not valid JSON: ${why}`, { file })]);
  }
  return fromJson(json, (path, msg) => diag(QUBES_JSON_INVALID, `${file}: ${path}: ${msg}`, { file }));
}

/**
 * parseQubesFile, but a broken qube entry is that qube's problem only: it is left out of the model
 * and reported in `problems` (one line each, naming the file and the entry), with the qubes that
 * name it as their netvm (they cannot be placed). What cannot be isolated is still an error of the
 * whole file: not JSON, a bad top level, a broken entry that default_netvm names, a topology error
 * among the readable entries. A model with problems must not be written back (it would lose them).
 */
export function parseQubesFileIsolating(text: string, file = 'qubes.json'): Result<{ model: Model; problems: Diagnostic[] }, Diagnostic[]> {
  const strict = parseQubesFile(text, file);
  if (strict.ok) return ok({ model: strict.value, problems: [] });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return strict;
  }
  if (!isObject(json) || !Array.isArray(json.qubes)) return strict;
  const entries = json.qubes as unknown[];
  const bad = new Map<number, string[]>(); // entry index → its issues
  const names = new Map<number, string>();
  const byName = new Map<string, number[]>();
  const byQid = new Map<unknown, number[]>();
  entries.forEach((raw, i) => {
    const issues: string[] = [];
    qubeFromJson(raw, `qubes[${i}]`, (path, msg) => void issues.push(`${path}: ${msg}`));
    if (issues.length) bad.set(i, issues);
    if (isObject(raw) && typeof raw.name === 'string') {
      names.set(i, raw.name);
      byName.set(raw.name, [...(byName.get(raw.name) ?? []), i]);
    }
    if (isObject(raw)) byQid.set(raw.qid, [...(byQid.get(raw.qid) ?? []), i]);
  });
  // Two entries with one name or qid: neither can be trusted to be the real one.
  for (const [what, groups] of [['name', byName], ['qid', byQid]] as const)
    for (const [v, at] of groups)
      if (at.length > 1) for (const i of at) bad.set(i, [...(bad.get(i) ?? []), `qubes[${i}].${what}: ${show(v)} is also the ${what} of qubes[${at.find((j) => j !== i)}]`]);
  // Qubes whose netvm is a dropped entry go too, until nothing more changes.
  const dropped = () => new Set([...bad.keys()].map((i) => names.get(i)).filter((n): n is string => n !== undefined));
  for (let grew = true; grew; ) {
    grew = false;
    const gone = dropped();
    entries.forEach((raw, i) => {
      if (bad.has(i) || !isObject(raw) || typeof raw.netvm !== 'string' || !gone.has(raw.netvm)) return;
      bad.set(i, [`qubes[${i}].netvm: '${raw.netvm}' is an entry qnet cannot read`]);
      grew = true;
    });
  }
  const gone = dropped();
  if (bad.size === 0 || (typeof json.default_netvm === 'string' && gone.has(json.default_netvm))) return strict;
  const rest = parseQubesFile(JSON.stringify({ ...json, qubes: entries.filter((_, i) => !bad.has(i)) }), file);
  if (!rest.ok) return strict;
  const problems = [...bad].map(([i, issues]) => {
    const more = issues.length > 3 ? `; and ${issues.length - 3} more` : '';
    const name = names.get(i);
    return diag(QUBES_JSON_INVALID, oneLine(`${file}: ${issues.slice(0, 3).join('; ')}${more}`), {
      file,
      ...(name !== undefined && validateQubeName(name).ok ? { qube: name } : {}),
      hint: 'this qube is left out until the file is fixed by hand; qnet will not rewrite qubes.json meanwhile',
    });
  });
  return ok({ model: rest.value, problems });
}

/**
 * What is wrong with `model` as qubes.json would hold it (the same checks as parsing, plus map keys
 * that must equal the qube's name). The store refuses to write a model with any of these. `text`
 * must be `formatQubesFile(model)`; a caller that already has it saves formatting it again.
 */
export function checkModel(model: Model, text = formatQubesFile(model)): Diagnostic[] {
  const issues: Diagnostic[] = [];
  for (const [key, q] of model.qubes)
    if (key !== q.name)
      issues.push(diag(QUBES_JSON_INVALID, `qube '${q.name}' is stored under the name '${key}' (rename must re-key the map)`));
  const r = fromJson(JSON.parse(text), (path, msg) =>
    diag(QUBES_JSON_INVALID, `invalid model: ${path}: ${msg}`),
  );
  return r.ok ? issues : [...issues, ...r.error];
}

/**
 * Whether two qubes have the same entry in the file (what qubeToJson writes), without formatting:
 * a rule edit of one qube among thousands needs not format them all to know qubes.json is unchanged.
 */
export function sameQubeEntry(a: Qube, b: Qube): boolean {
  if (a === b) return true;
  if (a.qid !== b.qid || a.name !== b.name || a.klass !== b.klass || a.label !== b.label || a.netvm !== b.netvm) return false;
  if (a.provides_network !== b.provides_network || a.ip !== b.ip || a.ip6 !== b.ip6 || a.dispid !== b.dispid || a.state !== b.state) return false;
  const fa = Object.keys(a.features);
  if (fa.length !== Object.keys(b.features).length) return false;
  return fa.every((k) => Object.hasOwn(b.features, k) && a.features[k] === b.features[k]);
}

// Keep sameQubeEntry in step with the keys written here.
function qubeToJson(q: Qube): Record<string, unknown> {
  // Fixed key order, optional keys only when set, so the bytes depend on the data alone.
  const o: Record<string, unknown> = { qid: q.qid, name: q.name, class: q.klass, label: q.label };
  if (q.netvm !== undefined) o.netvm = q.netvm;
  o.provides_network = q.provides_network;
  if (q.ip !== undefined) o.ip = q.ip;
  if (q.ip6 !== undefined) o.ip6 = q.ip6;
  if (q.dispid !== undefined) o.dispid = q.dispid;
  o.state = q.state;
  if (q.autostart !== undefined) o.autostart = q.autostart;
  o.features = Object.fromEntries(Object.entries(q.features).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return o;
}

type Report = (path: string, msg: string) => Diagnostic;

function fromJson(json: unknown, report: Report): Result<Model, Diagnostic[]> {
  const issues: Diagnostic[] = [];
  const bad = (path: string, msg: string) => void issues.push(report(path, msg));
  if (!isObject(json)) return err([report('(top level)', `expected an object, got ${describe(json)}`)]);
  unknownKeys(json, TOP_KEYS, '(top level)', bad);
  if (json.version !== QUBES_FILE_VERSION)
    bad('version', `${show(json.version)} is not a supported version (expected ${QUBES_FILE_VERSION})`);
  const default_netvm = json.default_netvm;
  if (default_netvm !== null && !(typeof default_netvm === 'string' && validateQubeName(default_netvm).ok))
    bad('default_netvm', `${show(default_netvm)} is not a qube name or null`);
  const uplink = json.uplink;
  if (uplink !== undefined && !(typeof uplink === 'string' && isUplink(uplink)))
    bad('uplink', `${show(uplink)} is not an uplink (none, world, veth-host, move:DEV)`);
  if (!Array.isArray(json.qubes)) {
    bad('qubes', `expected an array, got ${describe(json.qubes)}`);
    return err(issues);
  }
  const qubes: Qube[] = [];
  const byName = new Map<string, number>();
  const byQid = new Map<number, number>();
  json.qubes.forEach((raw: unknown, i: number) => {
    const q = qubeFromJson(raw, `qubes[${i}]`, bad);
    if (!q) return;
    const n = byName.get(q.name);
    if (n !== undefined) bad(`qubes[${i}].name`, `'${q.name}' is also the name of qubes[${n}]`);
    const d = byQid.get(q.qid);
    if (d !== undefined) bad(`qubes[${i}].qid`, `${q.qid} is also the qid of qubes[${d}]`);
    byName.set(q.name, i);
    byQid.set(q.qid, i);
    qubes.push(q);
  });
  const connections = linksFromJson(json.connections, 'connections', CONN_KEYS, bad) as Connection[] | undefined;
  const forwards = linksFromJson(json.forwards, 'forwards', FWD_KEYS, bad) as PortForward[] | undefined;
  if (issues.length > 0) return err(issues);
  qubes.sort((a, b) => a.qid - b.qid);
  // A hand-edited file can name a netvm that is missing, provides no network, or loops back.
  const graph = checkTopology({ default_netvm: default_netvm as string | null, qubes: new Map(qubes.map((q) => [q.name, q])) });
  if (graph.length) return err(graph.map((d) => report(`qubes[${qubes.findIndex((q) => q.name === d.qube)}].netvm`, d.message)));
  const model: Model = {
    default_netvm: default_netvm as string | null,
    ...(typeof uplink === 'string' ? { uplink } : {}),
    qubes: new Map(qubes.map((q) => [q.name, q])),
    ...(connections?.length ? { connections } : {}),
    ...(forwards?.length ? { forwards } : {}),
  };
  // Values, references to qubes, duplicates: the model's own rules (connection.ts).
  const links = checkLinks(model);
  if (links.length) return err(links.map((d) => report(d.message.startsWith('forward') ? 'forwards' : 'connections', d.message)));
  return ok(model);
}

function qubeFromJson(raw: unknown, at: string, bad: (path: string, msg: string) => void): Qube | undefined {
  if (!isObject(raw)) {
    bad(at, `expected an object, got ${describe(raw)}`);
    return undefined;
  }
  let failed = false;
  const fail = (key: string, msg: string) => {
    failed = true;
    bad(`${at}.${key}`, msg);
  };
  unknownKeys(raw, QUBE_KEYS, at, (p, m) => {
    failed = true;
    bad(p, m);
  });
  const { qid, name, label, netvm, provides_network, ip, ip6, dispid, state, autostart, features } = raw;
  const klass = raw.class;
  if (!isId(qid)) fail('qid', `${show(qid)} is not a qid (an integer 0–65535)`);
  if (typeof name !== 'string') fail('name', `expected a string, got ${describe(name)}`);
  else if (!validateQubeName(name).ok)
    fail('name', `'${name}' is not a valid qube name (a letter first, then letters, digits, _ . -; at most 31 characters; not a reserved name)`);
  if (!QUBE_CLASSES.includes(klass as never)) fail('class', `${show(klass)} is not a class (${QUBE_CLASSES.join(', ')})`);
  if (!LABELS.includes(label as never)) fail('label', `${show(label)} is not a label (${LABELS.join(', ')})`);
  if (netvm !== undefined && netvm !== null && !(typeof netvm === 'string' && validateQubeName(netvm).ok))
    fail('netvm', `${show(netvm)} is not a qube name or null (leave it out to follow default_netvm)`);
  if (typeof provides_network !== 'boolean') fail('provides_network', `expected true or false, got ${describe(provides_network)}`);
  if (ip !== undefined && !(typeof ip === 'string' && isIPv4(ip))) fail('ip', `${show(ip)} is not an IPv4 address`);
  if (ip6 !== undefined && !(typeof ip6 === 'string' && isIPv6(ip6))) fail('ip6', `${show(ip6)} is not an IPv6 address`);
  if (dispid !== undefined && !isId(dispid)) fail('dispid', `${show(dispid)} is not a dispid (an integer 0–65535)`);
  if (!STATES.includes(state as never)) fail('state', `${show(state)} is not a state (${STATES.join(', ')})`);
  if (autostart !== undefined && typeof autostart !== 'boolean') fail('autostart', `expected true or false, got ${describe(autostart)}`);
  else if (autostart === true && klass === 'TemplateVM') fail('autostart', 'a template is not started here');
  if (!isObject(features)) fail('features', `expected an object of strings, got ${describe(features)}`);
  else
    for (const [k, v] of Object.entries(features))
      if (typeof v !== 'string') fail(`features.${k}`, `expected a string, got ${describe(v)}`);
  if (failed) return undefined;
  const q: Qube = {
    qid: qid as number,
    name: name as string,
    klass: klass as Qube['klass'],
    label: label as Qube['label'],
    provides_network: provides_network as boolean,
    state: state as Qube['state'],
    features: { ...(features as Record<string, string>) },
    rules: null,
  };
  if (netvm !== undefined) q.netvm = netvm as string | null;
  if (ip !== undefined) q.ip = ip as string;
  if (ip6 !== undefined) q.ip6 = ip6 as string;
  if (dispid !== undefined) q.dispid = dispid as number;
  if (autostart !== undefined) q.autostart = autostart as boolean;
  return q;
}

/**
 * `connections` or `forwards`: absent, or an array of objects with known keys only, each copied
 * field by field (a hostile file gets no prototype keys or extra data into the model). Values are
 * checked by checkLinks once the qubes are known.
 */
function linksFromJson(raw: unknown, at: string, keys: readonly string[], bad: (path: string, msg: string) => void): Record<string, unknown>[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) return void bad(at, `expected an array, got ${describe(raw)}`);
  if (raw.length > 100_000) return void bad(at, `${raw.length} entries is more than qnet keeps (100000)`);
  const out: Record<string, unknown>[] = [];
  raw.forEach((e: unknown, i: number) => {
    if (!isObject(e)) return bad(`${at}[${i}]`, `expected an object, got ${describe(e)}`);
    let ok = true;
    unknownKeys(e, keys, `${at}[${i}]`, (p, m) => {
      ok = false;
      bad(p, m);
    });
    const copy: Record<string, unknown> = {};
    for (const k of keys) if (Object.hasOwn(e, k) && e[k] !== undefined) copy[k] = Array.isArray(e[k]) ? [...(e[k] as unknown[])] : isObject(e[k]) ? { ...(e[k] as object) } : e[k];
    if (ok) out.push(copy);
  });
  return out;
}

function unknownKeys(o: Record<string, unknown>, known: readonly string[], at: string, bad: (p: string, m: string) => void) {
  for (const k of Object.keys(o))
    if (!known.includes(k)) bad(at === '(top level)' ? k : `${at}.${k}`, `unknown property (known: ${known.join(', ')})`);
}

// Addresses are derived from 16 bits of the id (10.137.x.y), so larger ids cannot be addressed.
const isId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${show(v)}`;
}

/** Values quoted as a user would type them: 'pink', 42, null. */
function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === undefined) return 'nothing';
  return JSON.stringify(v) ?? String(v);
}
