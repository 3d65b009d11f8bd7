// Pass: the drop log's kernel side. Before each rule of a client chain that refuses (a rule's
// `drop`, packed or plain, and the policy), the same matches again with a rate-limited
// `log group` whose prefix is the refusing rule's origin. A separate rule because over its rate a
// `limit` skips the rest of its rule: on the refusing rule it would let packets through. It has no
// verdict and no counter (counters stay one per rule), and only packets the next rule refuses reach
// its log: an accepted flow pays one more match per new connection, established ones nothing (they
// never enter the client chain).
import type { IrRule } from '../../ir/types.js';
import { DROP_LOG } from '../../model/drop-log.js';

const refuses = (r: IrRule): boolean => r.stmts.some((s) => s.kind === 'verdict' && (s.verdict.kind === 'reject' || s.verdict.kind === 'drop'));

export function withDropLog(rules: readonly IrRule[]): IrRule[] {
  return rules.flatMap((r) =>
    refuses(r) && r.comment !== undefined
      ? [
          {
            matches: r.matches,
            stmts: [
              { kind: 'limit', rate: DROP_LOG.rate, per: 'second', burst: DROP_LOG.burst },
              // One netlink message per packet: batches are cut by a reader's buffer (tcpdump's is its snap length).
              { kind: 'log', prefix: r.comment, group: DROP_LOG.group, queueThreshold: 1 },
            ],
            origin: r.origin,
          } satisfies IrRule,
          r,
        ]
      : [r],
  );
}
