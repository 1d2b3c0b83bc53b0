// FileSessionStore: one 0600 file per session in a 0700 folder, written atomically, its mtime the expiry, collected on a schedule and on read.

import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import { open, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NodefpmError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import type { SessionData, SessionStore } from './store.js';
import { assertSessionId, assertTtl, checkIntegerOption, decodeSessionData, encodeSessionData, storeError } from './store.js';

export interface FileSessionStoreOptions {
  /**
   * The folder, created (mode 0700) when missing. Default: `nodefpm-sessions-<uid>` in the system's
   * temp folder, which must then be a real folder owned by this user and closed to everyone else.
   */
  dir?: string;
  /** Start of every session file's name; files without it are never touched. Default "sess-". */
  prefix?: string;
  /** How often expired files are collected, in ms (0: only when read, or by collect()). Default 600 000. */
  collectInterval?: number;
  /** Where a failed scheduled collection is reported. Default: a stderr logger. */
  logger?: Logger;
}

/** A temp file older than this is a leftover of a crash mid-write and is collected. */
const STALE_TEMP_MS = 10 * 60 * 1000;
const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

async function unlinkQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
}

/**
 * Sessions as files, in the manner of Smisk's FileSessionStore: `<dir>/<prefix><id>`, holding the
 * data as JSON. Several processes (a pool of workers on one machine) can share the folder:
 *
 * - A save writes a temp file in the same folder (mode 0600) and renames it over the session's file,
 *   so a reader sees the old data or the new, never half of either.
 * - The file's modification time is set to the moment the session expires. A read checks it (and
 *   removes an expired file), touch() moves it without rewriting the data, and collection removes
 *   every file whose time has passed without opening it.
 * - Ids are checked before they become file names (22-128 base64url characters), so no id can name
 *   a path outside the folder.
 *
 * No fsync: a machine that crashes may lose the last saves, which for sessions means logging in again.
 */
export class FileSessionStore implements SessionStore {
  readonly dir: string;
  readonly prefix: string;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | null = null;
  #collecting: Promise<number> | null = null;

