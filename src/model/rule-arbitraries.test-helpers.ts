// fast-check generators for valid rules (shared by the rule and firewall.xml property tests).
// Rules are built as API lines and parsed, so they are exactly what the parsers produce.
import fc from 'fast-check';
import { parseApiRule } from './rule-parse.js';
import type { Rule } from './rule.js';

const prefixText = (max: number) => fc.tuple(fc.integer({ min: 0, max }), fc.boolean()).map(([p, zero]) => (zero && p < 10 ? `0${p}` : `${p}`));

export const arbHost: fc.Arbitrary<string> = fc.oneof(
  fc.ipV4(),
  fc.tuple(fc.ipV4(), prefixText(32)).map(([a, p]) => `${a}/${p}`),
  fc.ipV6(),
  fc.tuple(fc.ipV6(), prefixText(128)).map(([a, p]) => `${a}/${p}`),
  fc.ipV6().map((a) => a.toUpperCase()),
  fc.domain().filter((d) => d.length <= 253 && !/(^|\.)\d+$/.test(d)),
  fc.constantFrom('qubes-os.org', '_dmarc.example.com', 'icmp', 'localhost'),
);

const commentChars = 'abcXYZ019:;,./-_[] ';
export const arbComment: fc.Arbitrary<string> = fc.string({ unit: fc.constantFrom(...commentChars), minLength: 1, maxLength: 20 });

const arbParts = fc.record({
  action: fc.constantFrom('accept', 'drop'),
  proto: fc.option(fc.constantFrom('tcp', 'udp', 'icmp'), { nil: undefined }),
  host: fc.option(arbHost, { nil: undefined }),
  port: fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.boolean()),
  usePorts: fc.boolean(),
  icmptype: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
  dns: fc.boolean(),
  expire: fc.option(fc.integer({ min: 0, max: 253402300799 }), { nil: undefined }),
  comment: fc.option(arbComment, { nil: undefined }),
});

/** A valid rule line in dom0 API syntax (options in canonical order). */
export const arbApiLine: fc.Arbitrary<string> = arbParts.map((p) => {
  const out = [`action=${p.action}`];
  if (p.expire !== undefined) out.push(`expire=${p.expire}`);
  if (p.host !== undefined) out.push(`dsthost=${p.host}`);
  if (p.proto) out.push(`proto=${p.proto}`);
  const dns = p.dns && p.proto !== 'icmp';
  if (dns) out.push('specialtarget=dns');
  if ((p.proto === 'tcp' || p.proto === 'udp') && p.usePorts) {
    const [a, b, range] = p.port;
    out.push(dns ? 'dstports=53' : range ? `dstports=${Math.min(a, b)}-${Math.max(a, b)}` : `dstports=${a}`);
  }
  if (p.proto === 'icmp' && p.icmptype !== undefined) out.push(`icmptype=${p.icmptype}`);
  if (p.comment !== undefined) out.push(`comment=${p.comment}`);
  return out.join(' ');
});

export const arbRule: fc.Arbitrary<Rule> = arbApiLine.map((line) => {
  const r = parseApiRule(line);
  if (!r.ok) throw new Error(`generator made an invalid rule: ${line}: ${r.error.message}`);
  return r.value;
});

