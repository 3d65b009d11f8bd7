import test from 'node:test';
import assert from 'node:assert/strict';
import type { RuleCounter } from '../backend/backend.js';
import { CounterMemory } from './counter-memory.js';

const row = (comment: string, packets: number): RuleCounter => ({ node: 'fw', family: 'ip', table: 'qubes-firewall', chain: 'c', comment, origin: null, packets, bytes: packets * 60 });

test('counter memory: last hit is the read that saw a count grow; unknown before the first read; twins apart', () => {
  const m = new CounterMemory();
  assert.deepEqual(m.stamp('fw', [row('a', 0), row('b', 7), row('t', 0), row('t', 0)], 1000), [null, null, null, null]);
  assert.deepEqual(m.stamp('fw', [row('a', 2), row('b', 7), row('t', 0), row('t', 1)], 2000), [2000, null, null, 2000]);
  assert.deepEqual(m.stamp('fw', [row('a', 2), row('b', 9), row('t', 0), row('t', 1)], 3000), [2000, 3000, null, 2000]);
  // Reloaded (counters restart): counted again since, or nothing yet.
  assert.deepEqual(m.stamp('fw', [row('a', 1), row('b', 0)], 4000), [4000, null]);
  // Another node has its own memory.
  assert.deepEqual(m.stamp('net', [row('a', 5)], 5000), [null]);
});
