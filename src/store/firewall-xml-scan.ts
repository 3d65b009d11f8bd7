// A small, strict, linear XML reader for firewall.xml. fast-xml-parser 5 needs about 5 s for a
// 100,000-rule file (32 MB) on the dev machine, so qnet reads this one simple format itself:
// elements, attributes, text, CDATA, comments and processing instructions, the five predefined
// entities and character references. DOCTYPE (and so custom entities) is refused: Qubes never
// writes one, and it is where XML's expansion attacks live. Errors carry line and column.
import { err, ok, type Result } from '../model/result.js';

export interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  /**
   * Character data (text and CDATA, references decoded) before the first child element, like
   * lxml's `.text`. Text after a child is not kept: only leaf values are ever read.
   */
  text: string;
}

export interface XmlSyntaxError {
  message: string;
  line: number;
  column: number;
}

const NO_ATTRS: Map<string, string> = new Map();
const NO_CHILDREN: XmlElement[] = [];
const NAME = '[A-Za-z_:][-A-Za-z0-9_.:]*';
const START_TAG_RE = new RegExp(`<(${NAME})`, 'y');
const ATTR_RE = new RegExp(`[ \\t\\r\\n]+(${NAME})[ \\t\\r\\n]*=[ \\t\\r\\n]*(?:"([^"<]*)"|'([^'<]*)')`, 'y');
const TAG_END_RE = /[ \t\r\n]*(\/?)>/y;
const END_TAG_RE = new RegExp(`</(${NAME})[ \\t\\r\\n]*>`, 'y');
const WS_ONLY_RE = /^[ \t\r\n]*$/;
// Characters XML 1.0 forbids anywhere (lxml refuses them too).
const BAD_CHAR_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
const ENTITY_RE = /&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

class ScanError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export function scanXml(src: string): Result<XmlElement, XmlSyntaxError> {
  try {
    return ok(scan(src));
  } catch (e) {
    if (!(e instanceof ScanError)) throw e;
    const before = src.slice(0, e.offset);
    const line = before.split('\n').length;
    return err({ message: e.message, line, column: e.offset - before.lastIndexOf('\n') });
  }
}

function scan(src: string): XmlElement {
  let pos = src.charCodeAt(0) === 0xfeff ? 1 : 0;
  const start = pos;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const n = src.length;
  while (pos < n) {
    const lt = src.indexOf('<', pos);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > pos) {
      const top = stack[stack.length - 1];
      if (top) {
        if (top.children === NO_CHILDREN) top.text += decode(src, pos, textEnd);
      } else if (!WS_ONLY_RE.test(src.slice(pos, textEnd))) throw new ScanError('text outside the root element', pos);
    }
    if (lt < 0) break;
    const c1 = src.charCodeAt(lt + 1);
    if (c1 === 0x21 /* ! */) {
      if (src.startsWith('<!--', lt)) {
        const end = src.indexOf('-->', lt + 4);
        if (end < 0) throw new ScanError('unterminated comment', lt);
        pos = end + 3;
      } else if (src.startsWith('<![CDATA[', lt)) {
        const top = stack[stack.length - 1];
        if (!top) throw new ScanError('CDATA outside the root element', lt);
        const end = src.indexOf(']]>', lt + 9);
        if (end < 0) throw new ScanError('unterminated CDATA section', lt);
        if (top.children === NO_CHILDREN) top.text += checkChars(normalizeNewlines(src.slice(lt + 9, end)), lt + 9);
        pos = end + 3;
      } else {
        throw new ScanError('DOCTYPE and other declarations are not supported', lt);
      }
      continue;
    }
    if (c1 === 0x3f /* ? */) {
      const end = src.indexOf('?>', lt + 2);
      if (end < 0) throw new ScanError('unterminated processing instruction', lt);
      if (/^<\?xml[ \t\r\n?]/i.test(src.slice(lt, lt + 6)) && lt !== start) {
        throw new ScanError('the XML declaration must come first', lt);
      }
      pos = end + 2;
      continue;
    }
    if (c1 === 0x2f /* / */) {
      END_TAG_RE.lastIndex = lt;
      const m = END_TAG_RE.exec(src);
      if (!m) throw new ScanError('malformed end tag', lt);
      const top = stack.pop();
      if (!top) throw new ScanError(`end tag </${m[1]}> without a start tag`, lt);
      if (top.name !== m[1]) throw new ScanError(`end tag </${m[1]}> does not match <${top.name}>`, lt);
      pos = END_TAG_RE.lastIndex;
      continue;
    }
    START_TAG_RE.lastIndex = lt;
    const m = START_TAG_RE.exec(src);
    if (!m) throw new ScanError("'<' that does not start a tag (write &lt;)", lt);
    if (root && stack.length === 0) throw new ScanError('a second root element', lt);
    // Most elements have no attributes and many no children: share empty ones (GC at 100k rules).
    const el: XmlElement = { name: m[1]!, attrs: NO_ATTRS, children: NO_CHILDREN, text: '' };
    let p = START_TAG_RE.lastIndex;
    for (;;) {
      ATTR_RE.lastIndex = p;
      const a = ATTR_RE.exec(src);
      if (!a) break;
      if (el.attrs === NO_ATTRS) el.attrs = new Map();
      else if (el.attrs.has(a[1]!)) throw new ScanError(`attribute '${a[1]}' given twice`, p);
      const raw = a[2] ?? a[3]!;
      el.attrs.set(a[1]!, attrValue(raw, ATTR_RE.lastIndex - raw.length - 1));
      p = ATTR_RE.lastIndex;
    }
    TAG_END_RE.lastIndex = p;
    const e = TAG_END_RE.exec(src);
    if (!e) throw new ScanError(`malformed start tag <${el.name}>`, p);
    pos = TAG_END_RE.lastIndex;
    const parent = stack[stack.length - 1];
    if (parent) {
      if (parent.children === NO_CHILDREN) parent.children = [];
      parent.children.push(el);
    }
    else root = el;
    if (e[1] !== '/') stack.push(el);
  }
  if (stack.length > 0) throw new ScanError(`<${stack[stack.length - 1]!.name}> is not closed`, n);
  if (!root) throw new ScanError('no root element', n);
  return root;
}

