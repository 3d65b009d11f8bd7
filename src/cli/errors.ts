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

/**
 * One line that is safe on a terminal: words from users and files (a newline, ESC sequences, bytes
 * of a binary file) are shown as escapes, never passed through.
 */
export function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

const SYSTEM_REFUSALS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

export function reportError(e: unknown, io: Io): number {
  if (e instanceof QnetError) {
    io.err(`qnet: ${oneLine(formatDiagnostic(e.diag))}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  const err = e as NodeJS.ErrnoException;
  // The system refused a file operation (permissions, a read-only or full disk): the user's to fix,
  // not a bug; said in one line with the path, as a state file that cannot be read or written.
  if (typeof err?.code === 'string' && typeof err.syscall === 'string' && SYSTEM_REFUSALS[err.code]) {
    io.err(`qnet: ${oneLine(`${err.path ? `${err.path}: ` : ''}${SYSTEM_REFUSALS[err.code]} (${err.syscall})`)} (QNET3023)\n`);
    if (io.env['QNET_DEBUG']) io.err(`${err.stack ?? ''}\n`);
    return 1;
  }
  io.err(`qnet: internal error: ${oneLine(err?.message ?? String(e))} — this is a bug in qnet; QNET_DEBUG=1 shows details (QNET6199)\n`);
  if (io.env['QNET_DEBUG']) io.err(`${err?.stack ?? ''}\n`);
  return 1;
}

export function printWarnings(io: Io, ds: readonly Diagnostic[]): void {
  for (const d of ds) io.err(`qnet: ${d.severity}: ${oneLine(formatDiagnostic(d))}\n`);
}
