// Time left until a moment given on the daemon's clock (rule expiry, a DNS refresh), counted down
// every second. `skew` is daemon clock minus this browser's, taken when the value was read.
import { useEffect, useState } from 'preact/hooks';

/** Seconds since the epoch on this browser's clock, re-rendering every second while `active`. */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

export function left(seconds: number): string {
  if (seconds <= 0) return '0s';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}:${String(sec).padStart(2, '0')}`;
}

export function Countdown({ at, now, skew, done }: { at: number; now: number; skew: number; done: string }) {
  const rest = at - (now + skew);
  const when = new Date(at * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  return (
    <time dateTime={new Date(at * 1000).toISOString()} title={when} data-left={Math.max(0, Math.floor(rest))}>
      {rest > 0 ? left(rest) : done}
    </time>
  );
}
