// A copy of a Qubes dom0 /var/lib/qubes read into qnet's model, for `qnet import-qubes`: qubes.xml as
// qubes-core-admin writes it (qubes/app.py `Qubes.__xml__`, R4.1 and R4.2) and each qube's
// firewall.xml beside it (appvms/<name>/, vm-templates/<name>/; read by firewall-xml.ts, v2 and v1).
//
//   <qubes>
//     <labels><label id="label-1" color="0xcc0000">red</label>…</labels>
//     <pools>…</pools>
//     <properties><property name="default_netvm">sys-firewall</property>…</properties>
//     <domains>
//       <domain id="domain-3" class="AppVM">
//         <properties><property name="qid">3</property><property name="name">work</property>
//                     <property name="label">label-6</property><property name="netvm"></property>…</properties>
//         <features><feature name="ipv6">1</feature>…</features>
//         <devices …/><tags>…</tags><volume-config>…</volume-config>
//       </domain>…
//
// A property's value is its `ref` attribute or its text (PropertyHolder.load_properties). An absent
// property is at its default (netvm: the global default_netvm); an empty one is None (netvm: none).
//
// The input is hostile: bounded in size, regular files only (state-file.ts), no DTD (so no entity
// of any kind beyond XML's five and character references: no XXE, no billion laughs), every name,
// qid, address, label and reference checked. Everything is read and checked before anything is
// returned: a problem anywhere is a QnetError (one line, naming the file and the domain) and the
// caller imports nothing.
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { XMLParser, XMLValidator, type EntityDecoderOptions } from 'fast-xml-parser';
import { qubeIp } from '../model/addressing.js';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { LABELS, type Label, type Model, type Qube, type QubeClass } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import type { Rule } from '../model/rule.js';
import { checkTopology, validateQubeName } from '../model/topology.js';
import { readFirewallXml } from './firewall-xml.js';
import { classDirName } from './paths.js';
import { checkModel } from './qubes-file.js';
import { MAX_FIREWALL_BYTES, oneLine, readStateFile, StateFileError } from './state-file.js';

export const IMPORT_NO_FILE = 'QNET3301';
export const IMPORT_XML = 'QNET3302';
export const IMPORT_INVALID = 'QNET3303';
export const IMPORT_RULES = 'QNET3304';
export const IMPORT_LEFT_OUT = 'QNET3305';

/**
 * qubes.xml is about 2 KB a domain, and Qubes has fewer than 255 qids (config.max_qid): 16 MiB is
 * far more than any real one, and bounds the parse of a hostile one.
 */
export const MAX_QUBES_XML_BYTES = 16 * 1024 * 1024;

/** The element tree, as plain data (attributes in Maps: no name from the file becomes an object key of ours). */
interface XNode {
  name: string;
  attrs: Map<string, string>;
  children: XNode[];
  /** Character data directly in this element (what lxml calls `.text` for a leaf). */
  text: string;
}

export interface ImportedQubes {
  /** Every qube with its rules (`null`: no firewall.xml, accept everything); all Halted. */
  model: Model;
  /** What the import left out or changed, one line each (QNET3305). */
  warnings: Diagnostic[];
  /** Domains that are not qubes here (dom0, the AdminVM). */
  skipped: string[];
}

const QUBE_CLASSES_XML = new Set<string>(['AppVM', 'DispVM', 'TemplateVM', 'StandaloneVM']);
/** Properties read into the model; every other one is left out (named in one warning). */
const KEPT = new Set(['name', 'qid', 'label', 'netvm', 'provides_network', 'ip', 'ip6', 'dispid']);
/** Read only to check the reference or value, then left out: qnet has no field for them. */
const CHECKED_ONLY = new Set(['template', 'template_for_dispvms']);
/** Features that change a qube's networking in Qubes and that qnet does not honour. */
const UNHONOURED_FEATURES = ['net.fake-ip', 'net.fake-gateway', 'net.fake-netmask'];
const FEATURE_NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const MAX_FEATURE_BYTES = 64 * 1024;
const LABEL_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,30}$/;
const LABEL_ID_RE = /^label-([0-9]{1,4})$/;
// XML 1.0 forbids these characters anywhere (lxml refuses them).
const BAD_CHAR_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
/** An `&` that is not one of XML's five entities or a character reference: an undeclared entity. */
const BAD_REF_RE = /&(?!(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});)/;

