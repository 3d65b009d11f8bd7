#!/usr/bin/env node
// Writes docs/schemas/ops.json: every operation with its kind, summary and the JSON Schemas of its
// input and (where declared) output — what `GET /v1/ops` answers. test/ops/schemas.test.ts fails
// when the file is stale. Usage: npm run build && node scripts/schemas.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { describeOps } = await import(join(root, 'dist/src/ops/registry.js'));
const out = join(root, 'docs/schemas/ops.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(await describeOps(), null, 2) + '\n');
console.log(`wrote ${out}`);
