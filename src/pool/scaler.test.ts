// Tests for the pool's sizing rules: load, spare capacity, the dynamic decision, crash back-off, the emergency window.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashWindow, crashBackoff, dynamicDecision, spareCapacity, workerLoad } from './scaler.js';

test('load is the larger of event-loop utilisation and requests over the concurrency target, capped at 1', () => {
  assert.equal(workerLoad(0.2, 10, 100), 0.2);
  assert.equal(workerLoad(0.05, 50, 100), 0.5);
  assert.equal(workerLoad(0.9, 500, 100), 1);
  assert.equal(spareCapacity([0.25, 1, 0], 1), 0.75 + 0 + 1 + 1);
});

test('dynamic: grows below min spare (within max and the spawn rate), shrinks above max spare, ignores idle noise', () => {
  const base = { starting: 0, max: 8, minSpare: 1, maxSpare: 3, spawnRate: 1 };
  assert.deepEqual(dynamicDecision({ ...base, loads: [0.002] }), { spare: 0.998, spawn: 0, retire: false, atMax: false }, 'an idle worker is one spare');
  assert.equal(dynamicDecision({ ...base, loads: [1, 1] }).spawn, 1, 'no spare: one more (spawn rate 1)');
  assert.equal(dynamicDecision({ ...base, loads: [1, 1], minSpare: 3, spawnRate: 4 }).spawn, 3, 'as many as the spare needs, within the rate');
  assert.equal(dynamicDecision({ ...base, loads: [1, 1], starting: 1 }).spawn, 0, 'a worker starting counts as spare');
  assert.deepEqual(dynamicDecision({ ...base, loads: Array(8).fill(1) }), { spare: 0, spawn: 0, retire: false, atMax: true });
  assert.equal(dynamicDecision({ ...base, loads: [0, 0, 0, 0] }).retire, true, 'four idle workers are above 3 spare');
  assert.equal(dynamicDecision({ ...base, loads: [0, 0, 0] }).retire, false, 'three idle workers are not');
  assert.equal(dynamicDecision({ ...base, loads: [0.001, 0.003, 0.002] }).retire, false, 'timer noise does not count');
  assert.equal(dynamicDecision({ ...base, loads: [0] , maxSpare: 0 }).retire, false, 'the last worker stays');
});

test('crash back-off: at once, then 0.1 s doubling to 10 s; the emergency window counts crashes within the interval', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 10, 20].map(crashBackoff), [0, 100, 200, 400, 800, 10_000, 10_000]);
  const window = new CrashWindow(3, 1000);
  assert.equal(window.record(0), false);
  assert.equal(window.record(500), false);
  assert.equal(window.record(1100), false, 'the first crash left the window');
  assert.equal(window.record(1200), true, 'three within a second');
  assert.equal(window.record(1300), false, 'the window starts over after a restart');
  assert.equal(new CrashWindow(0, 1000).record(0), false, 'threshold 0 is off');
});