/** XML 1.0 forbids most control characters (lxml refuses them); checked where values are kept. */
function checkChars(s: string, from: number): string {
  const bad = BAD_CHAR_RE.exec(s);
  if (bad) throw new ScanError(`character U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')} is not allowed in XML`, from + bad.index);
  return s;
}

function normalizeNewlines(s: string): string {
  return s.indexOf('\r') < 0 ? s : s.replace(/\r\n?/g, '\n');
}

/** Character data from src[from, to): references decoded, literal newlines normalised (§2.11). */
function decode(src: string, from: number, to: number): string {
  const raw = checkChars(src.slice(from, to), from);
  if (raw.indexOf('&') < 0) return normalizeNewlines(raw);
  return decodeRefs(raw, from, normalizeNewlines);
}

/** Attribute-value normalisation (XML 1.0 §3.3.3): literal tab and newline become a space. */
function attrValue(raw: string, from: number): string {
  checkChars(raw, from);
  if (!/[&\t\r\n]/.test(raw)) return raw;
  return decodeRefs(raw, from, (s) => normalizeNewlines(s).replace(/[\t\n]/g, ' '));
}

/** Decode references in `raw`; `literal` rewrites the text between them (a `&#13;` stays a CR). */
function decodeRefs(raw: string, from: number, literal: (s: string) => string): string {
  let out = '';
  let last = 0;
  for (let i = raw.indexOf('&'); i >= 0; i = raw.indexOf('&', last)) {
    out += literal(raw.slice(last, i));
    ENTITY_RE.lastIndex = i;
    const m = ENTITY_RE.exec(raw);
    if (!m) throw new ScanError("'&' that is not a character or entity reference (write &amp;)", from + i);
    if (m[1]) out += PREDEFINED[m[1]]!;
    else {
      const code = m[2] !== undefined ? Number(m[2]) : parseInt(m[3]!, 16);
      if (!isXmlChar(code)) throw new ScanError(`character reference ${m[0]} is not an XML character`, from + i);
      out += String.fromCodePoint(code);
    }
    last = ENTITY_RE.lastIndex;
  }
  return out + literal(raw.slice(last));
}

function isXmlChar(c: number): boolean {
  return (
    c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff)
  );
}
