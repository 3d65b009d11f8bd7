// Every operation qnet offers, by name, and the one way to call one: validate the input against the
// op's schema, then run it. Op modules load on first use, so a command pays only for what it asks
// (`qnet ls` never loads the compiler). Sessions (`run`, `daemon`, `events`, `demo`) are not
// operations: they are absent here, so no door — the daemon's socket above all — can ask for them.
import * as v from 'valibot';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import type { Host, Op, OpResult } from './types.js';

const MODULES = {
  qubes: () => import('./qubes.js'),
  firewall: () => import('./firewall.js'),
  analyze: () => import('./analyze.js'),
  lifecycle: () => import('./lifecycle.js'),
  preview: () => import('./preview.js'),
  status: () => import('./status.js'),
  import: () => import('./import.js'),
  connections: () => import('./connections.js'),
  export: () => import('./export.js'),
  checkpoints: () => import('./checkpoints.js'),
} as const;
type ModuleName = keyof typeof MODULES;

/** Which module holds each op (a test checks this index against the modules' own names). */
export const OP_INDEX: Readonly<Record<string, ModuleName>> = {
  'qubes.init': 'qubes', 'qubes.list': 'qubes', 'qubes.create': 'qubes', 'qubes.remove': 'qubes',
  'qubes.rename': 'qubes', 'qubes.clone': 'qubes', 'prefs.list': 'qubes', 'prefs.get': 'qubes',
  'prefs.set': 'qubes', 'global.get': 'qubes', 'global.set': 'qubes',
  'features.list': 'qubes', 'features.get': 'qubes', 'features.set': 'qubes',
  'firewall.list': 'firewall', 'firewall.get': 'firewall', 'firewall.add': 'firewall',
  'firewall.del': 'firewall', 'firewall.reset': 'firewall', 'firewall.set': 'firewall',
  'firewall.reload': 'firewall', 'firewall.move': 'firewall', 'firewall.replace': 'firewall', 'firewall.view': 'firewall',
  nft: 'analyze', check: 'analyze', explain: 'analyze', matrix: 'analyze',
  preview: 'preview',
  start: 'lifecycle', shutdown: 'lifecycle', kill: 'lifecycle', counters: 'lifecycle', log: 'lifecycle',
  status: 'status',
  'qubes.import': 'import',
  'connections.list': 'connections', 'connections.add': 'connections', 'connections.del': 'connections',
  'forwards.list': 'connections', 'forwards.add': 'connections', 'forwards.del': 'connections',
  'export.qubes': 'export',
  apply: 'checkpoints', confirm: 'checkpoints', rollback: 'checkpoints', undo: 'checkpoints', history: 'checkpoints',
};

const isOp = (x: unknown): x is Op => typeof x === 'object' && x !== null && typeof (x as Op).run === 'function' && typeof (x as Op).name === 'string';

/** The ops a module defines. */
export async function opsOf(module: ModuleName): Promise<Op[]> {
  return Object.values(await MODULES[module]()).filter(isOp) as Op[];
}

export async function findOp(name: string): Promise<Op | undefined> {
  const module = Object.hasOwn(OP_INDEX, name) ? OP_INDEX[name] : undefined;
  return module ? (await opsOf(module)).find((o) => o.name === name) : undefined;
}

/** Every op, in the index's order. */
export async function allOps(): Promise<Op[]> {
  const mods = await Promise.all((Object.keys(MODULES) as ModuleName[]).map(async (m) => [m, await opsOf(m)] as const));
  const byName = new Map(mods.flatMap(([, ops]) => ops.map((o) => [o.name, o] as const)));
  return Object.keys(OP_INDEX).map((n) => byName.get(n)!);
}

/** Why `raw` is not a valid input for `op`, in one line (the first few problems, with their paths). */
function refusal(op: Op, issues: readonly v.BaseIssue<unknown>[]): QnetError {
  const parts = issues.slice(0, 3).map((i) => {
    const path = v.getDotPath(i);
    return `${path ? path + ': ' : ''}${i.message}`;
  });
  return new QnetError(diag('QNET6102', `invalid input for ${op.name}: ${parts.join('; ')}`, { hint: "GET /v1/ops lists each operation's JSON Schema" }));
}

/** Validate, then run. Unknown names and refused input are QnetErrors (QNET6101, QNET6102). */
export async function invoke(host: Host, name: string, raw: unknown): Promise<OpResult<unknown>> {
  const op = await findOp(name);
  if (!op) throw new QnetError(diag('QNET6101', `no such operation '${name.slice(0, 64)}'`, { hint: 'GET /v1/ops lists them' }));
  const parsed = v.safeParse(op.input, raw ?? {});
  if (!parsed.success) throw refusal(op, parsed.issues);
  return op.run(parsed.output, host);
}

/** Each op with its kind and the JSON Schema of its input: `GET /v1/ops`, and the OpenAPI document. */
export async function describeOps(): Promise<{ name: string; kind: string; summary: string; input: unknown; output?: unknown }[]> {
  const { toJsonSchema } = await import('@valibot/to-json-schema');
  return (await allOps()).map((o) => ({
    name: o.name,
    kind: o.kind,
    summary: o.summary,
    input: toJsonSchema(o.input, { errorMode: 'ignore' }),
    ...(o.output ? { output: toJsonSchema(o.output, { errorMode: 'ignore' }) } : {}),
  }));
}
