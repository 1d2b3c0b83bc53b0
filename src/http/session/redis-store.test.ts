// RedisSessionStore against recording fakes of node-redis and ioredis: the exact commands, replies handled, errors wrapped (the real redis-server is in test/interop).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../../errors.js';
import { RedisSessionStore, type IoRedisLikeClient, type NodeRedisLikeClient } from './redis-store.js';
import { newSessionId } from './store.js';

type Call = [command: string, ...args: unknown[]];

/** A node-redis-shaped client over a Map, recording each call. */
function fakeNodeRedis(values = new Map<string, unknown>()): NodeRedisLikeClient & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    async get(key) {
      calls.push(['get', key]);
      return values.get(key) ?? null;
    },
    async set(key, value, options) {
      calls.push(['set', key, value, options]);
      values.set(key, value);
      return 'OK';
    },
    async del(key) {
      calls.push(['del', key]);
      return values.delete(key) ? 1 : 0;
    },
    async pExpire(key, ms) {
      calls.push(['pExpire', key, ms]);
      return values.has(key) ? 1 : 0;
    },
  };
}

/** An ioredis-shaped client, recording each call. */
function fakeIoRedis(): IoRedisLikeClient & { calls: Call[] } {
  const calls: Call[] = [];
  const values = new Map<string, string>();
  return {
    calls,
    async get(key) {
      calls.push(['get', key]);
      return values.get(key) ?? null;
    },
    async set(key, value, mode, ms) {
      calls.push(['set', key, value, mode, ms]);
      values.set(key, value);
      return 'OK';
    },
    async del(key) {
      calls.push(['del', key]);
      return values.delete(key) ? 1 : 0;
    },
    async pexpire(key, ms) {
      calls.push(['pexpire', key, ms]);
      return values.has(key) ? 1 : 0;
    },
  };
}

test('node-redis: SET with PX (and v5+ expiration), GET, PEXPIRE, DEL under the prefix', async () => {
  const client = fakeNodeRedis();
  const store = new RedisSessionStore({ client });
  const id = newSessionId();
  const key = `nodefpm:sess:${id}`;
  await store.set(id, { user: 'ada' }, 5000);
  assert.deepEqual(client.calls.at(-1), ['set', key, '{"user":"ada"}', { PX: 5000, expiration: { type: 'PX', value: 5000 } }]);
  assert.deepEqual(await store.get(id), { user: 'ada' });
  assert.deepEqual(client.calls.at(-1), ['get', key]);
  await store.touch(id, 7000);
  assert.deepEqual(client.calls.at(-1), ['pExpire', key, 7000]);
  await store.destroy(id);
  assert.deepEqual(client.calls.at(-1), ['del', key]);
  assert.equal(await store.get(id), null);
});

test('ioredis: SET key value PX ms, and pexpire', async () => {
  const client = fakeIoRedis();
  const store = new RedisSessionStore({ client, prefix: 'app1:' });
  const id = newSessionId();
  await store.set(id, { n: 1 }, 2500);
  assert.deepEqual(client.calls.at(-1), ['set', `app1:${id}`, '{"n":1}', 'PX', 2500]);
  await store.touch(id, 3000);
  assert.deepEqual(client.calls.at(-1), ['pexpire', `app1:${id}`, 3000]);
  assert.deepEqual(await store.get(id), { n: 1 });
});

test('a Buffer reply is decoded; a value that is not a JSON object is no session and is deleted', async () => {
  const id = newSessionId();
  const values = new Map<string, unknown>([[`nodefpm:sess:${id}`, Buffer.from('{"b":2}')]]);
  const client = fakeNodeRedis(values);
  const store = new RedisSessionStore({ client });
  assert.deepEqual(await store.get(id), { b: 2 });
  values.set(`nodefpm:sess:${id}`, 'not json');
  assert.equal(await store.get(id), null);
  assert.deepEqual(client.calls.at(-1), ['del', `nodefpm:sess:${id}`]);
});

test('client errors become NODEFPM_SESSION_STORE with the cause; bad ids never reach Redis', async () => {
  const failure = new Error('connection refused');
  const client = fakeNodeRedis();
  client.get = async () => {
    throw failure;
  };
  const store = new RedisSessionStore({ client });
  await assert.rejects(store.get(newSessionId()), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE') && error.cause === failure);
  const calls = client.calls.length;
  await assert.rejects(store.set('bad id', {}, 1000), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'));
  await assert.rejects(store.destroy('*'), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'));
  assert.equal(client.calls.length, calls, 'no command was sent for a bad id');
});

test('a client without the commands is refused at construction', () => {
  const invalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_INVALID_OPTION');
  assert.throws(() => new RedisSessionStore({ client: {} as never }), invalid);
  assert.throws(() => new RedisSessionStore(undefined as never), invalid);
  const { pExpire: _ignored, ...noExpire } = fakeNodeRedis();
  assert.throws(() => new RedisSessionStore({ client: noExpire as never }), invalid);
});
