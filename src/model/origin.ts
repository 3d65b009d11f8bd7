// Where a kernel rule came from, as data. The compiler puts formatOrigin(origin) in the rule's nft
// comment; whoever reads the kernel back (counters, the drop feed) gets the same value from
// parseOrigin, so no caller ever matches prose. describeOrigin is the human form the CLI prints.
//
// Comment grammar (single spaces, fixed order, ASCII only, at most ORIGIN_MAX_BYTES):
//   qube=work rule=3              one of the qube's rules (0-based, as qvm-firewall numbers them)
//   qube=work rules=0,3,5-7       several of its rules merged into one kernel rule (a packed set)
//   qube=work rules=0,3,...,98    the same, too many to list: the head, `...`, the last range
//   qube=work policy              the qube's default drop at the end of its chain
//   base=antispoof                a part of the fixed layout; `qube=work base=dispatch` names a qube
//   connection=ID | forward=ID    reserved for connections and port forwards
// Lives in model (not compile) because the backends parse it and may not import the compiler.
import { assert, BugError } from './result.js';
import { QUBE_NAME_RE } from './topology.js';

export type Origin =
  | { kind: 'rule'; qube: string; index: number }
  /**
   * Several rules of one qube in one kernel rule. `ranges` are inclusive, ascending, and neither
   * overlap nor touch; `elided` means more ranges lie between the last two listed.
   */
  | { kind: 'rules'; qube: string; ranges: [number, number][]; elided?: true }
  | { kind: 'policy'; qube: string }
  | { kind: 'base'; part: string; qube?: string }
  | { kind: 'connection'; id: string }
  | { kind: 'forward'; id: string };

/** nft keeps 128 bytes of comment (NFT_USERDATA_MAXLEN, ir/render.ts MAX_COMMENT_BYTES). */
export const ORIGIN_MAX_BYTES = 128;

