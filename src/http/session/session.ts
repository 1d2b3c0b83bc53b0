// One request's session: the cookie read and verified lazily, the store read once, and the save (or renewal) decided and done before the response completes.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { serializeCookie, type CookieOptions } from '../cookies.js';
import type { Request } from '../request.js';
import type { Response } from '../response.js';
import type { Signer } from '../signing.js';
import { isSessionId, newSessionId, storeError, type SessionData, type SessionStore } from './store.js';

/** Options resolved once by Sessions and shared by every request. */
export interface SessionConfig {
  readonly store: SessionStore;
  readonly signer: Signer;
  readonly ttl: number;
  readonly rolling: boolean;
  readonly maxSize: number;
  readonly cookieName: string;
  /** Attributes of the cookie that carries the id; `secure` is resolved per request when 'auto'. */
  readonly cookie: Omit<CookieOptions, 'secure' | 'maxAge' | 'expires' | 'encode'>;
  readonly secure: boolean | 'auto';
  readonly persistent: boolean;
  readonly logger: Logger;
}

/**
 * Where the session of a request came from: `loaded` from the store; otherwise it is new because the
 * request had no session cookie (`absent`), one whose signature failed (`forged`), or one whose id
 * the store does not have, having expired or been destroyed (`unknown`).
 */
export type SessionOrigin = 'loaded' | 'absent' | 'forged' | 'unknown';

type CookieState =
  | { verdict: 'absent' }
  | { verdict: 'forged' }
  | { verdict: 'valid'; id: string; keyIndex: number };

const EMPTY = '{}';

/**
 * The session as a handler sees it (from `await sessions.get(req)`). `data` is a plain object to read
 * and change; what counts is what it holds when the response ends, compared as JSON with what was
 * loaded: a session is saved only when that differs, a new session only once something is in it.
 * Values must be JSON (a Date comes back as a string).
 */
export class Session<D extends object = SessionData> {
  readonly #state: RequestSession<D>;

  /** @internal made by Sessions. */
  constructor(state: RequestSession<D>) {
    this.#state = state;
  }

  /** The session id (never the cookie value: that is the id signed). Changes on regenerate() and destroy(). */
  get id(): string {
    return this.#state.id;
  }

  /** True while the session is not in the store: it is new in this request, or was regenerated or destroyed. */
  get isNew(): boolean {
    return !this.#state.stored;
  }

  /** Why the session is what it is at the start of the request (see SessionOrigin). */
  get origin(): SessionOrigin {
    return this.#state.origin;
  }

  /** The data: read it, change it in place, or replace it. */
  get data(): Partial<D> {
    return this.#state.data;
  }

  set data(value: Partial<D>) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new NodefpmError('NODEFPM_SESSION_STORE', 'session data must be a JSON object');
    }
    this.#state.data = value;
  }

  get<K extends keyof D>(key: K): D[K] | undefined {
    return this.#state.data[key];
  }

  set<K extends keyof D>(key: K, value: D[K]): this {
    this.#state.data[key] = value;
    return this;
  }

  delete(key: keyof D): this {
    delete this.#state.data[key];
    return this;
  }

  /** Removes every key (the entry stays until the response ends, then is saved empty). */
  clear(): this {
    this.#state.data = {};
    return this;
  }

  /**
   * Gives the session a new id, keeping its data, and deletes the entry under the old id, so an id
   * an attacker planted before a login is worthless after it (session fixation). Call it when the
   * user's privileges change (log in, log out, sudo). The head must not have gone out yet: the new
   * id travels in its Set-Cookie. Rejects with NODEFPM_HEADERS_SENT otherwise.
   */
  regenerate(): Promise<void> {
    return this.#state.regenerate();
  }

  /**
   * Deletes the session from the store and clears its cookie. The object goes on as a new, empty
   * session: written to again, it is saved under a new id with a new cookie.
   */
  destroy(): Promise<void> {
    return this.#state.destroy();
  }

  /** Renews the expiry at the end of this request even if nothing changed (what `rolling` does for every request). */
  touch(): this {
    this.#state.touchRequested = true;
    return this;
  }
}

