// Building blocks of the operations' input schemas (valibot: small to load, so a command starts
// fast, and each schema becomes JSON Schema for `GET /v1/ops`).
import * as v from 'valibot';

/** A qube name as a request carries it: checked for Qubes' rules where it is used (model/topology). */
export const qubeName = v.pipe(v.string(), v.minLength(1), v.maxLength(64));
export const qubeNames = v.array(qubeName);
export const port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
export const proto = v.picklist(['tcp', 'udp', 'icmp']);
export const noInput = v.strictObject({});
