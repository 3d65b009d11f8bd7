// What CLI sessions need below the operations, without being operations themselves (so no door can
// ask them of the daemon): running a program inside a qube's namespace with the terminal attached.
import { execArgv, NodeInteractiveRunner } from '../backend/netns/exec.js';
import { Naming } from '../backend/netns/links.js';
import { netnsUnavailable } from '../engine/wiring.js';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { readRuntime } from '../store/runtime-file.js';

/** Run `argv` in `qube`'s namespace (it must be running); resolves to the program's exit code. */
export async function execInQube(stateDir: string, env: NodeJS.ProcessEnv, qube: string, argv: readonly string[], user?: string): Promise<number> {
  const rt = await readRuntime(stateDir, env);
  const why = rt?.backend === 'netns' ? netnsUnavailable() : 'the qubes run on the simulator here';
  // On the simulator as root, `qnet start` moves a directory there by default to namespaces.
  const hint = rt?.backend === 'sim' && netnsUnavailable() === null ? `qnet start ${qube} (it says how to leave the simulator)` : 'run as root with nftables installed';
  if (why || !rt) throw new QnetError(diag('QNET5103', `running programs in qubes needs the netns backend: ${why ?? 'no runtime'}`, { hint }));
  return new NodeInteractiveRunner().runInteractive(execArgv(new Naming(rt.prefix).ns(qube), argv, user));
}

// The demo session chooses a runtime before its daemon exists and cleans up after it.
export { netnsUnavailable, runtimeFor, teardownLeftovers } from '../engine/wiring.js';
