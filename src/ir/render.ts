// nft text for IR fragments: the one place where nft syntax is written (DESIGN.md: "nft text is
// produced in one place"). The transaction (transaction.ts) strings these into commands.
// Syntax is what nft 1.0.6 (Debian 12) parses; `nft list` prints some things differently
// (`priority filter`, `icmp admin-prohibited`), which does not matter for loading.
import { assertNever } from '../model/result.js';
import type {
  BaseChainSpec,
  Chain,
  IrRule,
  Key,
  MapElement,
  Match,
  NamedMap,
  NamedSet,
  SetElement,
  Statement,
  Value,
  Verdict,
} from './types.js';

/** nft keeps at most 128 bytes of comment (NFT_USERDATA_MAXLEN). */
export const MAX_COMMENT_BYTES = 128;

/**
 * nft 1.0.6's scanner has no escape inside "…": a `"` would end the string, and a newline ends the
 * command. Both are replaced; the text is then cut to 128 bytes without splitting a UTF-8 sequence.
 */
export function sanitizeComment(text: string): string {
  let s = text.replace(/"/g, "'").replace(/[\u0000-\u001f\u007f\\]/g, ' ');
  // A UTF-16 unit is at most 3 UTF-8 bytes: short comments (all compiled ones) need no encoding,
  // which the diff would otherwise pay for every rule it compares.
  if (s.length * 3 <= MAX_COMMENT_BYTES) return s;
  const enc = new TextEncoder();
  if (enc.encode(s).length <= MAX_COMMENT_BYTES) return s;
  while (enc.encode(s).length > MAX_COMMENT_BYTES) s = [...s].slice(0, -1).join('');
  return s;
}

export const renderComment = (text: string | undefined): string =>
  text === undefined ? '' : ` comment "${sanitizeComment(text)}"`;

export function renderValue(v: Value): string {
  switch (v.kind) {
    case 'int':
      return String(v.n);
    case 'sym':
      return v.s;
    case 'addr':
      return v.len === undefined ? v.addr : `${v.addr}/${v.len}`;
    case 'range':
      return v.lo === v.hi ? String(v.lo) : `${v.lo}-${v.hi}`;
    case 'str':
      return `"${v.s}"`;
    case 'wildcard':
      return `"${v.prefix}*"`;
    case 'ct':
      return v.states.join(',');
    default:
      return assertNever(v, 'value kind');
  }
}

export const renderKey = (k: Key): string => (Array.isArray(k) ? k.map(renderValue).join(' . ') : renderValue(k));

const op = (o: '==' | '!='): string => (o === '==' ? '' : '!= ');

export function renderMatch(m: Match): string {
  switch (m.kind) {
    case 'cmp':
      return `${m.field} ${op(m.op)}${renderValue(m.value)}`;
    case 'in-anon':
      return `${m.field} ${op(m.op)}{ ${m.values.map(renderValue).join(', ')} }`;
    case 'in-set':
      return `${m.fields.join(' . ')} ${op(m.op)}@${m.set}`;
    default:
      return assertNever(m, 'match kind');
  }
}

export function renderVerdict(v: Verdict): string {
  switch (v.kind) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      return v.kind;
    case 'jump':
    case 'goto':
      return `${v.kind} ${v.chain}`;
    case 'reject': {
      const w = v.with;
      if (!w) return 'reject';
      if (w.type === 'tcp reset') return 'reject with tcp reset';
      return `reject with ${w.type} type ${w.code}`;
    }
    default:
      return assertNever(v, 'verdict kind');
  }
}

export function renderStatement(s: Statement): string {
  switch (s.kind) {
    case 'counter':
      return 'counter';
    case 'log':
      return ['log', ...(s.prefix === undefined ? [] : [`prefix "${sanitizeComment(s.prefix)}"`]), ...(s.group === undefined ? [] : [`group ${s.group}`]), ...(s.queueThreshold === undefined ? [] : [`queue-threshold ${s.queueThreshold}`])].join(' ');
    case 'limit':
      return `limit rate ${s.rate}/${s.per} burst ${s.burst} packets`;
    case 'dnat': {
      const fam = s.family ? `${s.family} ` : '';
      const addr = s.port === undefined ? s.addr : s.addr.includes(':') ? `[${s.addr}]:${s.port}` : `${s.addr}:${s.port}`;
      return `dnat ${fam}to ${addr}`;
    }
    case 'masquerade':
      return 'masquerade';
    case 'vmap':
      return `${s.fields.join(' . ')} vmap @${s.map}`;
    case 'verdict':
      return renderVerdict(s.verdict);
    default:
      return assertNever(s, 'statement kind');
  }
}

/** The body of one rule: matches, statements, comment. An empty rule cannot be loaded: `continue`. */
export function renderRuleBody(r: IrRule): string {
  const parts = [...r.matches.map(renderMatch), ...r.stmts.map(renderStatement)];
  if (parts.length === 0) parts.push('continue');
  return parts.join(' ') + renderComment(r.comment);
}

export function renderBaseSpec(b: BaseChainSpec): string {
  return `type ${b.type} hook ${b.hook} priority ${b.priority}; policy ${b.policy};`;
}

/** `{ type …; policy …; comment "…"; }` or '' for a plain regular chain. */
export function renderChainSpec(c: Chain): string {
  const parts: string[] = [];
  if (c.base) parts.push(renderBaseSpec(c.base));
  if (c.comment !== undefined) parts.push(`comment "${sanitizeComment(c.comment)}";`);
  return parts.length ? ` { ${parts.join(' ')} }` : '';
}

/** `{ type …; flags …; comment "…"; elements = { … }; }`: the elements given are declared with the set. */
export function renderSetSpec(s: NamedSet | NamedMap, elements?: readonly (SetElement | MapElement)[]): string {
  const type = s.keyType.join(' . ') + (s.kind === 'map' ? ` : ${s.valueType}` : '');
  const parts = [`type ${type};`];
  if (s.interval) parts.push('flags interval;');
  if (s.comment !== undefined) parts.push(`comment "${sanitizeComment(s.comment)}";`);
  if (elements?.length) parts.push(`elements = { ${elements.map((e) => renderElement(e, s.kind === 'map')).join(', ')} };`);
  return ` { ${parts.join(' ')} }`;
}

export function renderElement(e: SetElement | MapElement, withValue: boolean): string {
  const key = renderKey(e.key) + renderComment(e.comment);
  const me = e as MapElement;
  return withValue && me.verdict ? `${key} : ${renderVerdict(me.verdict)}` : key;
}

/** Identity of an element in a set or map: its key (a key appears at most once). */
export const elementKey = (e: SetElement | MapElement): string => renderKey(e.key);

/** Everything about an element the kernel shows: key, value and comment (a change = delete + add). */
export const elementText = (e: SetElement | MapElement): string => renderElement(e, true);