/**
 * Read `dir` (a copy of dom0's /var/lib/qubes) into a model with every qube's rules. Throws a
 * QnetError naming the file (and domain) at the first problem; returns only a complete model.
 */
export async function readQubesDir(dir: string): Promise<ImportedQubes> {
  if (!isAbsolute(dir)) throw new QnetError(diag(IMPORT_NO_FILE, `${oneLine(dir)}: not an absolute path`, { hint: 'give the directory as an absolute path' }));
  const file = join(dir, 'qubes.xml');
  let bytes: Buffer | null;
  try {
    bytes = await readStateFile(file, MAX_QUBES_XML_BYTES);
  } catch (e) {
    const why = e instanceof StateFileError ? e.reason : e instanceof Error ? e.message : String(e);
    throw new QnetError(diag(IMPORT_NO_FILE, oneLine(`${file}: ${why}`), { file }));
  }
  if (bytes === null)
    throw new QnetError(diag(IMPORT_NO_FILE, `${file}: no such file`, { file, hint: "DIR is a copy of dom0's /var/lib/qubes, with qubes.xml at its top" }));
  const imported = qubesFromXml(bytes.toString('utf8'), file);
  // Rules, qube by qube (files read one at a time: a copy has a few hundred at most).
  for (const q of imported.model.qubes.values()) q.rules = await readRules(dir, q);
  return imported;
}

async function readRules(dir: string, q: Qube): Promise<Rule[] | null> {
  const path = join(dir, classDirName(q.klass), q.name, 'firewall.xml');
  const fail = (why: string) => new QnetError(diag(IMPORT_RULES, oneLine(`${path}: ${why}`), { file: path, qube: q.name, hint: 'fix or remove the file; nothing was imported' }));
  let raw: Buffer | null;
  try {
    raw = await readStateFile(path, MAX_FIREWALL_BYTES);
  } catch (e) {
    throw fail(e instanceof StateFileError ? e.reason : e instanceof Error ? e.message : String(e));
  }
  if (raw === null) return null; // no file: accept everything, as in Qubes
  const r = readFirewallXml(raw.toString('utf8'));
  if (!r.ok) throw fail(`${r.error.ruleIndex === undefined ? '' : `rule ${r.error.ruleIndex}: `}${r.error.message}`);
  return r.value.rules;
}

/** qubes.xml's text into a model (rules `null`: readQubesDir reads them). Throws a QnetError. */
export function qubesFromXml(text: string, file = 'qubes.xml'): ImportedQubes {
  const root = parseXml(text, file);
  return buildModel(root, file);
}

// ---- XML ------------------------------------------------------------------------------------------

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

function parseXml(src: string, file: string): XNode {
  const text = src.charCodeAt(0) === 0xfeff ? src.slice(1) : src;
  const bad = (message: string) => new QnetError(diag(IMPORT_XML, oneLine(`${file}: ${message}`), { file }));
  // A DTD is where entity attacks live (external entities, exponential expansion), and Qubes never
  // writes one: refused before the parser sees the text, wherever it stands.
  const dtd = /<!(DOCTYPE|ENTITY)/i.exec(text);
  if (dtd) throw bad(`has a DTD (<!${dtd[1]!.toUpperCase()} at line ${lineOf(text, dtd.index)}); qnet refuses one: Qubes never writes it`);
  const ch = BAD_CHAR_RE.exec(text);
  if (ch) throw bad(`not well-formed XML: character U+${ch[0].charCodeAt(0).toString(16).padStart(4, '0')} at line ${lineOf(text, ch.index)}`);
  const ref = BAD_REF_RE.exec(text);
  if (ref) throw bad(`not well-formed XML: '&' that is not an entity XML defines or a character reference (line ${lineOf(text, ref.index)})`);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) throw bad(`not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`);
  let doc: unknown;
  try {
    doc = PARSER.parse(text);
  } catch (e) {
    throw bad(`not well-formed XML: ${e instanceof Error ? e.message : String(e)}`);
  }
  const top = elements(doc as Ordered);
  if (top.elements.length !== 1) throw bad(`not well-formed XML: ${top.elements.length} root elements`);
  const root = top.elements[0]!;
  if (root.name !== 'qubes') throw new QnetError(diag(IMPORT_INVALID, oneLine(`${file}: the root element is <${root.name}>, not <qubes>`), { file }));
  return root;
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const REF_RE = /&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));/g;

