// Exit codes: 0 success, 1 a refused operation (QnetError), 2 a usage error. Never a stack trace
// for users; QNET_DEBUG=1 shows one for bugs.
import { diag, formatDiagnostic, type Diagnostic } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import type { Io } from './io.js';

export class UsageError extends QnetError {
  constructor(message: string, hint?: string) {
    super(diag('QNET9000', message, hint ? { hint } : {}));
    this.name = 'UsageError';
  }
}

export function reportError(e: unknown, io: Io): number {
  if (e instanceof QnetError) {
    io.err(`qnet: ${formatDiagnostic(e.diag)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  const err = e as Error;
  io.err(`qnet: internal error: ${err?.message ?? String(e)} (this is a bug in qnet; QNET_DEBUG=1 shows details)\n`);
  if (io.env['QNET_DEBUG']) io.err(`${err?.stack ?? ''}\n`);
  return 1;
}

export function printWarnings(io: Io, ds: readonly Diagnostic[]): void {
  for (const d of ds) io.err(`qnet: ${d.severity}: ${formatDiagnostic(d)}\n`);
}
