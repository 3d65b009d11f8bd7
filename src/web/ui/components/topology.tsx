// The network as a picture: qubes (coloured by label), their netvm links, the connections between
// them and the port forwards from the outside, laid out by elkjs (layered, top to bottom: uplink
// first) and drawn by preact as SVG. Each edge is a link to its trace on the Explain page, so it is
// reached with Tab and followed with Enter like any link.
//
// elkjs: its small API here, the layout itself in a Web Worker (dist/web/elk-worker.js, elkjs's own
// worker build, 1.5 MB, started on the first layout), so a big graph never blocks the page. A
// same-origin worker with no eval is what the manager's CSP (`script-src 'self'`) allows; the
// browser tests load this page and watch for CSP violations.
import { useEffect, useMemo, useState } from 'preact/hooks';
import ELK, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk-api.js';
import type { ConnectionView, ForwardView } from '../../../ops/connections.js';
import type { QubeView } from '../../../ops/views.js';
import { href } from '../route.js';
import { Problems } from './problems.js';

/** The node standing for the world beyond the uplinks (`check`'s source name for it). */
export const OUTSIDE = 'outside';

type EdgeKind = 'netvm' | 'connection' | 'forward';

interface EdgeInfo {
  id: string;
  kind: EdgeKind;
  /** Layout direction: the netvm above its clients, the outside above everything. */
  source: string;
  target: string;
  label?: string;
  /** A connection both ways: an arrow at each end. */
  both?: boolean;
  /** Where the trace of this edge is (the Explain page's query keys). */
  link: string;
  /** Said to screen readers and shown as a tooltip. */
  title: string;
}

interface NodeInfo {
  id: string;
  label: string;
  sub: string;
  halted: boolean;
}

const CHAR_W = 7.3; // 12 px monospace
const NODE_H = 40;
/** Wide enough for its name and any second line (an address is at most 15 characters): a state change needs no new layout. */
const nodeWidth = (n: NodeInfo) => Math.ceil(Math.max(n.label.length, 15) * CHAR_W) + 26;
const LABEL_H = 16;

const protoPort = (proto?: string, ports?: { start: number; end: number }) =>
  `${proto ?? 'any'}${ports ? `/${ports.start === ports.end ? ports.start : `${ports.start}-${ports.end}`}` : ''}`;

/** What the picture shows, from what the ops returned (no policy computed here). */
export function topologyOf(qubes: readonly QubeView[], connections: readonly ConnectionView[], forwards: readonly ForwardView[]): { nodes: NodeInfo[]; edges: EdgeInfo[] } {
  const names = new Set(qubes.map((q) => q.name));
  const nodes: NodeInfo[] = qubes.map((q) => ({
    id: q.name,
    label: q.name,
    sub: q.state === 'Running' ? (q.detached ? 'detached' : (q.ip ?? 'running')) : 'halted',
    halted: q.state !== 'Running',
  }));
  const edges: EdgeInfo[] = [];
  for (const q of qubes)
    if (q.netvm && names.has(q.netvm))
      edges.push({ id: `netvm:${q.name}`, kind: 'netvm', source: q.netvm, target: q.name, link: href('explain', { src: q.name, dst: q.netvm }), title: `${q.name} uses ${q.netvm} as netvm: trace ${q.name} → ${q.netvm}` });
  for (const c of connections) {
    if (!names.has(c.from) || !names.has(c.to)) continue;
    const pp = protoPort(c.proto, c.ports);
    edges.push({
      id: `connection:${c.id}`,
      kind: 'connection',
      source: c.from,
      target: c.to,
      label: `${c.id} ${pp}${c.bothWays ? ' ⇄' : ''}`,
      both: c.bothWays,
      link: href('explain', { src: c.from, dst: c.to, proto: c.proto, port: c.ports?.start }),
      title: `connection ${c.id}: ${c.text}${c.active ? '' : ` (inactive${c.why ? `: ${c.why}` : ''})`}: trace ${c.from} → ${c.to} ${pp}`,
    });
  }
  const fwds = forwards.filter((f) => names.has(f.qube));
  if (fwds.length) nodes.push({ id: OUTSIDE, label: OUTSIDE, sub: 'uplink', halted: false });
  for (const f of fwds)
    edges.push({
      id: `forward:${f.id}`,
      kind: 'forward',
      source: OUTSIDE,
      target: f.qube,
      label: `${f.id} ${f.proto}/${f.port}${f.toPort && f.toPort !== f.port ? `→${f.toPort}` : ''}`,
      link: href('explain', { src: OUTSIDE, dst: f.qube, proto: f.proto, port: f.port }),
      title: `forward ${f.id}: outside ${f.proto}/${f.port} → ${f.qube}${f.active ? '' : ` (inactive${f.why ? `: ${f.why}` : ''})`}: trace it`,
    });
  return { nodes, edges };
}

let elk: InstanceType<typeof ELK> | undefined;
/** Served next to app.js (scripts/build-web.mjs copies it); one worker for the page's life. */
const getElk = () => (elk ??= new ELK({ workerUrl: '/elk-worker.js' }));

interface Placed {
  width: number;
  height: number;
  nodes: Map<string, { x: number; y: number; w: number }>;
  edges: Map<string, { d: string; label?: { x: number; y: number; w: number } }>;
}

/**
 * Quiet time before a new layout of a changed picture: a burst of changes (a script creating qubes)
 * costs one layout, not one each, and the page's thread stays free for the table meanwhile.
 */
