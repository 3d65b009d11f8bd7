// Errors users can read are values, not exceptions: parse and validation return a Result.
// Operations that are refused (store, engine) throw QnetError, which carries the same Diagnostic.
import type { Diagnostic } from './diagnostics.js';

export type Result<T, E = Diagnostic> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });

/** A refused operation: the CLI prints `qnet: <message>` and exits 1 (2 for usage). */
export class QnetError extends Error {
  constructor(readonly diag: Diagnostic) {
    super(diag.message);
    this.name = 'QnetError';
  }
}

/**
 * An internal invariant broke: a bug in qnet, never a user error, so it has no QNET code (the CLI
 * reports it as "internal error … a bug"). Like firewalld's BugError, apart from QnetError.
 */
export class BugError extends Error {
  constructor(message: string) {
    super(`qnet internal error: ${message}`);
    this.name = 'BugError';
  }
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new BugError(msg);
}

export function assertNever(x: never, what = 'value'): never {
  throw new BugError(`unhandled ${what}: ${JSON.stringify(x)}`);
}

/** Unwrap a Result or throw its diagnostic as a QnetError. */
export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new QnetError(r.error);
  return r.value;
}
