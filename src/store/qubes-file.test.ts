import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLayout, newQube } from '../model/layout.js';
import type { Model } from '../model/qube.js';
import { checkModel, formatQubesFile, parseQubesFile, QUBES_JSON_INVALID, QUBES_JSON_SYNTAX } from './qubes-file.js';

function withoutRules(m: Model): Model {
  return { default_netvm: m.default_netvm, qubes: new Map([...m.qubes].map(([k, q]) => [k, { ...q, rules: null }])) };
}

function messages(text: string, file = '/s/qubes.json'): string[] {
  const r = parseQubesFile(text, file);
  assert.equal(r.ok, false);
  return r.ok ? [] : r.error.map((d) => d.message);
}

const doc = (qubes: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ version: 1, default_netvm: null, qubes, ...extra });
const good = { qid: 1, name: 'work', class: 'AppVM', label: 'blue', provides_network: false, state: 'Halted', features: {} };

test('the default layout round-trips, sorted by qid, 2-space JSON with a trailing newline', () => {
  const m = defaultLayout();
  m.qubes.get('work')!.rules = [{ action: 'accept' }]; // rules are not in this file
  const text = formatQubesFile(m);
  assert.ok(text.endsWith('}\n'));
  assert.ok(text.startsWith('{\n  "version": 1,\n  "default_netvm": "sys-firewall",\n  "qubes": [\n    {\n      "qid": 1,'));
  assert.ok(!text.includes('rules'));
  const r = parseQubesFile(text);
  assert.ok(r.ok);
  assert.deepEqual(r.value, withoutRules(defaultLayout()));
  assert.equal(formatQubesFile(r.value), text);
});

test('output depends on the data only: map order and feature order do not matter', () => {
  const a = defaultLayout();
  const b: Model = { default_netvm: a.default_netvm, qubes: new Map([...a.qubes].reverse()) };
  a.qubes.get('work')!.features = { b: '1', a: '' };
  b.qubes.get('work')!.features = { a: '', b: '1' };
  assert.equal(formatQubesFile(a), formatQubesFile(b));
  const r = parseQubesFile(formatQubesFile(b));
  assert.ok(r.ok);
  assert.deepEqual([...r.value.qubes.values()].map((q) => q.qid), [1, 2, 3, 4, 5, 6]);
});

test('netvm: absent follows the default, null is none, a name is kept; optional fields round-trip', () => {
  const m: Model = {
    default_netvm: 'fw',
    qubes: new Map([
      ['a', newQube(3, 'a', 'red')],
      ['b', newQube(4, 'b', 'red', { netvm: null })],
      ['c', newQube(5, 'c', 'red', { netvm: 'fw', ip: '10.137.0.99', ip6: 'fd09:24ef:4179::a89:5' })],
      ['d', newQube(6, 'd', 'gray', { klass: 'DispVM', dispid: 12, state: 'Running', features: { ipv6: '1' } })],
      ['fw', newQube(2, 'fw', 'green', { provides_network: true, klass: 'StandaloneVM' })],
      ['t', newQube(7, 't', 'black', { klass: 'TemplateVM' })],
    ]),
  };
  const text = formatQubesFile(m);
  assert.match(text, /"name": "a",\n\s+"class": "AppVM",\n\s+"label": "red",\n\s+"provides_network"/);
  assert.match(text, /"name": "b",\n\s+"class": "AppVM",\n\s+"label": "red",\n\s+"netvm": null,/);
  const r = parseQubesFile(text);
  assert.ok(r.ok);
  assert.deepEqual(r.value.qubes.get('a'), m.qubes.get('a'));
  assert.equal('netvm' in r.value.qubes.get('a')!, false);
  for (const name of ['b', 'c', 'd', 'fw', 't']) assert.deepEqual(r.value.qubes.get(name), m.qubes.get(name));
  assert.equal(r.value.default_netvm, 'fw');
});

test('each error names the file and the JSON path', () => {
  const qubes = [
    good,
    { ...good, qid: 2, name: 'b' },
    { ...good, qid: 3, name: 'c' },
    { ...good, qid: 4, name: 'd', label: 'pink' },
  ];
  assert.deepEqual(messages(doc(qubes)), [
    "/s/qubes.json: qubes[3].label: 'pink' is not a label (red, orange, yellow, green, gray, blue, purple, black)",
  ]);
});

