// A list that renders only the rows in view (plus a margin): 100k rules cost what 40 do. Rows have
// one fixed height, so the position of any row is known without measuring; `reveal` scrolls a row
// into view (keyboard moves, "go to rule 3").
import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  /** Height of the viewport in pixels (the list never grows the page beyond it). */
  height: number;
  row: (index: number) => ComponentChildren;
  /** Scroll so that this row is visible (changes of the value are acted on). */
  reveal?: { index: number } | undefined;
  overscan?: number;
  /** Attributes of the scrolling element (role, aria-*, data-*). */
  attrs?: Record<string, string | number | boolean | undefined>;
}

export function VirtualList({ count, rowHeight, height, row, reveal, overscan = 8, attrs = {} }: VirtualListProps) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const viewport = Math.min(height, Math.max(count, 1) * rowHeight);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !reveal) return;
    const y = reveal.index * rowHeight;
    if (y < el.scrollTop) el.scrollTop = y;
    else if (y + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = y + rowHeight - el.clientHeight;
    setTop(el.scrollTop);
  }, [reveal, rowHeight]);
  // A shorter list (a filter) may leave the scroll position past its end.
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollTop > count * rowHeight) el.scrollTop = 0;
  }, [count, rowHeight]);
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((top + viewport) / rowHeight) + overscan);
  const rows: ComponentChildren[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div key={i} class="vrow" style={{ top: `${i * rowHeight}px`, height: `${rowHeight}px` }}>
        {row(i)}
      </div>,
    );
  }
  return (
    <div ref={box} class="vlist" style={{ height: `${viewport}px` }} onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)} {...attrs}>
      <div class="vspace" style={{ height: `${count * rowHeight}px` }}>
        {rows}
      </div>
    </div>
  );
}
