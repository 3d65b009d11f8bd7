// How the system stands: which runtime serves the state directory, and — where a daemon keeps it —
// how each qube's rules stand in the kernel and what the last compile had to say.
import { noInput } from './schema.js';
import { defineOp, result } from './types.js';

export const status = defineOp({
  name: 'status',
  kind: 'read',
  summary: "the runtime of the state directory and, from a daemon, how each qube's rules stand in the kernel",
  input: noInput,
  run: async (_i, host) => {
    const rt = await host.runtime();
    const st = host.applyStatus();
    return result({
      stateDir: host.stateDir,
      runtime: rt,
      ...(st ? { rules: Object.fromEntries(st) } : {}),
    });
  },
});
