// The sessions API: the Sessions middleware and per-request Session, the store contract, and the memory, file and Redis stores.

export { Sessions, defaultSessionOptions, type SessionOptions, type SessionCookieOptions } from './sessions.js';
export { Session, type SessionOrigin } from './session.js';
export { newSessionId, isSessionId, SESSION_ID_BYTES, type SessionData, type SessionStore } from './store.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export { FileSessionStore, type FileSessionStoreOptions } from './file-store.js';
export {
  RedisSessionStore,
  type RedisSessionStoreOptions,
  type RedisSessionClient,
  type NodeRedisLikeClient,
  type IoRedisLikeClient,
} from './redis-store.js';
