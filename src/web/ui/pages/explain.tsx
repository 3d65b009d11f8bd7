// Explain: can SRC reach DST, and why — hop by hop, with the rule that decided at each hop mapped back
// to the qube's rule (number and text) or to the connection, forward or base part it is, and the
// reply. Side by side for the stored policy and for what the kernel holds now (op `explain`); a
// disagreement is said first and loudly. The address holds the question:
// #/explain?src=work&dst=192.0.2.5&proto=tcp&port=443 (other pages link here that way); `verify=1`
// also reads the path's rulesets back from the kernel, to say where it holds what qnet did not load.
import { useEffect, useState } from 'preact/hooks';
import type { Route } from '../route.js';
import { href, navigate } from '../route.js';
import { useOp } from '../state.js';
import { ErrorOf, Problems } from '../components/problems.js';
import type { QubeView } from '../../../ops/views.js';
import type { AnnotatedRef } from '../../../ops/analyze.js';
import type { Hop, SimResult } from '../../../sim/walk.js';
import type { Diagnostic } from '../api.js';

interface Explained {
  policy: SimResult[];
  kernel: SimResult[] | null;
  kernelRefused: Diagnostic | null;
  agree: boolean | null;
  differences: string[];
  kernelDrift: string[] | null;
}

const PROTOS = ['tcp', 'udp', 'icmp'] as const;

/** The question in the address, as the op takes it (undefined until src and dst are given). */
function question(q: URLSearchParams): { src: string; dst: string; proto?: string; port?: number; verify?: boolean } | undefined {
  const src = q.get('src')?.trim();
  const dst = q.get('dst')?.trim();
  if (!src || !dst) return undefined;
  const proto = q.get('proto') ?? undefined;
  const port = q.get('port');
  // A port that is not a number is passed on as such: the op's refusal says what is wrong.
  return { src, dst, ...(proto ? { proto } : {}), ...(port ? { port: /^\d+$/.test(port) ? Number(port) : (port as unknown as number) } : {}), ...(q.get('verify') === '1' ? { verify: true } : {}) };
}

export function ExplainPage({ route }: { route: Route }) {
  const asked = question(route.query);
  return (
    <section class="explain">
      <h1>Explain</h1>
      <AskForm query={route.query} />
      {asked ? <Answer asked={asked} /> : <p class="empty">Give a source and a destination to see the verdict and the rule that decides at each hop.</p>}
    </section>
  );
}

