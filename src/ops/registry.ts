// Every operation qnet offers, by name, and the one way to call one: validate the input against the
// op's schema, then run it. Sessions (`run`, `daemon`, `events`, `demo`) are not operations: they are
// absent here, so no door — the daemon's socket above all — can ever be asked for them.
import { z } from 'zod';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { check, matrix, nftRuleset } from './analyze.js';
import { firewallAdd, firewallDel, firewallGet, firewallList, firewallReset, firewallSet } from './firewall.js';
import { counters, kill, shutdown, start } from './lifecycle.js';
import { preview } from './preview.js';
import { globalGet, globalSet, prefsGet, prefsList, prefsSet, qubesClone, qubesCreate, qubesInit, qubesList, qubesRemove, qubesRename } from './qubes.js';
import { status } from './status.js';
import type { Host, Op, OpResult } from './types.js';

export const OPS: readonly Op[] = [
  qubesInit, qubesList, qubesCreate, qubesRemove, qubesRename, qubesClone,
  prefsList, prefsGet, prefsSet, globalGet, globalSet,
  firewallList, firewallGet, firewallAdd, firewallDel, firewallReset, firewallSet,
  nftRuleset, check, matrix, preview,
  start, shutdown, kill, counters, status,
] as unknown as readonly Op[];

const BY_NAME = new Map(OPS.map((o) => [o.name, o]));

export const findOp = (name: string): Op | undefined => BY_NAME.get(name);

/** Why `raw` is not a valid input for `op`, in one line (the first few problems, with their paths). */
function refusal(op: Op, error: z.ZodError): QnetError {
  const parts = error.issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`);
  return new QnetError(diag('QNET6011', `invalid input for ${op.name}: ${parts.join('; ')}`, { hint: 'GET /v1/ops lists each operation\'s JSON Schema' }));
}

/** Validate, then run. Unknown names and refused input are QnetErrors (QNET6010, QNET6011). */
export async function invoke(host: Host, name: string, raw: unknown): Promise<OpResult<unknown>> {
  const op = findOp(name);
  if (!op) throw new QnetError(diag('QNET6010', `no such operation '${name}'`, { hint: 'GET /v1/ops lists them' }));
  const parsed = op.input.safeParse(raw ?? {});
  if (!parsed.success) throw refusal(op, parsed.error);
  return op.run(parsed.data, host);
}

/** Each op with its kind and the JSON Schema of its input: `GET /v1/ops`, and the OpenAPI document. */
export function describeOps(): { name: string; kind: string; summary: string; input: unknown }[] {
  return OPS.map((o) => ({ name: o.name, kind: o.kind, summary: o.summary, input: z.toJSONSchema(o.input, { io: 'input', unrepresentable: 'any' }) }));
}
