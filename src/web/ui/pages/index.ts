// The manager's pages, in the order of the navigation bar. One file per page under pages/.
import type { FunctionComponent } from 'preact';
import type { Route } from '../route.js';
import { QubesPage } from './qubes.js';
import { FirewallPage } from './firewall.js';
import { ExplainPage } from './explain.js';
import { ChangesPage } from './changes.js';
import { ConnectionsPage } from './connections.js';
import { ForwardsPage } from './forwards.js';
import { MatrixPage } from './matrix.js';
import { CountersPage } from './counters.js';
import { LogPage } from './log.js';

export interface Page {
  name: string;
  title: string;
  component: FunctionComponent<{ route: Route }>;
}

export const PAGES: readonly Page[] = [
  { name: 'qubes', title: 'Qubes', component: QubesPage },
  { name: 'firewall', title: 'Firewall', component: FirewallPage },
  { name: 'explain', title: 'Explain', component: ExplainPage },
  { name: 'connections', title: 'Connections', component: ConnectionsPage },
  { name: 'forwards', title: 'Forwards', component: ForwardsPage },
  { name: 'matrix', title: 'Matrix', component: MatrixPage },
  { name: 'counters', title: 'Counters', component: CountersPage },
  { name: 'log', title: 'Drop log', component: LogPage },
  { name: 'changes', title: 'Changes', component: ChangesPage },
];
