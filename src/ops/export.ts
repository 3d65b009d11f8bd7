// Export connections and port forwards as the scripts a real Qubes user installs (issue 10 item 5):
// `qubes-firewall-user-script` for net/firewall qubes, `rc.local` for the others. A read: the text is
// derived from the model as it is now (compile/export-qubes.ts); writing files is the CLI's business.
import * as v from 'valibot';
import { exportQubes, type ExportFile } from '../compile/export-qubes.js';
import { getQube } from '../model/ops.js';
import { qubeNames } from './schema.js';
import { defineOp, result } from './types.js';

export type { ExportFile };

export const exportQubesOp = defineOp({
  name: 'export.qubes',
  kind: 'read',
  summary: 'connections and port forwards as Qubes scripts (qubes-firewall-user-script, rc.local), nft for R4.2+ or iptables for R4.1',
  input: v.strictObject({
    qubes: v.optional(v.pipe(qubeNames, v.maxLength(256)), []),
    iptables: v.optional(v.boolean(), false),
  }),
  run: async (i, host) => {
    const m = await host.read();
    for (const n of i.qubes) getQube(m, n); // an unknown name is refused, not silently skipped
    const { files, diagnostics } = exportQubes(m, { qubes: i.qubes, iptables: i.iptables });
    return result<ExportFile[]>(files, diagnostics);
  },
});
