// Safe apply (the manager's Changes page): a list of change operations applied all or nothing, with
// a checkpoint of what it changed so that it can be confirmed, rolled back or undone.
//   apply     the steps run against a copy (as `preview` does); if every one succeeds, the parts of
//             the model they changed (model/parts.ts) are written in one change — one store write,
//             one converge — else nothing changes. With confirmWithin > 0 the checkpoint is pending
//             and the daemon rolls it back when the time runs out (NetworkManager's checkpoints).
//   confirm   keep a pending apply;  rollback  put a pending one back now (over later changes to
//             the same parts: the unconfirmed change must not stay);  undo  put back any recent
//             apply, refused when what it changed has changed since;  history  the recent applies.
// The checkpoint is written before the files and the kernel change: a crash in between leaves it
// pending, and the next daemon rolls it back at start (fail closed).
import * as v from 'valibot';
import { diag, warning, type Diagnostic } from '../model/diagnostics.js';
import { changedParts, describePart, effectOfParts, partsDiffering, restoreParts } from '../model/parts.js';
import type { Model } from '../model/qube.js';
import { QnetError } from '../model/result.js';
import { CHECKPOINT_ID_RE, type Checkpoint, type CheckpointBook, type CheckpointData } from '../store/checkpoints-file.js';
import { cloneModel } from '../store/memory-store.js';
import { PreviewHost, steps } from './preview.js';
import { defineOp, result, type Host, type OpResult } from './types.js';

/** Applies kept for undo (pending ones are never dropped). */
export const HISTORY = 10;
/** The confirm timer's default, in seconds (NetworkManager's checkpoint default is also minutes). */
export const CONFIRM_DEFAULT_S = 120;
/**
 * Ops that cannot be a step of an apply: they act on checkpoints, replace the whole state, or start
 * and stop qubes (whether a qube runs is not a part: model/parts.ts) or reload what is unchanged.
 */
const NOT_A_STEP = new Set(['apply', 'confirm', 'rollback', 'undo', 'qubes.init', 'qubes.import', 'start', 'shutdown', 'kill', 'firewall.reload']);

const checkpointId = v.pipe(v.string(), v.regex(CHECKPOINT_ID_RE, 'a checkpoint id: cp1, cp2, …'));

function bookOf(host: Host): CheckpointBook {
  if (!host.checkpoints) throw new QnetError(diag('QNET6208', 'checkpoints are not kept here: a preview changes nothing to roll back'));
  return host.checkpoints;
}

const keysOf = (c: Checkpoint) => [...new Set([...Object.keys(c.before), ...Object.keys(c.after)])].sort();

async function find(book: CheckpointBook, id: string): Promise<{ data: CheckpointData; cp: Checkpoint }> {
  const data = await book.read();
  const cp = data.checkpoints.find((c) => c.id === id);
  if (!cp) throw new QnetError(diag('QNET6202', `no checkpoint '${id}'`, { hint: `the last ${HISTORY} applies are kept: see history` }));
  return { data, cp };
}

/** Drop the oldest ended checkpoints beyond HISTORY. */
function prune(data: CheckpointData): void {
  let over = data.checkpoints.length - HISTORY;
  data.checkpoints = data.checkpoints.filter((c) => !(over > 0 && c.state !== 'pending' && over-- > 0));
}

const ended = (cp: Checkpoint, state: Checkpoint['state'], now: number) => {
  cp.state = state;
  cp.ended = now;
  delete cp.confirmBy;
};

const notPending = (cp: Checkpoint, what: string) =>
  new QnetError(diag('QNET6203', `checkpoint ${cp.id} is ${cp.state}, not pending: nothing to ${what}`, cp.state === 'confirmed' ? { hint: 'undo puts a confirmed apply back' } : {}));

export const ApplyResultSchema = v.strictObject({
  checkpoint: v.nullable(v.string()),
  state: v.nullable(v.picklist(['pending', 'confirmed'])),
  /** Epoch seconds: rolled back then unless confirmed. */
  confirmBy: v.nullable(v.number()),
  /** What the apply changed, as people read it (`the rules of work`). */
  changed: v.array(v.string()),
  /** Each step's own value, in order. */
  values: v.array(v.unknown()),
});