  constructor(options: FileSessionStoreOptions = {}) {
    const prefix = options.prefix ?? 'sess-';
    if (typeof prefix !== 'string' || !PREFIX.test(prefix) || prefix.startsWith('.')) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `FileSessionStore: option prefix must be 1-64 of [A-Za-z0-9_.-], not starting with a dot; got ${JSON.stringify(prefix)}`);
    }
    this.prefix = prefix;
    this.#logger = options.logger ?? createLogger();
    const interval = checkIntegerOption('FileSessionStore', 'collectInterval', options.collectInterval, 0, 600_000);
    if (options.dir !== undefined) {
      if (typeof options.dir !== 'string' || options.dir === '') {
        throw new NodefpmError('NODEFPM_INVALID_OPTION', 'FileSessionStore: option dir must be a folder path');
      }
      this.dir = resolve(options.dir);
      this.#prepare(false);
    } else {
      this.dir = join(tmpdir(), `nodefpm-sessions-${process.getuid?.() ?? 'user'}`);
      this.#prepare(true);
    }
    if (interval > 0) {
      this.#timer = setInterval(() => {
        this.collect().catch((error: unknown) => {
          this.#logger.warn(`FileSessionStore: collecting expired sessions in ${this.dir} failed: ${(error as Error).message}`, { code: 'NODEFPM_SESSION_STORE' });
        });
      }, interval);
      this.#timer.unref();
    }
  }

  async get(id: string): Promise<SessionData | null> {
    const path = this.#path(id);
    try {
      let handle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
      let text: string;
      try {
        if ((await handle.stat()).mtimeMs <= Date.now()) {
          await unlinkQuietly(path);
          return null;
        }
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
      const data = decodeSessionData(text);
      // A damaged file (edited by hand, a disk error) is a session that is gone, not an outage.
      if (data === null) await unlinkQuietly(path);
      return data;
    } catch (error) {
      throw storeError('FileSessionStore', `reading session file ${path}`, error);
    }
  }

  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const path = this.#path(id);
    assertTtl(ttlMs, 'FileSessionStore');
    const json = encodeSessionData(data, 'FileSessionStore');
    const temp = join(this.dir, `.${this.prefix}${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      // 'wx': a fresh file, never one someone placed at this name; 0600: sessions are credentials.
      await writeFile(temp, json, { mode: 0o600, flag: 'wx' });
      const expiresAt = (Date.now() + ttlMs) / 1000;
      await utimes(temp, expiresAt, expiresAt);
      await rename(temp, path);
    } catch (error) {
      await unlinkQuietly(temp).catch(() => undefined);
      throw storeError('FileSessionStore', `writing session file ${path}`, error);
    }
  }

  async destroy(id: string): Promise<void> {
    const path = this.#path(id);
    try {
      await unlinkQuietly(path);
    } catch (error) {
      throw storeError('FileSessionStore', `removing session file ${path}`, error);
    }
  }

  async touch(id: string, ttlMs: number): Promise<void> {
    const path = this.#path(id);
    assertTtl(ttlMs, 'FileSessionStore');
    try {
      const now = Date.now();
      let mtime: number;
      try {
        mtime = (await stat(path)).mtimeMs;
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      // An expired session stays expired: renewing it would bring back one its owner had lost.
      if (mtime <= now) {
        await unlinkQuietly(path);
        return;
      }
      const expiresAt = (now + ttlMs) / 1000;
      await utimes(path, expiresAt, expiresAt);
    } catch (error) {
      if (isMissing(error)) return; // Removed between stat and utimes: nothing to renew.
      throw storeError('FileSessionStore', `renewing session file ${path}`, error);
    }
  }

  /**
   * Removes every session file whose expiry has passed, and temp files a crash left behind; returns
   * how many files went. One collection runs at a time: a call during another shares its result.
   */
  collect(): Promise<number> {
    if (this.#collecting === null) {
      this.#collecting = this.#collect().finally(() => {
        this.#collecting = null;
      });
    }
    return this.#collecting;
  }

  /** Stops scheduled collection (the files stay). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #collect(): Promise<number> {
    const now = Date.now();
    const tempPrefix = `.${this.prefix}`;
    let removed = 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      throw storeError('FileSessionStore', `listing ${this.dir}`, error);
    }
    for (const name of names) {
      const isSession = name.startsWith(this.prefix);
      const isTemp = name.startsWith(tempPrefix) && name.endsWith('.tmp');
      if (!isSession && !isTemp) continue;
      const path = join(this.dir, name);
      try {
        const info = await stat(path);
        // A temp file's mtime is already the future expiry; its ctime says when it was written.
        const stale = isSession ? info.mtimeMs <= now : info.ctimeMs <= now - STALE_TEMP_MS;
        if (stale && info.isFile()) {
          await unlink(path);
          removed++;
        }
      } catch (error) {
        if (!isMissing(error)) throw storeError('FileSessionStore', `collecting ${path}`, error);
      }
    }
    return removed;
  }

  #path(id: string): string {
    assertSessionId(id, 'FileSessionStore');
    return join(this.dir, this.prefix + id);
  }

  /**
   * Creates the folder (0700) when missing. The default folder sits in a temp folder every user can
   * write to, so one that already exists must be ours and closed, or someone else could read or plant
   * sessions in it.
   */
  #prepare(isDefault: boolean): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `FileSessionStore: cannot create the session folder ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
    const info = lstatSync(this.dir);
    if (!info.isDirectory()) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `FileSessionStore: ${this.dir} is not a folder (a symlink or a file)`);
    }
    if (isDefault) {
      const uid = process.getuid?.();
      if ((uid !== undefined && info.uid !== uid) || (info.mode & 0o077) !== 0) {
        throw new NodefpmError(
          'NODEFPM_INVALID_OPTION',
          `FileSessionStore: the default session folder ${this.dir} belongs to someone else or is open to other users; pass option dir`,
        );
      }
    }
  }
}
