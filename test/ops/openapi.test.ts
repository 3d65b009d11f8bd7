// The OpenAPI document is made from the registry: a 3.1 document, every op a POST path with its
// input schema (no draft-07 leftovers), its output where declared, and the refusals with their schema.
import test from 'node:test';
import assert from 'node:assert/strict';
import { openApiDocument, toOpenApiSchema } from '../../src/ops/openapi.js';
import { allOps, describeOps } from '../../src/ops/registry.js';

type Doc = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, any>>; components: { schemas: Record<string, any>; securitySchemes: Record<string, any> } };

test('the OpenAPI document lists every op with its schemas and refusals', async () => {
  const doc = (await openApiDocument()) as Doc;
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.info.title && doc.info.version);
  assert.deepEqual(doc.components.securitySchemes['bearer'], { type: 'http', scheme: 'bearer' });
  const ops = await allOps();
  const described = new Map((await describeOps()).map((o) => [o.name, o]));
  assert.ok(ops.length > 30);
  for (const op of ops) {
    const post = doc.paths[`/v1/ops/${op.name}`]?.['post'];
    assert.ok(post, op.name);
    assert.equal(post.operationId, op.name);
    assert.equal(post['x-qnet-kind'], op.kind);
    const schema = post.requestBody.content['application/json'].schema;
    assert.equal(schema.$schema, undefined, `${op.name}: no draft-07 $schema inside a 3.1 document`);
    assert.deepEqual(schema, toOpenApiSchema(described.get(op.name)!.input, `${op.name}.input`, {}));
    const ok = post.responses['200'].content['application/json'].schema;
    assert.deepEqual(ok.required, ['value', 'warnings']);
    if (op.output) assert.notDeepEqual(ok.properties.value, {}, `${op.name} declares its output`);
    for (const st of ['400', '401', '403', '404', '422'])
      assert.equal(post.responses[st].content['application/json'].schema.$ref, '#/components/schemas/Refusal', `${op.name} ${st}`);
  }
  // Every $ref points at something the document holds (check's output is recursive: it has some).
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.some((r) => r.startsWith('#/components/schemas/check.output.')), 'recursive definitions moved to components');
  for (const r of refs) {
    const m = /^#\/components\/schemas\/([A-Za-z0-9._-]+)$/.exec(r);
    assert.ok(m && doc.components.schemas[m[1]!], r);
  }
  assert.ok(doc.components.schemas['Diagnostic'].properties.code.enum.includes('QNET6110'));
});

test('definitions move to components, references moved along', () => {
  const defs: Record<string, unknown> = {};
  const s = toOpenApiSchema({ $schema: 'http://json-schema.org/draft-07/schema#', $defs: { 0: { type: 'object', properties: { next: { $ref: '#/$defs/0' } } } }, type: 'object', properties: { x: { $ref: '#/$defs/0' } } }, 'op.output', defs);
  assert.deepEqual(s, { type: 'object', properties: { x: { $ref: '#/components/schemas/op.output.0' } } });
  assert.deepEqual(defs, { 'op.output.0': { type: 'object', properties: { next: { $ref: '#/components/schemas/op.output.0' } } } });
});