export const apply = defineOp({
  name: 'apply',
  kind: 'change',
  summary: 'apply change operations all or nothing (one write, one converge), keeping a checkpoint to confirm, roll back or undo',
  output: ApplyResultSchema,
  input: v.strictObject({
    ops: steps,
    confirmWithin: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(86_400), v.description('seconds before the daemon rolls it back unless confirmed; 0: no timer')), CONFIRM_DEFAULT_S),
    label: v.optional(v.pipe(v.string(), v.maxLength(200))),
  }),
  run: async (i, host): Promise<OpResult<v.InferOutput<typeof ApplyResultSchema>>> => {
    const book = bookOf(host);
    if (i.confirmWithin > 0 && !host.confirmTimer)
      throw new QnetError(
        diag('QNET6201', 'a confirm timer needs the daemon: without one nothing would roll this back', { hint: 'start qnet daemon, or apply with confirmWithin 0 (undo stays possible)' }),
      );
    // One unconfirmed apply at a time: a second one built on it would, rolled back on its own,
    // bring the first back after the first was rolled back.
    const waiting = (await book.read()).checkpoints.find((c) => c.state === 'pending');
    if (waiting)
      throw new QnetError(diag('QNET6210', `apply ${waiting.id} is not confirmed yet: confirm or roll it back first`, { hint: `qnet confirm ${waiting.id}, or qnet rollback ${waiting.id}` }));
    const before = await host.read();
    const p = new PreviewHost(host, cloneModel(before));
    const { findOp, invoke } = await import('./registry.js');
    const warnings: Diagnostic[] = [];
    const values: unknown[] = [];
    for (const [n, s] of i.ops.entries()) {
      const op = await findOp(s.name);
      if (op?.kind !== 'change' || NOT_A_STEP.has(s.name)) throw new QnetError(diag('QNET6205', `step ${n + 1}: '${s.name.slice(0, 64)}' cannot be a step of an apply`, { hint: 'steps are the change operations that edit the policy: firewall.add/del/set/reset, connections.*, forwards.*, qubes.*, prefs.set, …; start and stop qubes on their own' }));
      try {
        const r = await invoke(p, s.name, s.input);
        values.push(r.value);
        warnings.push(...r.warnings);
      } catch (e) {
        // Nothing was written: say which step refused.
        if (e instanceof QnetError) throw new QnetError({ ...e.diag, message: `step ${n + 1} (${s.name}): ${e.diag.message}` });
        throw e;
      }
    }
    const parts = changedParts(before, p.working);
    const keys = [...new Set([...Object.keys(parts.before), ...Object.keys(parts.after)])].sort();
    if (!keys.length) return result({ checkpoint: null, state: null, confirmBy: null, changed: [], values }, warnings);
    const data = await book.read();
    const now = host.now();
    const cp: Checkpoint = {
      id: `cp${data.next}`,
      at: now,
      ...(i.label ? { label: i.label } : {}),
      steps: i.ops.map((s) => ({ name: s.name, input: s.input })),
      state: i.confirmWithin > 0 ? 'pending' : 'confirmed',
      ...(i.confirmWithin > 0 ? { confirmBy: now + i.confirmWithin } : {}),
      ...parts,
    };
    let recorded = false;
    try {
      await host.change(effectOfParts(keys), async (m) => {
        // The daemon runs one change at a time; offline another writer may have come between.
        const moved = partsDiffering(m, keys, parts.before);
        if (moved.length) throw new QnetError(diag('QNET6206', `${moved.map(describePart).join(', ')} changed while the apply ran: nothing was applied`, { hint: 'preview and apply again' }));
        restoreParts(m, keys, parts.after);
        data.next++;
        data.checkpoints.push(cp);
        prune(data);
        await book.write(data);
        recorded = true;
      });
    } catch (e) {
      // Nothing reached the files: the checkpoint goes too.
      if (recorded) await book.write({ ...data, checkpoints: data.checkpoints.filter((c) => c !== cp) }).catch(() => {});
      throw e;
    }
    if (cp.confirmBy !== undefined) host.confirmTimer!(cp.id, cp.confirmBy);
    return result({ checkpoint: cp.id, state: cp.state as 'pending' | 'confirmed', confirmBy: cp.confirmBy ?? null, changed: keys.map(describePart), values }, warnings);
  },
});

export const confirm = defineOp({
  name: 'confirm',
  kind: 'change',
  summary: 'keep a pending apply: its confirm timer stops',
  input: v.strictObject({ checkpoint: checkpointId }),
  run: async (i, host) => {
    const book = bookOf(host);
    const { data, cp } = await find(book, i.checkpoint);
    if (cp.state !== 'pending') throw notPending(cp, 'confirm');
    ended(cp, 'confirmed', host.now());
    await book.write(data);
    host.confirmTimer?.(cp.id, undefined);
    return result({ checkpoint: cp.id, state: cp.state });
  },
});

