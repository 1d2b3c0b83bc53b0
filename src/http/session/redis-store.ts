// RedisSessionStore: sessions as JSON strings under a key prefix with a PX expiry, through a Redis client the application creates (node-redis or ioredis).

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../../errors.js';
import type { SessionData, SessionStore } from './store.js';
import { assertSessionId, assertTtl, decodeSessionData, encodeSessionData, storeError } from './store.js';

/**
 * The node-redis (v4 and later) methods the store calls, typed loosely enough that node-redis's own
 * client type fits (its replies depend on type mappings: a string, or a Buffer when mapped so).
 */
export interface NodeRedisLikeClient {
  get(key: string): Promise<unknown>;
  set(key: string, value: string, options: { PX: number; expiration: { type: 'PX'; value: number } }): Promise<unknown>;
  del(key: string): Promise<unknown>;
  pExpire(key: string, milliseconds: number): Promise<unknown>;
}

/** The ioredis methods the store calls. */
export interface IoRedisLikeClient {
  get(key: string): Promise<unknown>;
  set(key: string, value: string, mode: 'PX', milliseconds: number): Promise<unknown>;
  del(key: string): Promise<unknown>;
  pexpire(key: string, milliseconds: number): Promise<unknown>;
}

export type RedisSessionClient = NodeRedisLikeClient | IoRedisLikeClient;

export interface RedisSessionStoreOptions {
  /**
   * A connected client, created and closed by the application: `createClient()` from `redis`
   * (node-redis v4+) or `new Redis()` from `ioredis`. nodefpm does not depend on either.
   */
  client: RedisSessionClient;
  /** Put before every id to make the key, so sessions share a Redis database with other data. Default "nodefpm:sess:". */
  prefix?: string;
}

function isNodeRedis(client: RedisSessionClient): client is NodeRedisLikeClient {
  return typeof (client as Partial<NodeRedisLikeClient>).pExpire === 'function';
}

/**
 * Sessions in Redis: `SET <prefix><id> <json> PX <ttl>`, `GET`, `DEL`, and `PEXPIRE` to renew, so
 * Redis itself expires them and nothing needs collecting. Every process on every machine that talks
 * to the same Redis sees the same sessions: what lets an app run on several machines behind one web
 * server.
 *
 * The store never connects, reconnects or closes the client: that is the application's, as is the
 * choice of Redis deployment (a password, TLS, Sentinel). A Redis error rejects with
 * NODEFPM_SESSION_STORE, the client's error as its cause.
 */
export class RedisSessionStore implements SessionStore {
  readonly prefix: string;
  readonly #client: RedisSessionClient;
  readonly #nodeRedis: boolean;

  constructor(options: RedisSessionStoreOptions) {
    const client = options?.client as Partial<NodeRedisLikeClient & IoRedisLikeClient> | undefined;
    const hasCommands =
      client != null &&
      typeof client.get === 'function' &&
      typeof client.set === 'function' &&
      typeof client.del === 'function' &&
      (typeof client.pExpire === 'function' || typeof client.pexpire === 'function');
    if (!hasCommands) {
      throw new NodefpmError(
        'NODEFPM_INVALID_OPTION',
        'RedisSessionStore: option client must be a Redis client with get, set, del and pExpire (node-redis) or pexpire (ioredis)',
      );
    }
    const prefix = options.prefix ?? 'nodefpm:sess:';
    if (typeof prefix !== 'string') throw new NodefpmError('NODEFPM_INVALID_OPTION', 'RedisSessionStore: option prefix must be a string');
    this.prefix = prefix;
    this.#client = options.client;
    this.#nodeRedis = isNodeRedis(options.client);
  }

  async get(id: string): Promise<SessionData | null> {
    const key = this.#key(id);
    let reply: unknown;
    try {
      reply = await this.#client.get(key);
    } catch (error) {
      throw storeError('RedisSessionStore', `GET ${key}`, error);
    }
    if (reply === null || reply === undefined) return null;
    const text = typeof reply === 'string' ? reply : Buffer.isBuffer(reply) ? reply.toString('utf8') : null;
    const data = text === null ? null : decodeSessionData(text);
    if (data === null) {
      // Something else wrote this key: treat it as no session, and make room for a real one.
      await this.destroy(id);
    }
    return data;
  }

  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const key = this.#key(id);
    assertTtl(ttlMs, 'RedisSessionStore');
    const json = encodeSessionData(data, 'RedisSessionStore');
    try {
      if (this.#nodeRedis) {
        // PX for node-redis 4; `expiration` for 5 and later, which read it first (PX is deprecated there).
        await (this.#client as NodeRedisLikeClient).set(key, json, { PX: ttlMs, expiration: { type: 'PX', value: ttlMs } });
      } else {
        await (this.#client as IoRedisLikeClient).set(key, json, 'PX', ttlMs);
      }
    } catch (error) {
      throw storeError('RedisSessionStore', `SET ${key}`, error);
    }
  }

  async destroy(id: string): Promise<void> {
    const key = this.#key(id);
    try {
      await this.#client.del(key);
    } catch (error) {
      throw storeError('RedisSessionStore', `DEL ${key}`, error);
    }
  }

  async touch(id: string, ttlMs: number): Promise<void> {
    const key = this.#key(id);
    assertTtl(ttlMs, 'RedisSessionStore');
    try {
      // PEXPIRE on a key that is gone does nothing (it answers 0): an expired session stays expired.
      if (this.#nodeRedis) await (this.#client as NodeRedisLikeClient).pExpire(key, ttlMs);
      else await (this.#client as IoRedisLikeClient).pexpire(key, ttlMs);
    } catch (error) {
      throw storeError('RedisSessionStore', `PEXPIRE ${key}`, error);
    }
  }

  #key(id: string): string {
    assertSessionId(id, 'RedisSessionStore');
    return this.prefix + id;
  }
}
