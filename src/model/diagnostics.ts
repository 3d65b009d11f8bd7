// One catalogue of user-facing errors and warnings, with stable codes (QNETnnnn), so scripts and
// tests can match on the code and the wording can improve without breaking them.
//   1xxx  rule language            2xxx  qubes and topology
//   3xxx  store / files            4xxx  compiler, DNS, simulator
//   5xxx  backend / kernel         6xxx  daemon / API         9xxx usage
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  qube?: string;
  ruleIndex?: number;
  file?: string;
  hint?: string;
}

export function diag(code: string, message: string, extra: Partial<Diagnostic> = {}): Diagnostic {
  return { code, severity: 'error', message, ...extra };
}

export function warning(code: string, message: string, extra: Partial<Diagnostic> = {}): Diagnostic {
  return { code, severity: 'warning', message, ...extra };
}

/** `work: rule 3: message (QNET1001)` — the one-line form the CLI prints. */
export function formatDiagnostic(d: Diagnostic): string {
  // A message that already names its file (store errors do) is not prefixed with it again.
  const file = d.file && !d.message.startsWith(d.file) ? d.file : undefined;
  const where = [file, d.qube, d.ruleIndex !== undefined ? `rule ${d.ruleIndex}` : undefined]
    .filter((x) => x !== undefined)
    .join(': ');
  const hint = d.hint ? ` — ${d.hint}` : '';
  return `${where ? where + ': ' : ''}${d.message}${hint} (${d.code})`;
}
