// The OpenAPI 3.1 document of the daemon's HTTP API (GET /v1/openapi.json), made from the registry:
// one POST path per op, its input schema as the request body and its output schema where declared.
// Nothing here is written by hand per op, so the document cannot drift from what the daemon serves.
import { DIAGNOSTICS } from '../model/diagnostics.js';
import { describeOps } from './registry.js';

type Json = Record<string, unknown>;

/**
 * A valibot JSON Schema (draft-07) as an OpenAPI 3.1 schema (2020-12): its own `$schema` goes, and
 * its definitions (`$defs`, or draft-07's `definitions`; valibot makes them for recursive schemas)
 * move into `components` as `<prefix>.<key>` with the references rewritten — left inside, a `#/$defs/…`
 * reference would resolve against the whole document and point at nothing.
 */
export function toOpenApiSchema(schema: unknown, prefix: string, components: Json): Json {
  if (typeof schema !== 'object' || schema === null) return {};
  const { $schema: _, definitions, $defs, ...rest } = schema as Json;
  const defs = { ...(definitions as Json | undefined), ...($defs as Json | undefined) };
  const moved = (x: unknown) =>
    JSON.parse(JSON.stringify(x).replace(/"\$ref":"#\/(?:\$defs|definitions)\/([^"]+)"/g, (_m, k: string) => `"$ref":"#/components/schemas/${prefix}.${k}"`)) as Json;
  for (const [k, v] of Object.entries(defs)) components[`${prefix}.${k}`] = moved(v);
  return moved(rest);
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const refusal = (description: string) => ({ description, content: { 'application/json': { schema: ref('Refusal') } } });

/** The refusals every op can answer with (routes.ts statusOf, http.ts). */
const REFUSALS = {
  '400': refusal('the input does not fit the schema, or the body is not JSON'),
  '401': refusal('no valid bearer token'),
  '403': refusal('the viewer token asked for a change, or a cross-origin request'),
  '404': refusal('no such operation'),
  '413': refusal('the request body is too large'),
  '421': refusal("the Host header is not the listener's own"),
  '422': refusal('the operation refused the change (its diagnostics say why)'),
};

export async function openApiDocument(): Promise<Json> {
  const ops = await describeOps();
  const paths: Json = {};
  const defs: Json = {};
  for (const op of ops) {
    paths[`/v1/ops/${op.name}`] = {
      post: {
        operationId: op.name,
        summary: op.summary,
        tags: [op.kind],
        // read: the viewer token suffices; change: the editor's (queued one at a time).
        'x-qnet-kind': op.kind,
        requestBody: { required: true, content: { 'application/json': { schema: toOpenApiSchema(op.input, `${op.name}.input`, defs) } } },
        responses: {
          '200': {
            description: 'the value, with warnings',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['value', 'warnings'],
                  properties: { value: op.output ? toOpenApiSchema(op.output, `${op.name}.output`, defs) : {}, warnings: { type: 'array', items: ref('Diagnostic') } },
                },
              },
            },
          },
          ...REFUSALS,
        },
      },
    };
  }
  const get = (operationId: string, summary: string, content: Json) => ({ get: { operationId, summary, responses: { '200': { description: summary, content }, '401': REFUSALS['401'] } } });
  paths['/v1/ops'] = get('ops', 'every operation with its kind, summary and JSON Schemas', { 'application/json': { schema: { type: 'array', items: { type: 'object' } } } });
  paths['/v1/status'] = get('daemon.status', "the daemon's pid, runtime and how each qube's rules stand", { 'application/json': { schema: { type: 'object' } } });
  paths['/v1/events'] = get('events', "the daemon's events as Server-Sent Events: each a `data:` line of JSON; a comment every 15 s", { 'text/event-stream': { schema: { type: 'string' } } });
  paths['/v1/openapi.json'] = get('openapi', 'this document', { 'application/json': { schema: { type: 'object' } } });
  return {
    openapi: '3.1.0',
    info: { title: 'qnet daemon', version: '1', description: 'The typed operations of qnet over HTTP. Loopback only; bearer tokens in run/http-{editor,viewer}.token.' },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Diagnostic: {
          type: 'object',
          required: ['code', 'severity', 'message'],
          properties: {
            code: { type: 'string', enum: Object.keys(DIAGNOSTICS) },
            severity: { type: 'string', enum: ['error', 'warning'] },
            message: { type: 'string' },
            qube: { type: 'string' },
            ruleIndex: { type: 'integer' },
            file: { type: 'string' },
            hint: { type: 'string' },
          },
        },
        Refusal: { type: 'object', required: ['diagnostics'], properties: { diagnostics: { type: 'array', items: ref('Diagnostic'), minItems: 1 } } },
        ...defs,
      },
    },
  };
}