function AskForm({ query }: { query: URLSearchParams }) {
  const qubes = useOp<QubeView[]>('qubes.list', {});
  const [src, setSrc] = useState(query.get('src') ?? '');
  const [dst, setDst] = useState(query.get('dst') ?? '');
  const [proto, setProto] = useState(query.get('proto') ?? 'tcp');
  const [port, setPort] = useState(query.get('port') ?? '');
  const [verify, setVerify] = useState(query.get('verify') === '1');
  const [errors, setErrors] = useState<Record<string, string>>({});
  // Following a link (or Back) puts the new question in the form.
  useEffect(() => {
    setSrc(query.get('src') ?? '');
    setDst(query.get('dst') ?? '');
    setProto(query.get('proto') ?? 'tcp');
    setPort(query.get('port') ?? '');
    setVerify(query.get('verify') === '1');
  }, [query.toString()]);
  const submit = (e: Event) => {
    e.preventDefault();
    const bad: Record<string, string> = {};
    if (!src.trim()) bad['src'] = 'a qube, or outside';
    if (!dst.trim()) bad['dst'] = 'a qube, an address, a CIDR or a name';
    if (proto !== 'icmp' && port.trim() && !/^\d+$/.test(port.trim())) bad['port'] = 'a number, 1-65535';
    setErrors(bad);
    if (Object.keys(bad).length) return;
    navigate(href('explain', { src: src.trim(), dst: dst.trim(), proto, port: proto === 'icmp' || !port.trim() ? undefined : port.trim(), verify: verify ? 1 : undefined }));
  };
  const err = (k: string) =>
    errors[k] ? (
      <span class="field-error" id={`explain-${k}-error`}>
        {errors[k]}
      </span>
    ) : null;
  return (
    <form class="inline explain-form" onSubmit={submit} aria-label="question" noValidate>
      <datalist id="explain-qubes">
        <option value="outside" />
        {(qubes.value ?? []).map((q) => (
          <option key={q.name} value={q.name} />
        ))}
      </datalist>
      <label>
        Source
        <input name="src" list="explain-qubes" value={src} onInput={(e) => setSrc((e.target as HTMLInputElement).value)} aria-invalid={errors['src'] ? 'true' : undefined} aria-describedby={errors['src'] ? 'explain-src-error' : undefined} autocomplete="off" />
        {err('src')}
      </label>
      <label>
        Destination
        <input name="dst" list="explain-qubes" value={dst} onInput={(e) => setDst((e.target as HTMLInputElement).value)} aria-invalid={errors['dst'] ? 'true' : undefined} aria-describedby={errors['dst'] ? 'explain-dst-error' : undefined} autocomplete="off" />
        {err('dst')}
      </label>
      <label>
        Protocol
        <select name="proto" value={proto} onChange={(e) => setProto((e.target as HTMLSelectElement).value)}>
          {PROTOS.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </label>
      <label>
        Port
        <input name="port" inputMode="numeric" size={6} value={proto === 'icmp' ? '' : port} disabled={proto === 'icmp'} onInput={(e) => setPort((e.target as HTMLInputElement).value)} aria-invalid={errors['port'] ? 'true' : undefined} aria-describedby={errors['port'] ? 'explain-port-error' : undefined} />
        {err('port')}
      </label>
      <label class="check">
        <input type="checkbox" name="verify" checked={verify} onChange={(e) => setVerify((e.target as HTMLInputElement).checked)} />
        Read the kernel back (slower)
      </label>
      <button class="primary" type="submit">
        Explain
      </button>
    </form>
  );
}

function Answer({ asked }: { asked: NonNullable<ReturnType<typeof question>> }) {
  const r = useOp<Explained>('explain', asked);
  if (r.error) return <ErrorOf error={r.error} />;
  const v = r.value;
  if (!v) return <p class="empty" aria-busy="true">Asking…</p>;
  return (
    <div class="explain-answer" aria-busy={r.loading ? 'true' : undefined}>
      {v.agree === false ? (
        <div class="disagree" role="alert" data-testid="disagree">
          <strong>The kernel does not hold what the stored policy says.</strong>
          <ul>
            {v.differences.map((d, k) => (
              <li key={k}>{d}</li>
            ))}
          </ul>
        </div>
      ) : v.agree === true ? (
        <p class="agree" data-testid="agree">
          What qnet loaded into the kernel answers this question as the stored policy does.
        </p>
      ) : null}
      {v.kernelDrift?.length ? (
        <div class="disagree" role="alert" data-testid="drift">
          <strong>The kernel holds something qnet did not load: the kernel side below may not be what it does.</strong>
          <ul>
            {v.kernelDrift.map((d, k) => (
              <li key={k}>{d}</li>
            ))}
          </ul>
        </div>
      ) : v.kernelDrift ? (
        <p class="agree" data-testid="drift-none">
          Read back from the kernel: the nodes on the path hold what qnet loaded.
        </p>
      ) : null}
      <div class="sides">
        <Side title="Stored policy" testid="side-policy" results={v.policy} />
        {v.kernel ? (
          <Side title="Kernel now" testid="side-kernel" results={v.kernel} />
        ) : (
          <div class="side" data-testid="side-kernel">
            <h2>Kernel now</h2>
            <Problems items={v.kernelRefused ? [v.kernelRefused] : []} kind="warning" />
          </div>
        )}
      </div>
    </div>
  );
}

function Side({ title, testid, results }: { title: string; testid: string; results: SimResult[] }) {
  return (
    <div class="side" data-testid={testid}>
      <h2>{title}</h2>
      {results.map((r, k) => (
        <Leg key={k} r={r} />
      ))}
    </div>
  );
}

const what = (r: SimResult) => `${r.probe.from} → ${r.probe.to} ${r.probe.proto}${r.probe.dport !== undefined ? `/${r.probe.dport}` : ''}`;

function Leg({ r }: { r: SimResult }) {
  return (
    <div class="leg" data-direction={r.direction}>
      <p class="verdict-line">
        <span class={`verdict verdict-${r.verdict}`} data-testid="verdict">
          {r.verdict}
        </span>{' '}
        <span class="mono">{what(r)}</span>
        {r.direction === 'reply' ? ' (reply)' : ''}
      </p>
      <p class="reason">{r.reason}</p>
      <ol class="hops" aria-label={`${r.direction === 'reply' ? 'reply' : 'request'} hops`}>
        {r.hops.map((h, k) => (
          <HopItem key={k} h={h} />
        ))}
      </ol>
      {r.reply ? (
        <div class="reply">
          <h3>Reply</h3>
          <Leg r={r.reply} />
        </div>
      ) : null}
    </div>
  );
}

function HopItem({ h }: { h: Hop }) {
  // The rules that decided at this hop: every base chain that a rule (not the chain's policy) ended.
  const decided = h.steps.filter((s) => s.verdict !== 'skipped' && s.by).map((s) => ({ hook: s.hook, verdict: s.verdict, by: s.by as AnnotatedRef }));
  return (
    <li class={`hop outcome-${h.outcome}`} data-node={h.node}>
      <div class="hop-head">
        <strong>{h.node}</strong> <span class="mono muted">{`${h.packet.saddr} → ${h.packet.daddr}`}</span> <span class={`outcome outcome-${h.outcome}`}>{h.outcome}</span>
      </div>
      {decided.length ? (
        <ul class="decided">
          {decided.map((d, k) => (
            <li key={k} data-testid="decided">
              <span class="muted">{d.hook}:</span> <span class={`verdict-${d.verdict}`}>{d.verdict}</span> by <Ref r={d.by} />
            </li>
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function Ref({ r }: { r: AnnotatedRef }) {
  return (
    <span class="ref">
      <span class="ref-text">{r.text}</span>
      {r.detail ? <span class="mono"> ({r.detail})</span> : null}
      {r.rules?.length ? (
        <ul class="rule-texts">
          {r.rules.map((x) => (
            <li key={`${x.qube}-${x.no}`}>
              <a href={href('firewall', x.qube)}>
                {x.qube} #{x.no}
              </a>{' '}
              <code>{x.text}</code>
            </li>
          ))}
        </ul>
      ) : null}
    </span>
  );
}