/**
 * The per-request state behind a Session, and the hooks that finish it: a beforeHead hook sets or
 * clears the cookie if the head goes out before end() (a streamed response), and a beforeEnd hook
 * saves or renews the entry, and sets the cookie if the head has not gone out, before end() sends
 * anything. Nothing is registered, parsed or read until the handler asks for the session (or, with
 * `rolling`, until the response ends).
 */
export class RequestSession<D extends object = SessionData> {
  readonly #config: SessionConfig;
  readonly #req: Request;
  readonly #res: Response;
  #cookieState: CookieState | null = null;
  #loading: Promise<Session<D>> | null = null;
  #hooked = false;
  /** Regenerate and destroy calls in flight: the save waits for them. */
  #ops: Promise<void> = Promise.resolve();
  #snapshot = EMPTY;
  #forceSave = false;
  /** The cookie the head already carried: the id it set, 'cleared', or null when none went out. */
  #cookieSent: string | null = null;
  #committed = false;

  origin: SessionOrigin = 'absent';
  id = '';
  stored = false;
  data: Partial<D> = {};
  touchRequested = false;

  constructor(config: SessionConfig, req: Request, res: Response) {
    this.#config = config;
    this.#req = req;
    this.#res = res;
  }

  /** The session, loading it on the first call (later calls share that load). */
  load(): Promise<Session<D>> {
    if (this.#loading === null) {
      this.hook();
      this.#loading = this.#load();
    }
    return this.#loading;
  }

