// --dry-run (and `qnet diff CMD…`): how the CLI shows the `preview` operation's report — the nft
// operations each qube would load, and which probes would change verdict.
import type { Io } from './io.js';

export interface PreviewValue {
  nodes: { node: string; operations: number; nft: string }[];
  opens: string[];
  closes: string[];
}

export function printReport(io: Io, r: PreviewValue, verbose: boolean): void {
  if (!r.nodes.length && !r.opens.length && !r.closes.length) return void io.out('dry run: no change to any ruleset or verdict\n');
  io.out('dry run: nothing was changed\n');
  for (const n of r.nodes) {
    io.out(`${n.node}: ${n.operations} nft operation${n.operations === 1 ? '' : 's'}\n`);
    if (verbose) io.out(n.nft.replace(/^/gm, '    ') + '\n');
  }
  if (r.opens.length) io.out(`would open:\n${r.opens.map((l) => `  + ${l}\n`).join('')}`);
  if (r.closes.length) io.out(`would close:\n${r.closes.map((l) => `  - ${l}\n`).join('')}`);
}
