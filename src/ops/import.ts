// Import from a real Qubes system (`qnet import-qubes DIR`): a copy of dom0's /var/lib/qubes becomes
// the state directory's qubes, rules and default_netvm, so a Qubes user can ask `check` and
// `matrix` about their own policy offline. All or nothing: the whole copy is read and checked
// (store/qubes-xml.ts) before the store is touched, then written in one update.
import * as v from 'valibot';
import { diag } from '../model/diagnostics.js';
import type { QubeClass } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { readQubesDir } from '../store/qubes-xml.js';
import { defineOp, result, type OpResult } from './types.js';

export interface ImportSummary {
  dir: string;
  stateDir: string;
  /** Qubes imported, by class. */
  byClass: Record<QubeClass, number>;
  qubes: number;
  /** Rules in all imported firewall.xml files, and how many qubes had one. */
  rules: number;
  rulesFiles: number;
  default_netvm: string | null;
  /** Domains that are not qubes here (dom0). */
  skipped: string[];
  /** The qubes the state directory had before, replaced (with force). */
  replaced: number;
}

export const ImportSummarySchema = v.object({
  dir: v.string(),
  stateDir: v.string(),
  byClass: v.record(v.string(), v.number()),
  qubes: v.number(),
  rules: v.number(),
  rulesFiles: v.number(),
  default_netvm: v.nullable(v.string()),
  skipped: v.array(v.string()),
  replaced: v.number(),
});

export const qubesImport = defineOp({
  name: 'qubes.import',
  kind: 'change',
  summary: "import a copy of a Qubes dom0 /var/lib/qubes (qubes.xml and each qube's firewall.xml); all or nothing",
  output: ImportSummarySchema,
  input: v.strictObject({
    /** An absolute path, read by whoever runs the op (the daemon, or the CLI offline). */
    dir: v.pipe(v.string(), v.minLength(1), v.maxLength(4096)),
    force: v.optional(v.boolean(), false),
  }),
  run: async (i, host): Promise<OpResult<ImportSummary>> => {
    // Everything is read and checked first: a problem anywhere refuses the whole import.
    const imported = await readQubesDir(i.dir);
    const replaced = await host.change({ kind: 'all' }, (m) => {
      if (m.qubes.size && !i.force)
        throw new QnetError(diag('QNET3101', `${host.stateDir} already has ${m.qubes.size} qubes`, { hint: 'import into an empty --state directory, or --force to replace them' }));
      const running = [...m.qubes.values()].filter((q) => q.state === 'Running').map((q) => q.name);
      if (running.length)
        throw new QnetError(diag('QNET2007', `cannot replace running qubes: ${running.join(', ')}`, { hint: 'qnet shutdown --all first' }));
      const before = m.qubes.size;
      // The uplink is this host's choice, not Qubes': it stays.
      m.default_netvm = imported.model.default_netvm;
      m.qubes = imported.model.qubes;
      return before;
    });
    const qubes = [...imported.model.qubes.values()];
    const byClass: Record<QubeClass, number> = { AppVM: 0, DispVM: 0, TemplateVM: 0, StandaloneVM: 0 };
    for (const q of qubes) byClass[q.klass]++;
    return result(
      {
        dir: i.dir,
        stateDir: host.stateDir,
        byClass,
        qubes: qubes.length,
        rules: qubes.reduce((n, q) => n + (q.rules?.length ?? 0), 0),
        rulesFiles: qubes.filter((q) => q.rules !== null).length,
        default_netvm: imported.model.default_netvm,
        skipped: imported.skipped,
        replaced,
      },
      imported.warnings,
    );
  },
});