/**
 * XML's five entities and character references, and nothing else: entities a document declares
 * are never added (a DTD never reaches the parser anyway). A reference to a character XML forbids
 * throws, and the parse fails.
 */
const XML_REFS_ONLY: EntityDecoderOptions = {
  setExternalEntities: () => undefined,
  addInputEntities: () => undefined,
  reset: () => undefined,
  setXmlVersion: () => undefined,
  decode: (s) =>
    s.indexOf('&') < 0
      ? s
      : s.replace(REF_RE, (_m, named: string | undefined, dec: string | undefined, hex: string | undefined) => {
          if (named) return PREDEFINED[named]!;
          const c = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
          const allowed = c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
          if (!allowed) throw new Error(`character reference ${_m} is not an XML character`);
          return String.fromCodePoint(c);
        }),
};

// preserveOrder keeps every element in a list (one shape for one child or many); no value is
// converted (a name like `1e3` stays text); references are decoded by XML_REFS_ONLY.
const PARSER = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  allowBooleanAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  entityDecoder: XML_REFS_ONLY,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 32,
});

type Ordered = Record<string, unknown>[];

function elements(list: Ordered): { elements: XNode[]; text: string } {
  const out: XNode[] = [];
  let text = '';
  for (const item of list) {
    for (const key of Object.keys(item)) {
      if (key === ':@') continue;
      const v = item[key];
      if (key === '#text') {
        text += String(v);
        continue;
      }
      const attrs = (item[':@'] ?? {}) as Record<string, unknown>;
      const sub = elements(Array.isArray(v) ? (v as Ordered) : []);
      out.push({ name: key, attrs: new Map(Object.entries(attrs).map(([k, a]) => [k, String(a)])), children: sub.elements, text: sub.text });
    }
  }
  return { elements: out, text };
}

const childrenNamed = (n: XNode, name: string) => n.children.filter((c) => c.name === name);

// ---- qubes.xml → model ------------------------------------------------------------------------------

interface Domain {
  /** How messages name it: `domain 'work'`, else its id attribute, else its position. */
  where: string;
  klass: string;
  props: Map<string, string>;
  features: Map<string, string>;
}

