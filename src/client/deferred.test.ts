// Unit tests of deferred(): the promise settles through the functions handed out with it, once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deferred } from './deferred.js';

test('resolve() fulfils the promise with its value; later calls change nothing', async () => {
  const { promise, resolve, reject } = deferred<number>();
  resolve(7);
  resolve(8);
  reject(new Error('too late'));
  assert.equal(await promise, 7);
});

test('reject() rejects the promise with its error', async () => {
  const { promise, reject } = deferred<string>();
  const error = new Error('refused');
  reject(error);
  await assert.rejects(promise, (thrown) => thrown === error);
});
