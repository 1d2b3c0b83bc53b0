// The session store contract every backend implements, and the id and JSON rules the stores share.

import { randomBytes } from 'node:crypto';
import { NodefpmError } from '../../errors.js';

/** What a session holds: a JSON object (the stores keep it as JSON text). */
export type SessionData = Record<string, unknown>;

/**
 * A place to keep sessions between requests. Ids come from newSessionId() and reach a store only
 * after their signature was verified, but a store must still treat them as untrusted text (see
 * isSessionId). Data is JSON: a store serialises what set() is given and parses it back in get(), so
 * the object get() returns is never one the caller still holds.
 *
 * Expiry is the store's job: an entry set (or touched) with `ttlMs` is gone `ttlMs` later, and get()
 * of an expired entry answers null (and should remove it). Failures reject with NODEFPM_SESSION_STORE.
 */
export interface SessionStore {
  /** The data saved for `id`, or null when there is none or it expired. */
  get(id: string): Promise<SessionData | null>;
  /** Saves `data` for `id`, replacing what was there, to expire `ttlMs` from now. */
  set(id: string, data: SessionData, ttlMs: number): Promise<void>;
  /** Removes `id` (no error when it does not exist). */
  destroy(id: string): Promise<void>;
  /**
   * Moves the expiry of `id` to `ttlMs` from now without rewriting its data; does nothing when `id`
   * does not exist. Optional: without it, a renewal reads the entry and sets it again.
   */
  touch?(id: string, ttlMs: number): Promise<void>;
  /** Stops the store's timers (and nothing else: a client passed in stays the caller's to close). */
  close?(): void | Promise<void>;
}

/** Random bytes in a session id: 192 bits, so ids cannot be guessed or enumerated. */
export const SESSION_ID_BYTES = 24;

/**
 * The ids any store accepts: base64url text of 22 to 128 characters (22 characters are 132 bits, the
 * least an id of ours may carry). Checked before an id becomes a file name or a key, so an id can
 * never climb out of a folder or smuggle a separator.
 */
const SESSION_ID = /^[A-Za-z0-9_-]{22,128}$/;

/** A new session id: 24 bytes from the system's CSPRNG as 32 base64url characters. */
export function newSessionId(): string {
  return randomBytes(SESSION_ID_BYTES).toString('base64url');
}

/** True when `id` has the shape of a session id (see SESSION_ID). */
export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID.test(id);
}

/** Throws NODEFPM_SESSION_STORE unless `id` has the shape of a session id. */
export function assertSessionId(id: unknown, store: string): asserts id is string {
  if (!isSessionId(id)) {
    throw new NodefpmError('NODEFPM_SESSION_STORE', `${store}: ${JSON.stringify(String(id).slice(0, 40))} is not a session id (22-128 base64url characters)`);
  }
}

/** Throws NODEFPM_INVALID_OPTION unless `ttlMs` is a positive integer count of milliseconds. */
export function assertTtl(ttlMs: unknown, store: string): asserts ttlMs is number {
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `${store}: a session TTL must be a positive whole number of milliseconds, got ${String(ttlMs)}`);
  }
}

/** `data` as JSON text; anything that is not a plain JSON object is a store error. */
export function encodeSessionData(data: SessionData, store: string): string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new NodefpmError('NODEFPM_SESSION_STORE', `${store}: session data must be a JSON object`);
  }
  try {
    return JSON.stringify(data);
  } catch (error) {
    // Cycles and BigInt: the application put something in the session JSON cannot hold.
    throw new NodefpmError('NODEFPM_SESSION_STORE', `${store}: session data cannot be serialised as JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** Parses stored JSON text back to session data; null when it is not a JSON object (a damaged entry counts as none). */
export function decodeSessionData(text: string): SessionData | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as SessionData) : null;
}

/** Wraps a backend failure (I/O, network) as NODEFPM_SESSION_STORE, keeping it as the cause; NodefpmErrors pass through. */
export function storeError(store: string, what: string, error: unknown): NodefpmError {
  if (error instanceof NodefpmError) return error;
  return new NodefpmError('NODEFPM_SESSION_STORE', `${store}: ${what} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** Throws NODEFPM_INVALID_OPTION unless `value` is undefined or an integer of at least `min`. */
export function checkIntegerOption(owner: string, name: string, value: unknown, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `${owner}: option ${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}