class Problems {
  readonly list: string[] = [];
  constructor(readonly file: string) {}
  add(where: string, message: string): void {
    this.list.push(`${where}: ${message}`);
  }
  /** One line: the first problem, and how many more there are. */
  throwIfAny(): void {
    if (!this.list.length) return;
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more)` : '';
    const qube = /^domain '([^']+)'/.exec(this.list[0]!)?.[1];
    throw new QnetError(
      diag(IMPORT_INVALID, oneLine(`${this.file}: ${this.list[0]}${more}`), {
        file: this.file,
        ...(qube && validateQubeName(qube).ok ? { qube } : {}),
        hint: 'nothing was imported',
      }),
    );
  }
}

/** `<properties><property name=…>`: name → ref or text. A name given twice is a problem. */
function propertiesOf(n: XNode | undefined, where: string, p: Problems): Map<string, string> {
  const out = new Map<string, string>();
  if (!n) return out;
  for (const el of childrenNamed(n, 'property')) {
    const name = el.attrs.get('name');
    if (name === undefined) {
      p.add(where, 'a <property> without a name attribute');
      continue;
    }
    if (out.has(name)) p.add(where, `property '${name}' is given twice`);
    out.set(name, el.attrs.get('ref') || el.text);
  }
  return out;
}

/** qubes.property.bool: the words Qubes accepts, any case. */
function parseBool(v: string): boolean | undefined {
  const l = v.toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(l)) return true;
  if (['0', 'no', 'false', 'off'].includes(l)) return false;
  return undefined;
}

/** A decimal id within [min, max] as Qubes writes it (`str(int)`); else undefined. */
function parseId(v: string, min: number, max: number): number | undefined {
  if (!/^[0-9]{1,6}$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}

const show = (s: string) => `'${s.length > 64 ? s.slice(0, 64) + '…' : s}'`;

function buildModel(root: XNode, file: string): ImportedQubes {
  const p = new Problems(file);
  const warnings: Diagnostic[] = [];
  const leftOut = new Map<string, number>(); // property name → domains that had it
  const note = (name: string) => leftOut.set(name, (leftOut.get(name) ?? 0) + 1);

  // Labels: `label-N` → name.
  const labels = new Map<string, string>();
  const labelNames = new Set<string>();
  for (const el of root.children.filter((c) => c.name === 'labels').flatMap((l) => childrenNamed(l, 'label'))) {
    const id = el.attrs.get('id') ?? '';
    const name = el.text;
    if (!LABEL_ID_RE.test(id)) p.add('labels', `a label with id ${show(id)} (expected label-N)`);
    else if (!LABEL_NAME_RE.test(name)) p.add('labels', `${id} has the name ${show(name)}, not a label name`);
    else if (labels.has(id)) p.add('labels', `${id} is given twice`);
    else {
      labels.set(id, name);
      labelNames.add(name);
    }
  }

  const globals = propertiesOf(root.children.find((c) => c.name === 'properties'), 'global properties', p);
  for (const k of globals.keys()) if (k !== 'default_netvm') note(`global ${k}`);

  // Domains.
  const domains: Domain[] = [];
  const domainEls = root.children.filter((c) => c.name === 'domains').flatMap((d) => childrenNamed(d, 'domain'));
  domainEls.forEach((el, i) => {
    const id = el.attrs.get('id');
    const provisional = id !== undefined && /^domain-[0-9]{1,6}$/.test(id) ? id : `domain #${i + 1}`;
    const props = propertiesOf(el.children.find((c) => c.name === 'properties'), provisional, p);
    const name = props.get('name');
    const where = name !== undefined && validateQubeName(name).ok ? `domain '${name}'` : provisional;
    const features = new Map<string, string>();
    for (const f of el.children.filter((c) => c.name === 'features').flatMap((fs) => childrenNamed(fs, 'feature'))) {
      const fname = f.attrs.get('name') ?? '';
      if (!FEATURE_NAME_RE.test(fname)) p.add(where, `a feature named ${show(fname)}`);
      else if (features.has(fname)) p.add(where, `feature '${fname}' is given twice`);
      else if (Buffer.byteLength(f.text) > MAX_FEATURE_BYTES) p.add(where, `feature '${fname}' is longer than ${MAX_FEATURE_BYTES} bytes`);
      else features.set(fname, f.text);
    }
    domains.push({ where, klass: el.attrs.get('class') ?? '', props, features });
  });

  const qubes: Qube[] = [];
  const skipped: string[] = [];
  const byName = new Map<string, Domain>();
  const netvmRefs: [Qube, Domain, string][] = [];
  const templateRefs: [Domain, string][] = [];
  const byQid = new Map<number, string>();
  const byDispid = new Map<number, string>();
  for (const d of domains) {
    const { props, where } = d;
    if (d.klass === 'AdminVM') {
      // dom0: not a qube with a netvm here. Qubes does not even write its name (a class default).
      const n = props.get('name') || 'dom0';
      skipped.push(n);
      byName.set(n, d);
      continue;
    }
    const name = props.get('name');
    if (name === undefined || name === '') {
      p.add(where, 'has no name');
      continue;
    }
    if (byName.has(name)) {
      p.add(where, `the name '${name}' is also the name of another domain`);
      continue;
    }
    byName.set(name, d);
    if (!QUBE_CLASSES_XML.has(d.klass)) {
      p.add(where, `class ${show(d.klass)} is not one qnet imports (AppVM, DispVM, TemplateVM, StandaloneVM; AdminVM is skipped)`);
      continue;
    }
    const nameOk = validateQubeName(name);
    if (!nameOk.ok) {
      p.add(where, `${show(name)} is not a valid qube name (a letter first, then letters, digits, _ . -; at most 31 characters; not a reserved name)`);
      continue;
    }
    const klass = d.klass as QubeClass;
    const qidText = props.get('qid');
    const qid = qidText === undefined ? undefined : parseId(qidText, 1, 65535);
    if (qid === undefined) p.add(where, qidText === undefined ? 'has no qid' : `qid ${show(qidText)} is not a number 1-65535`);
    else if (byQid.has(qid)) p.add(where, `qid ${qid} is also the qid of '${byQid.get(qid)}'`);
    else byQid.set(qid, name);

    const label = resolveLabel(props.get('label'), labels, labelNames, where, p, warnings, file, name);

    let provides = false;
    const pn = props.get('provides_network');
    if (pn !== undefined) {
      const b = parseBool(pn);
      if (b === undefined) p.add(where, `provides_network ${show(pn)} is not a boolean`);
      else provides = b;
    }
    const ip = props.get('ip');
    if (ip !== undefined && !isIPv4(ip)) p.add(where, `ip ${show(ip)} is not an IPv4 address`);
    const ip6 = props.get('ip6');
    if (ip6 !== undefined && !isIPv6(ip6)) p.add(where, `ip6 ${show(ip6)} is not an IPv6 address`);

    let dispid: number | undefined;
    const dispText = props.get('dispid');
    if (klass === 'DispVM') {
      dispid = dispText === undefined ? undefined : parseId(dispText, 1, 65535);
      if (dispid === undefined) p.add(where, dispText === undefined ? 'is a DispVM without a dispid' : `dispid ${show(dispText)} is not a number 1-65535`);
      else if (byDispid.has(dispid)) p.add(where, `dispid ${dispid} is also the dispid of '${byDispid.get(dispid)}'`);
      else byDispid.set(dispid, name);
    } else if (dispText !== undefined) note('dispid (not a DispVM)');

    const tfd = props.get('template_for_dispvms');
    if (tfd !== undefined && parseBool(tfd) === undefined) p.add(where, `template_for_dispvms ${show(tfd)} is not a boolean`);
    const template = props.get('template');
    if (template !== undefined) templateRefs.push([d, template]);
    else if (klass === 'AppVM' || klass === 'DispVM') p.add(where, `is an ${klass} without a template`);

    for (const k of props.keys()) if (!KEPT.has(k)) note(k);

    const q: Qube = { qid: qid ?? 0, name, klass, label, provides_network: provides, state: 'Halted', features: Object.fromEntries(d.features), rules: null };
    if (ip !== undefined) q.ip = ip;
    if (ip6 !== undefined) q.ip6 = ip6;
    if (dispid !== undefined) q.dispid = dispid;
    const netvm = props.get('netvm');
    if (netvm !== undefined) netvmRefs.push([q, d, netvm]);
    for (const f of UNHONOURED_FEATURES)
      if (d.features.get(f)) warnings.push(left(file, name, `feature ${f} is kept but qnet does not honour it: the qube uses its real addresses`));
    qubes.push(q);
  }
  p.throwIfAny();

  // References, now that every domain is known.
  const imported = new Map(qubes.map((q) => [q.name, q]));
  const refProblem = (target: string) =>
    !validateQubeName(target).ok && !skipped.includes(target)
      ? `${show(target)} is not a qube name`
      : imported.has(target)
        ? undefined
        : byName.has(target)
          ? `'${target}' is ${byName.get(target)!.klass === 'AdminVM' ? 'dom0 (AdminVM), which qnet does not import' : 'a domain that was not imported'}`
          : `'${target}' names no domain in qubes.xml`;
  for (const [q, d, target] of netvmRefs) {
    if (target === '') {
      q.netvm = null;
      continue;
    }
    const why = refProblem(target);
    if (why) p.add(d.where, `netvm ${why}`);
    else q.netvm = target;
  }
  for (const [d, target] of templateRefs) {
    // A template that is not in the copy: partial input (qnet keeps no template, but Qubes could not load this).
    if (!byName.has(target)) p.add(d.where, `template '${oneLine(target).slice(0, 64)}' names no domain in qubes.xml`);
  }
  let default_netvm: string | null = null;
  const dn = globals.get('default_netvm');
  if (dn !== undefined && dn !== '') {
    const why = refProblem(dn);
    if (why) p.add('global properties', `default_netvm ${why}`);
    else if (!imported.get(dn)!.provides_network) p.add('global properties', `default_netvm '${dn}' does not provide network`);
    else default_netvm = dn;
  }
  p.throwIfAny();

  const model: Model = { default_netvm, qubes: new Map([...qubes].sort((a, b) => a.qid - b.qid).map((q) => [q.name, q])) };
  // The graph: netvms that provide network, no loops (Qubes' own setter rules).
  for (const d of checkTopology(model)) p.add(d.qube ? `domain '${d.qube}'` : 'domains', `netvm: ${d.message}`);
  // Two qubes with one address would make every answer about either of them wrong.
  const byIp = new Map<string, string>();
  for (const q of model.qubes.values()) {
    const ip = qubeIp(model, q);
    if (ip === null) continue;
    const other = byIp.get(ip);
    if (other !== undefined) p.add(`domain '${q.name}'`, `address ${ip} is also the address of '${other}'`);
    byIp.set(ip, q.name);
  }
  p.throwIfAny();
  // Whatever else qubes.json would refuse (the store's own checks, so an import never writes a file qnet cannot read).
  const issues = checkModel(model);
  if (issues.length) throw new QnetError({ ...issues[0]!, code: IMPORT_INVALID, message: oneLine(`${file}: ${issues[0]!.message}`), file });

  if (leftOut.size) {
    const names = [...leftOut.keys()].sort();
    warnings.push(
      warning(IMPORT_LEFT_OUT, `${file}: left out (qnet has no field for them): ${names.join(', ')}`, {
        file,
        hint: 'templates are kept as classes only; rules, netvms, addresses, labels and features are imported',
      }),
    );
  }
  // R4.1 numbers ids of 255 and more differently (prefix.(id>>8).(id&255)); qnet follows R4.2.
  const big = [...model.qubes.values()].filter((q) => q.ip === undefined && (q.klass === 'DispVM' ? (q.dispid ?? 0) : q.qid) >= 255 && qubeIp(model, q) !== null);
  if (big.length)
    warnings.push(
      warning(IMPORT_LEFT_OUT, `${file}: ${big.map((q) => `${q.name} ${qubeIp(model, q)}`).slice(0, 5).join(', ')}${big.length > 5 ? ', …' : ''}: addresses as R4.2 gives them; R4.1 gives ids from 255 on other addresses`, {
        file,
        hint: 'set ip by hand (qnet prefs VM ip ADDR) where the Qubes system is R4.1',
      }),
    );
  return { model, warnings, skipped };
}

