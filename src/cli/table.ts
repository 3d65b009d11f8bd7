// Tables aligned as `column -t` aligns them (what qvm-ls and qvm-firewall pipe through): each column
// as wide as its widest cell, two spaces between columns, no trailing spaces.
export function formatTable(rows: readonly (readonly string[])[]): string {
  if (!rows.length) return '';
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  let out = '';
  for (const r of rows) {
    let line = '';
    r.forEach((c, i) => (line += i === r.length - 1 ? c : c.padEnd(widths[i]! + 2)));
    out += line.trimEnd() + '\n';
  }
  return out;
}

/** For listings: `--json` and `--format json` both mean JSON. */
export function wantsJson(opts: { json?: boolean; format?: string }): boolean {
  return opts.json === true || opts.format === 'json';
}

export const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';
