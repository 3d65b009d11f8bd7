// qubes.xml → model, on small documents: how values are read (ref or text, entities, CDATA, empty
// and absent properties), labels, and the parser's refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QnetError } from '../model/result.js';
import { qubesFromXml } from './qubes-xml.js';

const LABELS = '<labels><label color="0xcc0000" id="label-1">red</label><label color="0x73d216" id="label-4">green</label><label color="0xabcdef" id="label-9">teal</label></labels>';
const dom = (qid: number, klass: string, props: string, features = '') =>
  `<domain id="domain-${qid}" class="${klass}"><properties><property name="qid">${qid}</property>${props}</properties><features>${features}</features></domain>`;
const doc = (domains: string, globals = '<property name="default_netvm">net</property>') =>
  `<qubes>${LABELS}<properties>${globals}</properties><domains>` +
  '<domain id="domain-0" class="AdminVM"><properties><property name="label">label-8</property></properties></domain>' +
  dom(1, 'TemplateVM', '<property name="name">tpl</property><property name="label">label-1</property><property name="netvm"/>') +
  dom(2, 'AppVM', '<property name="name">net</property><property name="label" ref="label-1"/><property name="netvm"></property><property name="provides_network">True</property><property name="template">tpl</property>') +
  domains +
  '</domains></qubes>';

function refused(text: string): string {
  try {
    qubesFromXml(text, 'q.xml');
  } catch (e) {
    assert.ok(e instanceof QnetError, String(e));
    return `${e.diag.code} ${e.diag.message}`;
  }
  assert.fail('accepted');
}

test('values: ref or text, an empty netvm is none, an absent one follows default_netvm; entities and CDATA decoded', () => {
  const r = qubesFromXml(
    doc(
      dom(3, 'AppVM', '<property name="name">work</property><property name="label">green</property><property name="template">tpl</property>', '<feature name="note">a&amp;b &#x263A;<![CDATA[<x>]]></feature><feature name="ipv6">1</feature>') +
        dom(4, 'AppVM', '<property name="name">odd</property><property name="label">label-9</property><property name="netvm">net</property><property name="template">tpl</property>'),
    ),
    'q.xml',
  );
  const m = r.model;
  assert.deepEqual(r.skipped, ['dom0']);
  assert.equal(m.default_netvm, 'net');
  assert.equal(m.qubes.get('tpl')!.netvm, null, '<property name="netvm"/> is none');
  assert.equal(m.qubes.get('net')!.label, 'red', 'label by ref=');
  assert.equal(m.qubes.get('work')!.netvm, undefined, 'absent: follows default_netvm');
  assert.equal(m.qubes.get('work')!.label, 'green', "a label's name, as setter_label accepts");
  assert.deepEqual(m.qubes.get('work')!.features, { note: 'a&b \u263a<x>', ipv6: '1' });
  assert.equal(m.qubes.get('odd')!.label, 'gray', 'a label qnet does not have');
  assert.ok(r.warnings.some((w) => w.code === 'QNET3305' && /label 'teal' is not one of qnet's labels/.test(w.message)));
  assert.deepEqual([...m.qubes.keys()], ['tpl', 'net', 'work', 'odd'], 'in qid order');
});

test('the parser refuses what is not plain XML, in one line with the file', () => {
  assert.match(refused('<qubes><domains></qubes>'), /^QNET3302 q\.xml: not well-formed XML: .*line 1/);
  assert.match(refused('<!DOCTYPE qubes SYSTEM "http://203.0.113.1/x.dtd"><qubes/>'), /^QNET3302 q\.xml: has a DTD/);
  assert.match(refused('<qubes>&#0;</qubes>'), /^QNET3302 .*not an XML character/);
  assert.match(refused('<qubes>\u0001</qubes>'), /^QNET3302 .*character U\+0001/);
  assert.match(refused('<qubes/><qubes/>'), /^QNET3302/);
  assert.match(refused('<other/>'), /^QNET3303 q\.xml: the root element is <other>/);
  // Names that would be object keys elsewhere are only ever Map keys or refused.
  assert.match(refused('<qubes><__proto__/></qubes>'), /^QNET3302/);
  assert.match(refused(`<qubes>${'<a>'.repeat(40)}${'</a>'.repeat(40)}</qubes>`), /^QNET3302/);
});

test('properties and references are checked', () => {
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">work</property><property name="label">label-1</property><property name="name">again</property><property name="template">tpl</property>'))), /domain-3: property 'name' is given twice/);
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">work</property><property name="label">label-1</property><property name="provides_network">maybe</property><property name="template">tpl</property>'))), /domain 'work': provides_network 'maybe' is not a boolean/);
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">work</property><property name="label">label-1</property><property name="netvm">work</property><property name="provides_network">True</property><property name="template">tpl</property>'))), /domain 'work': netvm: loops in network/);
  assert.match(refused(doc('', '<property name="default_netvm">tpl</property>')), /global properties: default_netvm 'tpl' does not provide network/);
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">none</property><property name="label">label-1</property><property name="template">tpl</property>'))), /'none' is not a valid qube name/);
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">work</property><property name="template">tpl</property>'))), /domain 'work': has no label/);
  assert.match(refused(doc(dom(3, 'AppVM', '<property name="name">work</property><property name="label">label-1</property><property name="template">tpl</property>', '<feature name="a b">1</feature>'))), /domain 'work': a feature named 'a b'/);
});
