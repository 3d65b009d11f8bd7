// The manager's frame: navigation, role, live-ness of the event feed, light/dark, and the page
// the address names. Keyboard: every control is a link, button or form field in reading order.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { subscribe, type QnetEvent, type Role } from './api.js';
import { SessionContext, type Session } from './state.js';
import { href, useRoute } from './route.js';
import { PAGES } from './pages/index.js';

type Theme = 'light' | 'dark' | 'auto';

function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('qnet-theme') as Theme | null) ?? 'auto');
  useEffect(() => {
    localStorage.setItem('qnet-theme', theme);
    if (theme === 'auto') delete document.documentElement.dataset['theme'];
    else document.documentElement.dataset['theme'] = theme;
  }, [theme]);
  return [theme, setTheme];
}

export function App({ role }: { role: Role }) {
  const route = useRoute();
  const [live, setLive] = useState(false);
  const [theme, setTheme] = useTheme();
  const listeners = useMemo(() => new Set<(e: QnetEvent) => void>(), []);
  useEffect(
    () =>
      subscribe(
        (e) => listeners.forEach((fn) => fn(e)),
        (s) => {
          setLive(s === 'open');
          // Back after a drop: whatever changed meanwhile was not announced; let every view re-read.
          if (s === 'open') listeners.forEach((fn) => fn({ type: 'hello', pid: 0 }));
        },
      ),
    [listeners],
  );
  const session: Session = useMemo(
    () => ({
      role,
      live,
      onEvent: (fn) => {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
    }),
    [role, live, listeners],
  );
  const page = PAGES.find((p) => p.name === route.page) ?? PAGES[0]!;
  useEffect(() => {
    document.title = `${page.title} · qnet manager`;
  }, [page]);
  const Page = page.component;
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">qnet</span>
        <nav aria-label="pages">
          {PAGES.map((p) => (
            <a key={p.name} href={href(p.name)} aria-current={p === page ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <span class={`badge role-${role}`} data-testid="role" title={role === 'viewer' ? 'this token may read only' : 'this token may change the policy'}>
          {role}
        </span>
        <span class={`badge ${live ? 'live' : 'stale'}`} data-testid="live" role="status">
          {live ? 'live' : 'reconnecting…'}
        </span>
        <label class="theme">
          <span class="sr-only">Theme</span>
          <select value={theme} onChange={(e) => setTheme((e.target as HTMLSelectElement).value as Theme)} aria-label="theme">
            <option value="auto">auto</option>
            <option value="light">light</option>
            <option value="dark">dark</option>
          </select>
        </label>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </SessionContext.Provider>
  );
}