  /** Registers the response hooks (once). Called on first use, or by the middleware when `rolling` needs them. */
  hook(): void {
    if (this.#hooked) return;
    this.#hooked = true;
    const res = this.#res;
    if (res.writableEnded) {
      this.#config.logger.warn('the session was used after the response ended: changes to it are not saved', {
        request: this.#req.requestId,
        requestId: this.#req.id,
      });
      return;
    }
    if (!res.headersSent) res.beforeHead(() => this.#onHead());
    res.beforeEnd(() => this.#commit());
  }

  async regenerate(): Promise<void> {
    if (this.#res.headersSent) {
      throw new NodefpmError('NODEFPM_HEADERS_SENT', 'cannot regenerate the session: the headers were already sent, so the new id cannot reach the client');
    }
    await this.load();
    const old = this.stored ? this.id : null;
    this.id = newSessionId();
    this.stored = false;
    this.#forceSave = true;
    await this.#track(old);
  }

  async destroy(): Promise<void> {
    await this.load();
    const old = this.stored ? this.id : null;
    this.id = newSessionId();
    this.stored = false;
    this.#forceSave = false;
    this.data = {};
    this.#snapshot = EMPTY;
    await this.#track(old);
  }

  /** Deletes `old` from the store, as an operation the save at the end waits for. */
  #track(old: string | null): Promise<void> {
    if (old === null) return Promise.resolve();
    const op = this.#config.store.destroy(old).catch((error: unknown) => {
      throw storeError('session store', 'deleting the old session', error);
    });
    this.#ops = this.#ops.then(
      () => op.catch(() => undefined),
      () => undefined,
    );
    return op;
  }

  /**
   * The session cookie of the request, verified once (no store access). req.cookies throws
   * NODEFPM_COOKIE_HEADER_TOO_LARGE (431) for a Cookie header over maxCookieBytes: loading lets that
   * reach the handler (`strict`); the response hooks take it as no cookie, so a route that never used
   * the session is not failed by one.
   */
  #cookie(strict = false): CookieState {
    if (this.#cookieState !== null) return this.#cookieState;
    const name = this.#config.cookieName;
    let raw: string | undefined;
    try {
      raw = this.#req.cookies[name];
    } catch (error) {
      if (strict) throw error;
      return { verdict: 'absent' };
    }
    let state: CookieState;
    if (raw === undefined || raw === '') {
      state = { verdict: 'absent' };
    } else {
      const verified = this.#config.signer.verify(raw, name);
      if (verified !== false && isSessionId(verified.value)) {
        state = { verdict: 'valid', id: verified.value, keyIndex: verified.keyIndex };
      } else {
        state = { verdict: 'forged' };
        // The value is not logged: it may be someone's real (if stale) session id.
        this.#config.logger.warn(
          `session cookie ${name} failed verification (tampered, forged, or signed with a key no longer in keys): ignored, the request gets a new session`,
          { request: this.#req.requestId, requestId: this.#req.id, code: 'NODEFPM_SESSION_FORGED' },
        );
      }
    }
    this.#cookieState = state;
    return state;
  }

  async #load(): Promise<Session<D>> {
    const cookie = this.#cookie(true);
    this.origin = cookie.verdict === 'valid' ? 'unknown' : cookie.verdict;
    if (cookie.verdict === 'valid') {
      let found: SessionData | null;
      try {
        found = await this.#config.store.get(cookie.id);
      } catch (error) {
        throw storeError('session store', 'loading the session', error);
      }
      if (found !== null) {
        this.origin = 'loaded';
        this.id = cookie.id;
        this.stored = true;
        this.data = found as Partial<D>;
        this.#snapshot = JSON.stringify(found);
        return new Session(this);
      }
      this.#config.logger.info('session id unknown or expired: the request gets a new session', {
        request: this.#req.requestId,
        requestId: this.#req.id,
      });
    }
    this.id = newSessionId();
    return new Session(this);
  }

  /** True once the session has been loaded (or failed to). */
  get #loaded(): boolean {
    return this.#loading !== null;
  }

  #serialize(): string {
    let json: string;
    try {
      json = JSON.stringify(this.data);
    } catch (error) {
      throw new NodefpmError('NODEFPM_SESSION_STORE', `session data cannot be serialised as JSON: ${(error as Error).message}`, { cause: error });
    }
    if (json === undefined || !json.startsWith('{')) throw new NodefpmError('NODEFPM_SESSION_STORE', 'session data must be a JSON object');
    return json;
  }

  /**
   * What the end of the request must do, given the data as JSON now: save the entry (new, changed,
   * regenerated), renew it (rolling or touch()), or nothing; and whether the cookie must be set (a new
   * id; a renewed persistent cookie; a cookie signed with an old key) or cleared (the request carried
   * a cookie that leads to no session any more, and nothing new was written).
   */
  #plan(json: string): { store: 'save' | 'renew' | 'none'; cookie: 'set' | 'clear' | 'none' } {
    const cookie = this.#cookie();
    if (!this.stored) {
      if (json === EMPTY && !this.#forceSave) return { store: 'none', cookie: cookie.verdict === 'absent' ? 'none' : 'clear' };
      return { store: 'save', cookie: 'set' };
    }
    const resign = cookie.verdict === 'valid' && cookie.keyIndex > 0;
    if (json !== this.#snapshot) return { store: 'save', cookie: this.#config.persistent || resign ? 'set' : 'none' };
    if (this.#config.rolling || this.touchRequested) return { store: 'renew', cookie: this.#config.persistent || resign ? 'set' : 'none' };
    return { store: 'none', cookie: resign ? 'set' : 'none' };
  }

  /** Rolling without the handler having used the session: renew what the cookie names, without reading it. */
  #planUnloaded(): { store: 'renew' | 'none'; cookie: 'set' | 'none' } {
    if (!this.#config.rolling) return { store: 'none', cookie: 'none' };
    const cookie = this.#cookie();
    if (cookie.verdict !== 'valid') return { store: 'none', cookie: 'none' };
    this.id = cookie.id;
    return { store: 'renew', cookie: this.#config.persistent || cookie.keyIndex > 0 ? 'set' : 'none' };
  }

  #applyCookie(action: 'set' | 'clear' | 'none'): void {
    if (action === 'none') return;
    const config = this.#config;
    const secure = config.secure === 'auto' ? this.#req.secure : config.secure;
    if (action === 'set') {
      const maxAge = config.persistent ? Math.ceil(config.ttl / 1000) : undefined;
      const value = config.signer.sign(this.id, config.cookieName);
      this.#res.appendHeader('Set-Cookie', serializeCookie(config.cookieName, value, { ...config.cookie, secure, maxAge }));
      this.#cookieSent = this.id;
    } else {
      this.#res.appendHeader('Set-Cookie', serializeCookie(config.cookieName, '', { ...config.cookie, secure, maxAge: 0, expires: new Date(0) }));
      this.#cookieSent = 'cleared';
    }
  }

  /** beforeHead: the head is going out before end() (a streamed response), so the cookie is decided now. */
  #onHead(): void {
    if (this.#committed) return;
    let plan: { cookie: 'set' | 'clear' | 'none' };
    if (!this.#loaded) {
      plan = this.#planUnloaded();
    } else if (this.id === '') {
      // Still loading (the handler wrote before awaiting sessions.get): there is nothing to decide on.
      return;
    } else {
      plan = this.#plan(this.#serialize());
    }
    this.#applyCookie(plan.cookie);
  }

  /** beforeEnd: save or renew, and set the cookie if the head is still open. Errors are logged and fail the response (500). */
  async #commit(): Promise<void> {
    if (this.#committed) return;
    this.#committed = true;
    const config = this.#config;
    try {
      if (!this.#loaded) {
        const plan = this.#planUnloaded();
        if (plan.store === 'renew') await this.#renew();
        if (!this.#res.headersSent) this.#applyCookie(plan.cookie);
        return;
      }
      try {
        await this.#loading;
      } catch {
        return; // The load failed, and the handler was told (its get() rejected): there is nothing to save.
      }
      await this.#ops;
      const json = this.#serialize();
      const plan = this.#plan(json);
      const headOpen = !this.#res.headersSent;
      if (plan.store === 'save') {
        if (!headOpen && !this.stored && this.#cookieSent !== this.id) {
          config.logger.warn('session data was written after the response head went out, so its cookie could not be set: not saved', {
            request: this.#req.requestId,
            requestId: this.#req.id,
          });
          return;
        }
        const size = Buffer.byteLength(json);
        if (size > config.maxSize) {
          throw new NodefpmError('NODEFPM_SESSION_TOO_LARGE', `session data is ${size} bytes of JSON, over the ${config.maxSize}-byte maxSize: not saved`);
        }
        try {
          await config.store.set(this.id, this.data as SessionData, config.ttl);
        } catch (error) {
          throw storeError('session store', 'saving the session', error);
        }
        this.stored = true;
        this.#snapshot = json;
      } else if (plan.store === 'renew') {
        await this.#renew();
      }
      if (headOpen) this.#applyCookie(plan.cookie);
    } catch (error) {
      config.logger.error(`session could not be saved: ${(error as Error).message}`, {
        request: this.#req.requestId,
        requestId: this.#req.id,
        code: (error as { code?: string }).code,
        error,
      });
      throw error;
    }
  }

  /** Moves the expiry of the entry under this.id: touch() when the store has it, else read and set again. */
  async #renew(): Promise<void> {
    const { store, ttl } = this.#config;
    try {
      if (store.touch !== undefined) {
        await store.touch(this.id, ttl);
      } else {
        const data = await store.get(this.id);
        if (data !== null) await store.set(this.id, data, ttl);
      }
    } catch (error) {
      throw storeError('session store', 'renewing the session', error);
    }
  }
}