test('every problem is reported, not just the first', () => {
  const qubes = [
    good,
    { ...good, name: 'work' },
    { ...good, qid: 2, name: '1bad', class: 'HVM', state: 'Paused', provides_network: 'yes', extra: 1 },
    { ...good, qid: 3, name: 'x', netvm: 'no/slash', ip: '10.137.0.300', ip6: 'nope', dispid: -1, features: { a: 1 } },
    'not a qube',
  ];
  assert.deepEqual(messages(doc(qubes, { default_netvm: 7 }), 'q.json'), [
    'q.json: default_netvm: 7 is not a qube name or null',
    "q.json: qubes[1].name: 'work' is also the name of qubes[0]",
    'q.json: qubes[1].qid: 1 is also the qid of qubes[0]',
    'q.json: qubes[2].extra: unknown property (known: qid, name, class, label, netvm, provides_network, ip, ip6, dispid, state, autostart, features)',
    "q.json: qubes[2].name: '1bad' is not a valid qube name (a letter first, then letters, digits, _ . -; at most 31 characters; not a reserved name)",
    "q.json: qubes[2].class: 'HVM' is not a class (AppVM, DispVM, TemplateVM, StandaloneVM)",
    "q.json: qubes[2].provides_network: expected true or false, got string 'yes'",
    "q.json: qubes[2].state: 'Paused' is not a state (Halted, Running)",
    "q.json: qubes[3].netvm: 'no/slash' is not a qube name or null (leave it out to follow default_netvm)",
    "q.json: qubes[3].ip: '10.137.0.300' is not an IPv4 address",
    "q.json: qubes[3].ip6: 'nope' is not an IPv6 address",
    'q.json: qubes[3].dispid: -1 is not a dispid (an integer 0–65535)',
    'q.json: qubes[3].features.a: expected a string, got number 1',
    "q.json: qubes[4]: expected an object, got string 'not a qube'",
  ]);
});

test('names follow Qubes: letter first, letters/digits/_.-, at most 31 characters', () => {
  const name = (n: string) => parseQubesFile(doc([{ ...good, name: n }])).ok;
  assert.equal(name('a'.repeat(31)), true);
  assert.equal(name('a'.repeat(32)), false);
  assert.equal(name('sys-net_2.x'), true);
  for (const n of ['', '-a', '.a', 'a b', 'a/b', 'é', '..']) assert.equal(name(n), false, n);
});

test('not JSON, the wrong top level, the wrong version', () => {
  const r = parseQubesFile('{"version": 1,', '/s/qubes.json');
  assert.ok(!r.ok);
  assert.equal(r.error[0]!.code, QUBES_JSON_SYNTAX);
  assert.match(r.error[0]!.message, /^\/s\/qubes\.json: not valid JSON: /);
  assert.equal(r.error[0]!.file, '/s/qubes.json');
  assert.deepEqual(messages('[]', 'f'), ['f: (top level): expected an object, got an array']);
  assert.deepEqual(messages(doc([], { version: 2, qubez: [] }), 'f'), [
    'f: qubez: unknown property (known: version, default_netvm, uplink, qubes, connections, forwards)',
    'f: version: 2 is not a supported version (expected 1)',
  ]);
  assert.deepEqual(messages('{"version":1,"default_netvm":null}', 'f'), ['f: qubes: expected an array, got nothing']);
  const bad = parseQubesFile(doc([{ ...good, label: 'pink' }]));
  assert.ok(!bad.ok);
  assert.equal(bad.error[0]!.code, QUBES_JSON_INVALID);
});

test('checkModel: what the store refuses to write', () => {
  assert.deepEqual(checkModel(defaultLayout()), []);
  const m = defaultLayout();
  m.qubes.get('work')!.name = 'job';
  m.qubes.get('vault')!.label = 'pink' as never;
  m.qubes.get('personal')!.qid = 3;
  assert.deepEqual(
    checkModel(m).map((d) => d.message),
    [
      "qube 'job' is stored under the name 'work' (rename must re-key the map)",
      "invalid model: qubes[3].qid: 3 is also the qid of qubes[2]",
      "invalid model: qubes[5].label: 'pink' is not a label (red, orange, yellow, green, gray, blue, purple, black)",
    ],
  );
});