function left(file: string, qube: string, message: string): Diagnostic {
  return warning(IMPORT_LEFT_OUT, `${file}: domain '${qube}': ${message}`, { file, qube });
}

/**
 * A label value: `label-N` through <labels> (what Qubes writes), or a label's name (what
 * setter_label also accepts). A label qnet does not have (a user-defined one) becomes gray, with a warning.
 */
function resolveLabel(
  value: string | undefined,
  labels: Map<string, string>,
  labelNames: Set<string>,
  where: string,
  p: Problems,
  warnings: Diagnostic[],
  file: string,
  qube: string,
): Label {
  if (value === undefined) {
    p.add(where, 'has no label');
    return 'gray';
  }
  let name: string | undefined;
  if (LABEL_ID_RE.test(value)) {
    name = labels.get(value);
    if (name === undefined) p.add(where, `label '${value}' is not in <labels>`);
  } else if (labelNames.has(value) || (LABELS as readonly string[]).includes(value)) name = value;
  else p.add(where, `label ${show(value)} is neither a label-N reference nor a label's name`);
  if (name === undefined) return 'gray';
  if ((LABELS as readonly string[]).includes(name)) return name as Label;
  warnings.push(left(file, qube, `label '${name}' is not one of qnet's labels (${LABELS.join(', ')}): imported as gray`));
  return 'gray';
}
