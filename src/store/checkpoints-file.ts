// The checkpoints of recent applies (ops/checkpoints.ts): what each apply changed, before and after,
// so that it can be rolled back (its confirm timer ran out) or undone. One file in the state
// directory, written atomically; it outlives a daemon and a reboot, so an apply nobody confirmed is
// rolled back when the next daemon starts (fail closed). Read as hostile input: bounded, checked.
import { join } from 'node:path';
import { diag } from '../model/diagnostics.js';
import { QnetError } from '../model/result.js';
import { mkdirDurable, writeFileAtomic } from './atomic.js';
import { readStateFile, StateFileError } from './state-file.js';

/** A part of the model an apply changed (model/parts.ts), as it was: absent = did not exist. */
export type Parts = Record<string, unknown>;

export type CheckpointState = 'pending' | 'confirmed' | 'rolled-back' | 'undone';

export interface Checkpoint {
  id: string;
  /** Epoch seconds of the apply. */
  at: number;
  label?: string;
  /** The change operations applied, in order. */
  steps: { name: string; input: unknown }[];
  state: CheckpointState;
  /** While pending: rolled back at this time (epoch seconds) unless confirmed; absent: no timer. */
  confirmBy?: number;
  /** Epoch seconds of the confirm, rollback or undo. */
  ended?: number;
  /** The parts the apply changed, as they were before and as it left them (absent keys: absent parts). */
  before: Parts;
  after: Parts;
}

export interface CheckpointData {
  /** The number of the next checkpoint id (`cp<next>`). */
  next: number;
  /** Oldest first. */
  checkpoints: Checkpoint[];
}

/** Where the checkpoints are kept (Host.checkpoints): read and written whole. */
export interface CheckpointBook {
  read(): Promise<CheckpointData>;
  write(data: CheckpointData): Promise<void>;
}

/** Large enough for an apply of a firewall.set of 100k rules, before and after. */
const MAX_BYTES = 128 * 1024 * 1024;
export const CHECKPOINT_ID_RE = /^cp[1-9][0-9]{0,8}$/;
const STATES: readonly CheckpointState[] = ['pending', 'confirmed', 'rolled-back', 'undone'];

export const checkpointsFilePath = (stateDir: string) => join(stateDir, 'checkpoints.json');

const broken = (path: string, why: string) =>
  new QnetError(diag('QNET3401', `${path}: ${why}`, { hint: 'move the file away: the history of applies is lost, pending ones are not rolled back' }));

function isCheckpoint(c: unknown): c is Checkpoint {
  if (typeof c !== 'object' || c === null) return false;
  const x = c as Record<string, unknown>;
  const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  return (
    typeof x['id'] === 'string' && CHECKPOINT_ID_RE.test(x['id']) && Number.isFinite(x['at']) && STATES.includes(x['state'] as CheckpointState) &&
    Array.isArray(x['steps']) && obj(x['before']) && obj(x['after']) && (x['confirmBy'] === undefined || Number.isFinite(x['confirmBy'])) &&
    (x['label'] === undefined || typeof x['label'] === 'string')
  );
}

export class CheckpointFile implements CheckpointBook {
  constructor(private readonly stateDir: string) {}

  async read(): Promise<CheckpointData> {
    const path = checkpointsFilePath(this.stateDir);
    let buf: Buffer | null;
    try {
      buf = await readStateFile(path, MAX_BYTES);
    } catch (e) {
      throw broken(path, e instanceof StateFileError ? e.reason : String(e));
    }
    if (buf === null) return { next: 1, checkpoints: [] };
    let j: unknown;
    try {
      j = JSON.parse(buf.toString('utf8'));
    } catch {
      throw broken(path, 'not JSON');
    }
    const d = j as Partial<CheckpointData>;
    if (typeof d !== 'object' || d === null || !Number.isSafeInteger(d.next) || (d.next as number) < 1 || !Array.isArray(d.checkpoints) || !d.checkpoints.every(isCheckpoint))
      throw broken(path, 'expected {"next": N, "checkpoints": [{id, at, steps, state, before, after}, …]}');
    return { next: d.next!, checkpoints: d.checkpoints };
  }

  async write(data: CheckpointData): Promise<void> {
    await mkdirDurable(this.stateDir);
    await writeFileAtomic(checkpointsFilePath(this.stateDir), JSON.stringify(data) + '\n', 0o600);
  }
}
