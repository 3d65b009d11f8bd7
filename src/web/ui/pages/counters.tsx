// Placeholder until this page is built (issue #11).
import type { Route } from '../route.js';

export function CountersPage(_: { route: Route }) {
  return <p class="empty">This page is not built yet.</p>;
}
