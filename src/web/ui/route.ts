// Hash routes: #/page/arg…?key=value. The fragment never reaches the server, so a page with its
// state in the address can be bookmarked and reloaded; links are plain <a href="#/…">.
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  page: string;
  args: string[];
  query: URLSearchParams;
}

export function parseRoute(hash: string): Route {
  const [path = '', q = ''] = hash.replace(/^#\/?/, '').split('?', 2);
  const [page = 'qubes', ...args] = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page, args, query: new URLSearchParams(q) };
}

/** The address of a page: href('firewall', 'work') → #/firewall/work. */
export function href(page: string, ...args: (string | { [k: string]: string | number | undefined })[]): string {
  const parts = args.filter((a): a is string => typeof a === 'string').map(encodeURIComponent);
  const q = args.find((a): a is Record<string, string | number | undefined> => typeof a === 'object');
  const query = q ? new URLSearchParams(Object.entries(q).filter((e): e is [string, string | number] => e[1] !== undefined).map(([k, v]) => [k, String(v)])).toString() : '';
  return `#/${[page, ...parts].join('/')}${query ? `?${query}` : ''}`;
}

export function navigate(to: string): void {
  location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
