// What every page shares: the caller's role, the live event feed, and useOp — an operation's value
// that is read again whenever the daemon says something changed (so a change made with the CLI
// shows here without a reload).
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, call, type Diagnostic, type QnetEvent, type Role } from './api.js';

export interface Session {
  role: Role;
  /** Register for every event; returns the unsubscribe. */
  onEvent(fn: (e: QnetEvent) => void): () => void;
  /** False while the event stream is down (views may be stale). */
  live: boolean;
}

export const SessionContext = createContext<Session>({ role: 'viewer', onEvent: () => () => {}, live: false });
export const useSession = () => useContext(SessionContext);
export const canEdit = (s: Session) => s.role === 'editor';

export function useEvents(fn: (e: QnetEvent) => void): void {
  const { onEvent } = useSession();
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => onEvent((e) => ref.current(e)), [onEvent]);
}

export interface OpState<T> {
  value?: T;
  /** What the op warned about with its value (a broken rules file, a log the simulator cannot keep). */
  warnings: Diagnostic[];
  error?: ApiError;
  loading: boolean;
  reload(): void;
}

/** Events after which a read op's value may differ (everything but the greeting and the drop log's news). */
const changes = (e: QnetEvent) => e.type !== 'hello' && e.type !== 'dropped';

/**
 * The value of read op `op` on `input`; read again when `deps` change and after any change event
 * (coalesced: one read at a time, one more if events came while it ran).
 */
export function useOp<T>(op: string, input: object, deps: readonly unknown[] = [], refreshOn: (e: QnetEvent) => boolean = changes): OpState<T> {
  const [state, setState] = useState<{ value?: T; warnings: Diagnostic[]; error?: ApiError; loading: boolean }>({ loading: true, warnings: [] });
  const [tick, setTick] = useState(0);
  const busy = useRef(false);
  const again = useRef(false);
  useEvents((e) => {
    if (!refreshOn(e)) return;
    if (busy.current) again.current = true;
    else setTick((t) => t + 1);
  });
  useEffect(() => {
    const ac = new AbortController();
    busy.current = true;
    setState((s) => ({ ...s, loading: true }));
    call<T>(op, input, ac.signal).then(
      (r) => setState({ value: r.value, warnings: r.warnings, loading: false }),
      (e: unknown) => {
        if ((e as Error).name !== 'AbortError') setState((s) => ({ ...s, error: e instanceof ApiError ? e : new ApiError(0, [{ code: 'UI', message: String(e) }]), loading: false }));
      },
    ).finally(() => {
      busy.current = false;
      if (again.current) {
        again.current = false;
        setTick((t) => t + 1);
      }
    });
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [op, JSON.stringify(input), tick, ...deps]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}
