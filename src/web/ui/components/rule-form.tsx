// The form of one rule, every shape of the Qubes rule language: action, destination (address,
// network or name), proto, ports, icmptype, specialtarget=dns, expire and comment. It checks
// nothing itself: the fields become an Admin API line and the daemon's parser answers; each of its
// refusals (code, message, hint) is shown next to the field it is about, the rest above the form.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { Diagnostic } from '../api.js';
import type { FirewallRow } from '../../../ops/views.js';
import { Problems } from './problems.js';

export interface Draft {
  action: 'accept' | 'drop';
  dst: string;
  proto: '' | 'tcp' | 'udp' | 'icmp';
  ports: string;
  icmptype: string;
  dns: boolean;
  expire: string;
  comment: string;
}

type Field = keyof Draft;

export const EMPTY_DRAFT: Draft = { action: 'accept', dst: '', proto: '', ports: '', icmptype: '', dns: false, expire: '', comment: '' };

export function draftOf(r: FirewallRow): Draft {
  return {
    action: r.action,
    dst: r.dsthost ?? '',
    proto: r.proto ?? '',
    ports: r.dstports ? (r.dstports.start === r.dstports.end ? `${r.dstports.start}` : `${r.dstports.start}-${r.dstports.end}`) : '',
    icmptype: r.icmptype === undefined ? '' : String(r.icmptype),
    dns: r.specialtarget === 'dns',
    expire: r.expire === undefined ? '' : String(r.expire),
    comment: r.comment ?? '',
  };
}

/**
 * The Admin API line of a draft, fields as typed (the daemon validates). `+N` in expire is N
 * minutes from the daemon's clock (`now`), a convenience; anything else is passed as written.
 */
export function lineOf(d: Draft, now: number): string {
  const out = [`action=${d.action}`];
  const exp = d.expire.trim();
  const rel = /^\+(\d{1,6})$/.exec(exp);
  if (exp) out.push(`expire=${rel ? Math.floor(now) + Number(rel[1]) * 60 : exp}`);
  if (d.dst.trim()) out.push(`dsthost=${d.dst.trim()}`);
  if (d.proto) out.push(`proto=${d.proto}`);
  if (d.dns) out.push('specialtarget=dns');
  if (d.ports.trim()) out.push(`dstports=${d.ports.trim()}`);
  if (d.icmptype.trim()) out.push(`icmptype=${d.icmptype.trim()}`);
  if (d.comment) out.push(`comment=${d.comment}`);
  return out.join(' ');
}

/** Which field a rule-language code is about (presentation only: where to show the message). */
const FIELD_OF: Record<string, Field> = {
  QNET1005: 'action',
  QNET1006: 'proto',
  QNET1007: 'dst',
  QNET1008: 'dst',
  QNET1009: 'dst',
  QNET1010: 'ports',
  QNET1015: 'ports',
  QNET1018: 'ports',
  QNET1011: 'icmptype',
  QNET1016: 'icmptype',
  QNET1012: 'dns',
  QNET1017: 'dns',
  QNET1013: 'expire',
  QNET1014: 'comment',
};

export interface RuleFormProps {
  title: string;
  initial: Draft;
  /** The daemon's clock (for `+N` minutes). */
  now: number;
  submitLabel: string;
  /** Send the line; resolves to the refusal's diagnostics, or null when done. */
  onSubmit: (line: string) => Promise<Diagnostic[] | null>;
  onCancel: () => void;
  /** Said above the form (e.g. the list changed while this draft was open). */
  notice?: ComponentChildren;
  /** More fields (the position of a new rule). */
  children?: ComponentChildren;
}

export function RuleForm({ title, initial, now, submitLabel, onSubmit, onCancel, notice, children }: RuleFormProps) {
  const [d, setD] = useState<Draft>(initial);
  const [problems, setProblems] = useState<Diagnostic[]>([]);
  const [busy, setBusy] = useState(false);
  const set = <K extends Field>(k: K, val: Draft[K]) => setD((x) => ({ ...x, [k]: val }));
  const about = (f: Field) => problems.filter((p) => FIELD_OF[p.code] === f);
  const general = problems.filter((p) => !(p.code in FIELD_OF));
  const invalid = (f: Field) => (about(f).length ? 'true' : undefined);
  const err = (f: Field) => <Problems items={about(f)} />;
  const id = (f: Field) => `rf-${f}`;
  const text = (f: 'dst' | 'ports' | 'icmptype' | 'expire' | 'comment', label: string, placeholder: string, hint?: string) => (
    <div class={`field field-${f}`} data-field={f}>
      <label for={id(f)}>{label}</label>
      <input id={id(f)} value={d[f]} placeholder={placeholder} aria-invalid={invalid(f)} onInput={(e) => set(f, (e.target as HTMLInputElement).value)} />
      {hint ? <small class="muted">{hint}</small> : null}
      {err(f)}
    </div>
  );
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const refused = await onSubmit(lineOf(d, now));
    setBusy(false);
    setProblems(refused ?? []);
  };
  return (
    <form class="rule-form" aria-label={title} onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && onCancel()}>
      <h2>{title}</h2>
      {notice}
      <Problems items={general} />
      <div class="fields">
        <div class="field field-action" data-field="action">
          <label for={id('action')}>Action</label>
          <select id={id('action')} value={d.action} aria-invalid={invalid('action')} onChange={(e) => set('action', (e.target as HTMLSelectElement).value as Draft['action'])}>
            <option value="accept">accept</option>
            <option value="drop">drop (reject)</option>
          </select>
          {err('action')}
        </div>
        {text('dst', 'Destination', 'any', 'address, network (10.0.0.0/8, 2001:db8::/32) or name')}
        <div class="field field-proto" data-field="proto">
          <label for={id('proto')}>Protocol</label>
          <select id={id('proto')} value={d.proto} aria-invalid={invalid('proto')} onChange={(e) => set('proto', (e.target as HTMLSelectElement).value as Draft['proto'])}>
            <option value="">any</option>
            <option value="tcp">tcp</option>
            <option value="udp">udp</option>
            <option value="icmp">icmp</option>
          </select>
          {err('proto')}
        </div>
        {text('ports', 'Ports', 'all', '443 or 8000-8080 (tcp, udp)')}
        {text('icmptype', 'ICMP type', 'all', '0-255 (icmp)')}
        <div class="field field-dns" data-field="dns">
          <label>
            <input type="checkbox" id={id('dns')} checked={d.dns} aria-invalid={invalid('dns')} onChange={(e) => set('dns', (e.target as HTMLInputElement).checked)} /> specialtarget=dns
          </label>
          <small class="muted">the netvm's DNS servers, port 53</small>
          {err('dns')}
        </div>
        {text('expire', 'Expire', 'never', 'seconds since the epoch, or +minutes')}
        {text('comment', 'Comment', '', undefined)}
        {children}
      </div>
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
