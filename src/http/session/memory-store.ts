// MemoryStore: sessions in this process's memory, bounded in count, with expiry swept on an unref'd timer.

import type { SessionData, SessionStore } from './store.js';
import { assertSessionId, assertTtl, checkIntegerOption, decodeSessionData, encodeSessionData } from './store.js';

export interface MemoryStoreOptions {
  /** Sessions kept at most; saving one more drops the one saved longest ago. Default 10 000. */
  maxEntries?: number;
  /** How often expired sessions are swept out, in ms (0: only when read). Default 60 000. */
  sweepInterval?: number;
}

interface Entry {
  json: string;
  expiresAt: number;
}

/**
 * Sessions in a Map, as JSON text (so what a handler holds is never the stored object). Right for one
 * process and for development: a pool of several processes, or several machines, needs the file or
 * Redis store, since each process would have its own sessions here.
 *
 * Bounded: over maxEntries, the session saved (or touched) longest ago is dropped, so a flood of new
 * sessions costs memory up to the bound and no more. Expired entries go when read and on the sweep,
 * whose timer is unref'd so that it never keeps the process alive.
 */
export class MemoryStore implements SessionStore {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = checkIntegerOption('MemoryStore', 'maxEntries', options.maxEntries, 1, 10_000);
    const sweepInterval = checkIntegerOption('MemoryStore', 'sweepInterval', options.sweepInterval, 0, 60_000);
    if (sweepInterval > 0) {
      this.#timer = setInterval(() => this.sweep(), sweepInterval);
      this.#timer.unref();
    }
  }

  /** Sessions held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  async get(id: string): Promise<SessionData | null> {
    assertSessionId(id, 'MemoryStore');
    const entry = this.#entries.get(id);
    if (entry === undefined) return null;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(id);
      return null;
    }
    return decodeSessionData(entry.json);
  }

  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    assertSessionId(id, 'MemoryStore');
    assertTtl(ttlMs, 'MemoryStore');
    const json = encodeSessionData(data, 'MemoryStore');
    // Delete first, so the entry moves to the end of the Map's order: the front is the oldest save.
    this.#entries.delete(id);
    this.#entries.set(id, { json, expiresAt: Date.now() + ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  async destroy(id: string): Promise<void> {
    assertSessionId(id, 'MemoryStore');
    this.#entries.delete(id);
  }

  async touch(id: string, ttlMs: number): Promise<void> {
    assertSessionId(id, 'MemoryStore');
    assertTtl(ttlMs, 'MemoryStore');
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(id);
      return;
    }
    entry.expiresAt = Date.now() + ttlMs;
    this.#entries.delete(id);
    this.#entries.set(id, entry);
  }

  /** Removes every expired session now; returns how many. */
  sweep(): number {
    const now = Date.now();
    let removed = 0;
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(id);
        removed++;
      }
    }
    return removed;
  }

  /** Stops the sweep timer (the sessions stay readable). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