const NUM = '(?:0|[1-9][0-9]{0,8})';
const NUM_RE = new RegExp(`^${NUM}$`);
const RANGE_RE = new RegExp(`^(${NUM})(?:-(${NUM}))?$`);
/** Base parts are slugs the compiler chooses (`drop-invalid`). */
const PART_RE = /^[a-z][a-z0-9-]{0,31}$/;
/** Connection and forward ids: reserved; kept to characters that need no quoting. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

const rangeText = ([lo, hi]: [number, number]) => (lo === hi ? `${lo}` : `${lo}-${hi}`);

function listText(ranges: [number, number][], elided: boolean | undefined): string {
  const ts = ranges.map(rangeText);
  if (elided) ts.splice(ts.length - 1, 0, '...');
  return ts.join(',');
}

/** Collapse sorted unique numbers into inclusive ranges. */
function toRanges(numbers: readonly number[]): [number, number][] {
  const ns = [...new Set(numbers)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const n of ns) {
    const last = out.at(-1);
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

/**
 * The origin of a kernel rule that merges `numbers` (rule indices of `qube`). One rule is a plain
 * `rule`; a list too long for a comment keeps its head ranges and its last range, marked elided.
 */
export function rulesOrigin(qube: string, numbers: readonly number[]): Origin {
  const ranges = toRanges(numbers);
  assert(ranges.length > 0, 'rulesOrigin with no rules');
  if (ranges.length === 1 && ranges[0]![0] === ranges[0]![1]) return { kind: 'rule', qube, index: ranges[0]![0] };
  const full: Origin = { kind: 'rules', qube, ranges };
  if (fits(full)) return full;
  const last = ranges.at(-1)!;
  let head: [number, number][] = [ranges[0]!];
  for (let k = 1; k < ranges.length - 1; k++) {
    const next = [...head, ranges[k]!];
    if (!fits({ kind: 'rules', qube, ranges: [...next, last], elided: true })) break;
    head = next;
  }
  return { kind: 'rules', qube, ranges: [...head, last], elided: true };
}

const fits = (o: Origin): boolean => Buffer.byteLength(render(o)) <= ORIGIN_MAX_BYTES;

function render(o: Origin): string {
  switch (o.kind) {
    case 'rule':
      return `qube=${o.qube} rule=${o.index}`;
    case 'rules':
      return `qube=${o.qube} rules=${listText(o.ranges, o.elided)}`;
    case 'policy':
      return `qube=${o.qube} policy`;
    case 'base':
      return o.qube === undefined ? `base=${o.part}` : `qube=${o.qube} base=${o.part}`;
    case 'connection':
      return `connection=${o.id}`;
    case 'forward':
      return `forward=${o.id}`;
  }
}

/**
 * The nft comment for `o`. Throws (a qnet bug) for an origin that would not parse back: a bad qube
 * name, part or id, non-canonical ranges, or more than ORIGIN_MAX_BYTES (use rulesOrigin).
 */
export function formatOrigin(o: Origin): string {
  const s = render(o);
  // parseOrigin accepts canonical text only, so "parses back" is "o was well-formed".
  if (parseOrigin(s) === null) throw new BugError(`origin ${JSON.stringify(o)} has no comment form`);
  return s;
}

function parseRanges(text: string): { ranges: [number, number][]; elided?: true } | null {
  const items = text.split(',');
  const dots = items.indexOf('...');
  let elided = false;
  if (dots >= 0) {
    // Only between the head and the last range, once, with something on each side.
    if (dots !== items.length - 2 || dots === 0) return null;
    items.splice(dots, 1);
    elided = true;
  }
  const ranges: [number, number][] = [];
  for (const it of items) {
    const m = RANGE_RE.exec(it);
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi <= lo && m[2] !== undefined) return null; // `5-5` and `7-5` are not canonical
    const prev = ranges.at(-1);
    if (prev && lo <= prev[1] + 1) return null; // ascending, neither overlapping nor touching
    ranges.push([lo, hi]);
  }
  // A single number is `rule=N`, and an elided list needs at least a head and a last range.
  if (ranges.length === 1 && ranges[0]![0] === ranges[0]![1]) return null;
  if (elided && ranges.length < 2) return null;
  return elided ? { ranges, elided: true } : { ranges };
}

/** The origin a comment states, or null for anything else (a user's comment, a cut or hostile one). */
export function parseOrigin(comment: string): Origin | null {
  if (typeof comment !== 'string' || comment.length > ORIGIN_MAX_BYTES) return null;
  const toks = comment.split(' ');
  const kv = (t: string | undefined, key: string): string | null => (t !== undefined && t.startsWith(key + '=') ? t.slice(key.length + 1) : null);
  if (toks.length === 1) {
    const part = kv(toks[0], 'base');
    if (part !== null) return PART_RE.test(part) ? { kind: 'base', part } : null;
    const conn = kv(toks[0], 'connection');
    if (conn !== null) return ID_RE.test(conn) ? { kind: 'connection', id: conn } : null;
    const fwd = kv(toks[0], 'forward');
    if (fwd !== null) return ID_RE.test(fwd) ? { kind: 'forward', id: fwd } : null;
    return null;
  }
  if (toks.length !== 2) return null;
  const qube = kv(toks[0], 'qube');
  if (qube === null || !QUBE_NAME_RE.test(qube)) return null;
  const what = toks[1]!;
  if (what === 'policy') return { kind: 'policy', qube };
  const index = kv(what, 'rule');
  if (index !== null) return NUM_RE.test(index) ? { kind: 'rule', qube, index: Number(index) } : null;
  const list = kv(what, 'rules');
  if (list !== null) {
    const r = parseRanges(list);
    return r === null ? null : { kind: 'rules', qube, ...r };
  }
  const part = kv(what, 'base');
  if (part !== null) return PART_RE.test(part) ? { kind: 'base', part, qube } : null;
  return null;
}

/** What the fixed layout's parts are called where people read them (the CLI, explanations). */
const PART_TEXT: Record<string, string> = {
  'custom-input': 'base: user input rules',
  'custom-forward': 'base: user forward rules',
  'drop-invalid': 'base: drop invalid',
  replies: 'base: replies',
  loopback: 'base: loopback',
  'icmpv6-nd': 'base: icmpv6 (neighbour discovery)',
  antispoof: 'base: antispoof',
  'antispoof-link-local': 'base: antispoof link-local',
  masquerade: 'base: masquerade',
  'no-dhcp-from-clients': 'base: no dhcp from clients',
  'icmp-from-clients': 'base: icmp from clients',
  'refuse-clients': 'base: refuse clients',
  'no-new-flows-to-clients': 'base: no new flows to clients',
  'not-from-a-client': 'base: not from a client',
  'dns-dnat': 'dns dnat',
  'dns-no-upstream': 'dns dnat: no upstream',
  dispatch: 'dispatch by source',
  'known-client': "base: a client's source (its chain is in a shard table)",
};

/**
 * `work rule 3`, `work rules 0,3,5-7 packed`, `policy: work default drop`, `base: antispoof`: the
 * text `qnet counters` and the simulator's explanations print. A part qnet has no words for is
 * shown as it is (hand-built test rulesets use that for free text).
 */
export function describeOrigin(o: Origin): string {
  switch (o.kind) {
    case 'rule':
      return `${o.qube} rule ${o.index}`;
    case 'rules':
      return `${o.qube} rules ${listText(o.ranges, o.elided)} packed`;
    case 'policy':
      return `policy: ${o.qube} default drop`;
    case 'base':
      if (o.part === 'dispatch' && o.qube !== undefined) return `dispatch: ${o.qube}`;
      if (o.part === 'blocked') return `blocked: ${o.qube ?? 'a chain'} (rules failed to load)`;
      return (Object.hasOwn(PART_TEXT, o.part) ? PART_TEXT[o.part] : undefined) ?? (o.qube === undefined ? o.part : `${o.part} (${o.qube})`);
    case 'connection':
      return `connection ${o.id}`;
    case 'forward':
      return `forward ${o.id}`;
  }
}

/** The qube an origin belongs to, if any: its rules, its policy, its dispatch or blocked rule. */
export function originQube(o: Origin): string | undefined {
  return o.kind === 'rule' || o.kind === 'rules' || o.kind === 'policy' || o.kind === 'base' ? o.qube : undefined;
}
