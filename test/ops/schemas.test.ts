// docs/schemas/ops.json is what GET /v1/ops answers: the operations' JSON Schemas, kept in the repo
// for API clients. Regenerate with `node scripts/schemas.mjs` after changing an op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../cases/compile/baseline.js';
import { describeOps } from '../../src/ops/registry.js';

const ROOT = repoRoot();

test('docs/schemas/ops.json matches the registry (regenerate: node scripts/schemas.mjs)', async () => {
  const committed = JSON.parse(readFileSync(join(ROOT, 'docs', 'schemas', 'ops.json'), 'utf8')) as unknown;
  assert.deepEqual(committed, JSON.parse(JSON.stringify(await describeOps())));
});