const SETTLE_MS = 300;

/** The layout, or undefined when `stale()` says a newer one was asked for before this one started. */
async function layout(nodes: readonly NodeInfo[], edges: readonly EdgeInfo[], settleMs: number, stale: () => boolean): Promise<Placed | undefined> {
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.edgeRouting': 'POLYLINE',
      'elk.spacing.nodeNode': '28',
      'elk.layered.spacing.nodeNodeBetweenLayers': '46',
      'elk.spacing.edgeLabel': '4',
      'elk.edgeLabels.placement': 'CENTER',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
    },
    children: nodes.map((n) => ({ id: n.id, width: nodeWidth(n), height: NODE_H })),
    edges: edges.map(
      (e): ElkExtendedEdge => ({
        id: e.id,
        sources: [e.source],
        targets: [e.target],
        ...(e.label ? { labels: [{ text: e.label, width: Math.ceil(e.label.length * CHAR_W * 0.92) + 8, height: LABEL_H }] } : {}),
      }),
    ),
  };
  if (settleMs) await new Promise((r) => setTimeout(r, settleMs));
  if (stale()) return undefined;
  const engine = getElk();
  const out = await engine.layout(graph);
  const placed: Placed = { width: out.width ?? 0, height: out.height ?? 0, nodes: new Map(), edges: new Map() };
  for (const c of out.children ?? []) placed.nodes.set(c.id, { x: c.x ?? 0, y: c.y ?? 0, w: c.width ?? 0 });
  for (const e of (out.edges ?? []) as ElkExtendedEdge[]) {
    const pts = (e.sections ?? []).flatMap((s) => [s.startPoint, ...(s.bendPoints ?? []), s.endPoint]);
    const l = e.labels?.[0];
    placed.edges.set(e.id, {
      d: pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' '),
      ...(l ? { label: { x: l.x ?? 0, y: l.y ?? 0, w: l.width ?? 0 } } : {}),
    });
  }
  return placed;
}

export function Topology({ qubes, connections, forwards, labels }: { qubes: readonly QubeView[]; connections: readonly ConnectionView[]; forwards: readonly ForwardView[]; labels: ReadonlyMap<string, string> }) {
  const { nodes, edges } = useMemo(() => topologyOf(qubes, connections, forwards), [qubes, connections, forwards]);
  // Lay out again only when the picture's structure changed, not on every re-read or state change
  // (the layout runs in this thread: hundreds of qubes take a noticeable fraction of a second).
  const key = JSON.stringify([nodes.map((n) => n.id), edges.map((e) => [e.id, e.source, e.target, e.label])]);
  const [placed, setPlaced] = useState<{ key: string; p: Placed }>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let live = true;
    layout(nodes, edges, placed ? SETTLE_MS : 0, () => !live).then(
      (p) => p && live && (setPlaced({ key, p }), setError(undefined)),
      (e: unknown) => live && setError(String(e)),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  if (error) return <Problems items={[{ code: 'UI', message: `the topology could not be laid out: ${error}` }]} />;
  if (!placed) return <p class="empty">Laying out the topology…</p>;
  const p = placed.p;
  const info = new Map(nodes.map((n) => [n.id, n]));
  return (
    <div class="topology-wrap">
      <svg class="topology" width={p.width} height={p.height} viewBox={`0 0 ${p.width} ${p.height}`} role="group" aria-label="network topology: netvm links, connections and forwards" data-ready={placed.key === key ? 'yes' : 'stale'}>
        <defs>
          <marker id="topo-arrow-connection" class="arrow-connection" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0 0 L10 5 L0 10 z" />
          </marker>
          <marker id="topo-arrow-forward" class="arrow-forward" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0 0 L10 5 L0 10 z" />
          </marker>
        </defs>
        {edges.map((e) => {
          const at = p.edges.get(e.id);
          if (!at) return null;
          return (
            <a key={e.id} href={e.link} class={`edge edge-${e.kind}`} data-edge={e.id} aria-label={e.title}>
              <title>{e.title}</title>
              <path class="hit" d={at.d} />
              <path
                class="line"
                d={at.d}
                {...(e.kind !== 'netvm' ? { 'marker-end': `url(#topo-arrow-${e.kind})` } : {})}
                {...(e.both ? { 'marker-start': `url(#topo-arrow-${e.kind})` } : {})}
              />
              {at.label && e.label ? (
                <g class="edge-label">
                  <rect x={at.label.x} y={at.label.y} width={at.label.w} height={LABEL_H} rx="3" />
                  <text x={at.label.x + at.label.w / 2} y={at.label.y + LABEL_H - 4}>
                    {e.label}
                  </text>
                </g>
              ) : null}
            </a>
          );
        })}
        {[...p.nodes].map(([id, at]) => {
          const n = info.get(id);
          if (!n) return null;
          return (
            <g key={id} class={`node${n.halted ? ' halted' : ''}${id === OUTSIDE ? ' outside' : ''}`} data-node={id} transform={`translate(${at.x} ${at.y})`}>
              <title>{id === OUTSIDE ? 'the outside world, beyond the uplink' : `${n.label}: ${n.sub}`}</title>
              <rect class="box" width={at.w} height={NODE_H} rx="5" />
              <rect class={`bar label-${labels.get(id) ?? 'none'}`} width="6" height={NODE_H} rx="2" />
              <text class="name" x="14" y="17">
                {n.label}
              </text>
              <text class="sub" x="14" y="32">
                {n.sub}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