/** Put checkpoint `cp` back (its parts as before); `check`: refuse if they changed since. */
async function putBack(host: Host, book: CheckpointBook, data: CheckpointData, cp: Checkpoint, state: 'rolled-back' | 'undone', check: boolean): Promise<Diagnostic[]> {
  const keys = keysOf(cp);
  let overwritten: string[] = [];
  await host.change(effectOfParts(keys), async (m: Model) => {
    overwritten = partsDiffering(m, keys, cp.after);
    if (check && overwritten.length)
      throw new QnetError(
        diag('QNET6204', `cannot undo ${cp.id}: ${overwritten.map(describePart).join(', ')} changed since`, { hint: 'undo the later applies first, or edit by hand' }),
      );
    restoreParts(m, keys, cp.before);
  });
  // Written once the kernel and the files hold it: a crash before leaves the checkpoint as it was
  // (a pending one is rolled back again at start, which then changes nothing).
  ended(cp, state, host.now());
  await book.write(data);
  host.confirmTimer?.(cp.id, undefined);
  return overwritten.length ? [warning('QNET6207', `rolling back ${cp.id} also put back later changes to ${overwritten.map(describePart).join(', ')}`)] : [];
}

export const rollback = defineOp({
  name: 'rollback',
  kind: 'change',
  summary: 'put a pending apply back now, as its timer would',
  input: v.strictObject({ checkpoint: checkpointId }),
  run: async (i, host) => {
    const book = bookOf(host);
    const { data, cp } = await find(book, i.checkpoint);
    if (cp.state !== 'pending') throw notPending(cp, 'roll back');
    const warnings = await putBack(host, book, data, cp, 'rolled-back', false);
    return result({ checkpoint: cp.id, state: cp.state, changed: keysOf(cp).map(describePart) }, warnings);
  },
});

export const undo = defineOp({
  name: 'undo',
  kind: 'change',
  summary: 'put a recent apply back, if what it changed has not changed since',
  input: v.strictObject({ checkpoint: checkpointId }),
  run: async (i, host) => {
    const book = bookOf(host);
    const { data, cp } = await find(book, i.checkpoint);
    if (cp.state !== 'pending' && cp.state !== 'confirmed') throw new QnetError(diag('QNET6203', `checkpoint ${cp.id} is ${cp.state} already`));
    await putBack(host, book, data, cp, 'undone', true);
    return result({ checkpoint: cp.id, state: cp.state, changed: keysOf(cp).map(describePart) });
  },
});

const str = v.string();
export const HistoryEntrySchema = v.strictObject({
  id: str,
  at: v.number(),
  label: v.optional(str),
  /** Each step as `name {input}` (the input cut at 200 characters). */
  steps: v.array(str),
  state: v.picklist(['pending', 'confirmed', 'rolled-back', 'undone']),
  confirmBy: v.optional(v.number()),
  ended: v.optional(v.number()),
  changed: v.array(str),
  /** Whether undo would be taken now; for a pending or confirmed apply that it would not, why. */
  undoable: v.boolean(),
  why: v.optional(str),
});

export const history = defineOp({
  name: 'history',
  kind: 'read',
  summary: `the last ${HISTORY} applies, newest first: pending, confirmed, rolled back or undone, and whether undo is possible`,
  output: v.array(HistoryEntrySchema),
  input: v.strictObject({}),
  run: async (_i, host) => {
    const data = await bookOf(host).read();
    if (!data.checkpoints.length) return result([]);
    const m = await host.read();
    const out = data.checkpoints
      .slice()
      .reverse()
      .map((c) => {
        const keys = keysOf(c);
        const live = c.state === 'pending' || c.state === 'confirmed';
        const moved = live ? partsDiffering(m, keys, c.after) : [];
        const why = moved.length ? `${moved.map(describePart).join(', ')} changed since` : undefined;
        return {
          id: c.id,
          at: c.at,
          ...(c.label !== undefined ? { label: c.label } : {}),
          steps: c.steps.map((s) => `${s.name} ${JSON.stringify(s.input ?? {}).slice(0, 200)}`),
          state: c.state,
          ...(c.confirmBy !== undefined ? { confirmBy: c.confirmBy } : {}),
          ...(c.ended !== undefined ? { ended: c.ended } : {}),
          changed: keys.map(describePart),
          undoable: live && !moved.length,
          ...(why !== undefined ? { why } : {}),
        };
      });
    return result(out);
  },
});

/** The pending checkpoints (a daemon starting or stopping rolls them back). */
export async function pendingCheckpoints(book: CheckpointBook): Promise<Checkpoint[]> {
  return (await book.read()).checkpoints.filter((c) => c.state === 'pending');
}
