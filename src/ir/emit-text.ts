// The nft text of a whole ruleset, for one atomic `nft -f -` run. Deterministic: the same Ruleset
// gives the same bytes. What "full" means for tables qnet owns and for the shared `qubes` table
// (never wiping the user's custom-* chains) is decided in diff.ts, so a full load and an
// incremental one follow the same rules.
import { fullTransaction } from './diff.js';
import type { Ruleset } from './types.js';

export function emitFull(rs: Ruleset): string {
  return fullTransaction(rs).toString();
}