test('a hand-edited netvm that is missing, provides no network, or loops is a broken file', async () => {
  const { parseQubesFile } = await import('./qubes-file.js');
  const q = (qid: number, name: string, extra: object = {}) => ({ qid, name, class: 'AppVM', label: 'red', provides_network: false, state: 'Halted', features: {}, ...extra });
  const file = (qubes: object[]) => JSON.stringify({ version: 1, default_netvm: null, qubes });
  const bad = (qubes: object[]) => {
    const r = parseQubesFile(file(qubes), 'f');
    assert.equal(r.ok, false);
    return r.ok ? '' : r.error.map((d) => d.message).join('; ');
  };
  assert.match(bad([q(1, 'work', { netvm: 'nosuch' })]), /qubes\[0\]\.netvm: no such qube 'nosuch'/);
  assert.match(bad([q(1, 'work', { netvm: 'personal' }), q(2, 'personal')]), /'personal' does not provide network/);
  assert.match(bad([q(1, 'a', { netvm: 'b', provides_network: true }), q(2, 'b', { netvm: 'a', provides_network: true })]), /loops in network/);
  assert.equal(parseQubesFile(file([q(1, 'net', { netvm: null, provides_network: true }), q(2, 'work', { netvm: 'net' })]), 'f').ok, true);
});

test('connections and forwards round-trip in id order, and are absent when there are none', () => {
  const m = defaultLayout();
  assert.ok(!formatQubesFile(m).includes('connections'));
  m.connections = [
    { id: 'c10', from: 'work', to: 'personal', bothWays: true },
    { id: 'c2', from: 'personal', to: 'work', proto: 'tcp', ports: { start: 22, end: 23 }, bothWays: false, comment: 'ssh' },
  ];
  m.forwards = [{ id: 'f1', qube: 'work', proto: 'udp', port: 53, toPort: 5353, from: ['192.0.2.0/24'], on: ['eth0'] }];
  const text = formatQubesFile(m);
  const r = parseQubesFile(text);
  assert.ok(r.ok);
  assert.deepEqual(r.value.connections!.map((c) => c.id), ['c2', 'c10']);
  assert.deepEqual(r.value.connections![0], m.connections[1]);
  assert.deepEqual(r.value.forwards, m.forwards);
  assert.equal(formatQubesFile(r.value), text);
});

test('hostile connections and forwards are refused, each with one line naming the file', () => {
  const base = JSON.parse(formatQubesFile(defaultLayout())) as Record<string, unknown>;
  const hostile: Record<string, unknown>[] = [
    { connections: {} },
    { connections: [{ id: 'c1', from: 'work', to: 'personal', bothWays: false, extra: 1 }] },
    { connections: [{ id: 'c1', from: 'work\nx', to: 'personal', bothWays: false }] },
    { connections: [{ id: 'c1', from: 'work', to: 'ghost', bothWays: false }] },
    { connections: [{ id: 'c1', from: 'work', to: 'personal', proto: 'icmp', ports: { start: 1, end: 2 }, bothWays: false }] },
    { connections: [{ id: 'c1', from: 'work', to: 'personal', bothWays: false, comment: '\u001b[31m' }] },
    { forwards: [{ id: 'f1', qube: 'work', proto: 'tcp', port: 99999, from: [], on: [] }] },
    { forwards: [{ id: 'f1', qube: 'work', proto: 'tcp', port: 80, from: ['x; drop'], on: [] }] },
    { forwards: [{ id: 'f1', qube: 'work', proto: 'tcp', port: 80, from: [], on: ['"; flush ruleset'] }] },
    { forwards: [{ id: 'f1', qube: 'work', proto: 'tcp', port: 80, from: [], on: [] }, { id: 'f1', qube: 'personal', proto: 'tcp', port: 81, from: [], on: [] }] },
    { forwards: JSON.parse('[{"id":"f1","qube":"work","proto":"tcp","port":80,"from":[],"on":[],"__proto__":{"x":1}}]') },
  ];
  for (const h of hostile) {
    const ms = messages(JSON.stringify({ ...base, ...h }), '/s/qubes.json');
    assert.ok(ms.length >= 1, JSON.stringify(h));
    for (const m of ms) {
      assert.ok(m.startsWith('/s/qubes.json: '), m);
      assert.ok(!/[\n\x1b]/.test(m), `one line: ${JSON.stringify(m)}`);
    }
  }
});
