// One nft transaction: an ordered list of operations that `nft -f` applies atomically (all or
// nothing). Like knftables' Transaction (EXAMPLES.md Example 1), each operation is checked when it is
// added and the first error is kept; toString() then ends with `# ERROR: …` so a bad transaction is
// visible before it reaches a kernel. size counts operations the way tests pin them (Example 7):
// every element is one operation, as kube-proxy counts them.
import type { IrProblem } from './validate.js';
import { assertNever } from '../model/result.js';
import {
  renderChainSpec,
  renderElement,
  renderKey,
  renderRuleBody,
  renderSetSpec,
  renderComment,
} from './render.js';
import type { Chain, Family, IrRule, MapElement, NamedMap, NamedSet, SetElement } from './types.js';
import { checkName, checkRule } from './validate.js';

export interface TableRef {
  family: Family;
  table: string;
}

export type Op =
  | { op: 'add-table'; t: TableRef; comment?: string }
  | { op: 'delete-table'; t: TableRef }
  /** Declares the chain (and updates a base chain's policy); never touches its rules. */
  | { op: 'add-chain'; t: TableRef; chain: Chain }
  | { op: 'flush-chain'; t: TableRef; name: string }
  | { op: 'delete-chain'; t: TableRef; name: string }
  /**
   * Declares the set; `elements` are declared with it. A separate `add element` would cost more:
   * nft 1.0.6 answers any element command by first dumping every element of every
   * non-concatenated interval set in the namespace (its cache flag NFT_CACHE_SETELEM_MAYBE).
   */
  | { op: 'add-set'; t: TableRef; set: NamedSet | NamedMap; elements?: (SetElement | MapElement)[] }
  | { op: 'flush-set'; t: TableRef; name: string; map: boolean }
  | { op: 'delete-set'; t: TableRef; name: string; map: boolean }
  | { op: 'add-element'; t: TableRef; set: string; map: boolean; elements: (SetElement | MapElement)[] }
  | { op: 'delete-element'; t: TableRef; set: string; map: boolean; elements: (SetElement | MapElement)[] }
  | { op: 'add-rule'; t: TableRef; chain: string; rule: IrRule }
  /** Puts the rule first in the chain (diff.ts overlayTransaction inserts a chain's rules last to first). */
  | { op: 'insert-rule'; t: TableRef; chain: string; rule: IrRule };

export type OpKind = Op['op'];

/** Elements per `add element` line: keeps lines short; nft parses one command per line. */
const ELEMENTS_PER_LINE = 1000;

const where = (t: TableRef) => `${t.family} ${t.table}`;

export class Transaction {
  readonly ops: Op[] = [];
  private firstError: IrProblem | undefined;

  get error(): IrProblem | undefined {
    return this.firstError;
  }

  /** Operations as tests count them: each element is one operation. */
  get size(): number {
    // The sum of counts(): one weighting of operations, not two that could drift apart.
    let n = 0;
    for (const k of Object.values(this.counts())) n += k;
    return n;
  }

  /** Operation counts by kind (elements counted one by one), for "flush + N rules + M elements" tests. */
  counts(): Record<OpKind, number> {
    const c: Record<OpKind, number> = {
      'add-table': 0,
      'delete-table': 0,
      'add-chain': 0,
      'flush-chain': 0,
      'delete-chain': 0,
      'add-set': 0,
      'flush-set': 0,
      'delete-set': 0,
      'add-element': 0,
      'delete-element': 0,
      'add-rule': 0,
      'insert-rule': 0,
    };
    for (const o of this.ops) {
      c[o.op] += o.op === 'add-element' || o.op === 'delete-element' ? o.elements.length : 1;
      if (o.op === 'add-set') c['add-element'] += o.elements?.length ?? 0; // declared with the set
    }
    return c;
  }

  push(o: Op): void {
    if (o.op === 'add-element' || o.op === 'delete-element') {
      if (o.elements.length === 0) return;
    }
    if (!this.firstError) this.firstError = validateOp(o);
    this.ops.push(o);
  }

  toString(): string {
    const lines: string[] = [];
    for (const o of this.ops) lines.push(...renderOp(o));
    if (this.firstError) lines.push(`# ERROR: ${this.firstError.message}`);
    return lines.length ? lines.join('\n') + '\n' : '';
  }
}

/** Checks an operation can be rendered at all (names, verdict placement); references are validate.ts's job. */
export function validateOp(o: Op): IrProblem | undefined {
  const bad = checkName('table', o.t.table);
  if (bad) return bad;
  switch (o.op) {
    case 'add-table':
    case 'delete-table':
      return undefined;
    case 'add-chain':
      return checkName('chain', o.chain.name);
    case 'flush-chain':
    case 'delete-chain':
      return checkName('chain', o.name);
    case 'add-set':
      return checkName(o.set.kind, o.set.name);
    case 'flush-set':
    case 'delete-set':
      return checkName(o.map ? 'map' : 'set', o.name);
    case 'add-element':
    case 'delete-element':
      return checkName(o.map ? 'map' : 'set', o.set);
    case 'add-rule':
    case 'insert-rule': {
      const problems = checkRule(o.rule, `${where(o.t)} chain ${o.chain}`);
      // A warning (a comment that nft will cut) is no reason to print `# ERROR`.
      return checkName('chain', o.chain) ?? problems.find((d) => d.severity !== 'warning');
    }
    default:
      return assertNever(o, 'transaction op');
  }
}

/** nft command lines for one operation (element lists are split into lines of 1000). */
export function renderOp(o: Op): string[] {
  const w = where(o.t);
  switch (o.op) {
    case 'add-table':
      return [`add table ${w}${o.comment !== undefined ? ` {${renderComment(o.comment)}; }` : ''}`];
    case 'delete-table':
      return [`delete table ${w}`];
    case 'add-chain':
      return [`add chain ${w} ${o.chain.name}${renderChainSpec(o.chain)}`];
    case 'flush-chain':
      return [`flush chain ${w} ${o.name}`];
    case 'delete-chain':
      return [`delete chain ${w} ${o.name}`];
    case 'add-set':
      return [`add ${o.set.kind} ${w} ${o.set.name}${renderSetSpec(o.set, o.elements)}`];
    case 'flush-set':
      return [`flush ${o.map ? 'map' : 'set'} ${w} ${o.name}`];
    case 'delete-set':
      return [`delete ${o.map ? 'map' : 'set'} ${w} ${o.name}`];
    case 'add-element':
    case 'delete-element': {
      const verb = o.op === 'add-element' ? 'add' : 'delete';
      const out: string[] = [];
      for (let i = 0; i < o.elements.length; i += ELEMENTS_PER_LINE) {
        const chunk = o.elements.slice(i, i + ELEMENTS_PER_LINE);
        // Deleting needs only the key; nft rejects a value or comment there.
        const items = chunk.map((e) => (verb === 'add' ? renderElement(e, o.map) : renderKey(e.key)));
        out.push(`${verb} element ${w} ${o.set} { ${items.join(', ')} }`);
      }
      return out;
    }
    case 'add-rule':
      return [`add rule ${w} ${o.chain} ${renderRuleBody(o.rule)}`];
    case 'insert-rule':
      return [`insert rule ${w} ${o.chain} ${renderRuleBody(o.rule)}`];
    default:
      return assertNever(o, 'transaction op');
  }
}
