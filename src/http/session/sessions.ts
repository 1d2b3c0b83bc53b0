// Sessions: the options, the middleware that gives each request a lazy session, and get()/require() to reach it.

import { NodefpmError } from '../../errors.js';
import { createLogger, type Logger } from '../../log.js';
import { serializeCookie, type SameSite } from '../cookies.js';
import type { Handler } from '../handler.js';
import type { Middleware } from '../middleware.js';
import type { Request } from '../request.js';
import { Signer } from '../signing.js';
import { MemoryStore } from './memory-store.js';
import { RequestSession, type Session, type SessionConfig } from './session.js';
import { checkIntegerOption, type SessionData, type SessionStore } from './store.js';

/** The cookie that carries the signed session id. */
export interface SessionCookieOptions {
  /** Default "sid". */
  name?: string;
  /** Default "/". */
  path?: string;
  /** Default: none (only the host that set it). */
  domain?: string;
  /** true, false, or 'auto': Secure when the request came over HTTPS (req.secure). Default 'auto'. */
  secure?: boolean | 'auto';
  /** Default true: scripts cannot read the id. */
  httpOnly?: boolean;
  /** Default 'Lax'. 'None' needs secure: true. */
  sameSite?: SameSite;
  /** CHIPS; needs secure: true. Default false. */
  partitioned?: boolean;
  /** true: Max-Age follows ttl, renewed with the entry; false: a browser-session cookie (no Max-Age). Default true. */
  persistent?: boolean;
}

export interface SessionOptions {
  /** Signing keys for the cookie, at least 32 bytes each; the first signs, all verify (rotation). Or give `signer`. */
  keys?: readonly (string | Uint8Array)[];
  /** A Signer to use instead of `keys`. */
  signer?: Signer;
  /** Where sessions live. Default: a MemoryStore of this Sessions (closed by close()). */
  store?: SessionStore;
  /** Milliseconds a session lives after it was last saved (or renewed). Default 86 400 000 (a day). */
  ttl?: number;
  /** Renew the expiry (and a persistent cookie) on every request that carries a valid session cookie. Default false. */
  rolling?: boolean;
  /** Bytes of JSON a session may hold; saving more fails with NODEFPM_SESSION_TOO_LARGE. Default 65 536. */
  maxSize?: number;
  cookie?: SessionCookieOptions;
  /** Where forged cookies, unknown ids and failed saves are reported. Default: a stderr logger. Pass the server's. */
  logger?: Logger;
}

export const defaultSessionOptions = Object.freeze({
  ttl: 24 * 60 * 60 * 1000,
  rolling: false,
  maxSize: 64 * 1024,
  cookieName: 'sid',
});

/**
 * Sessions for native handlers. Wrap the handler with `sessions.middleware`, then reach a request's
 * session with `await sessions.get(req)`:
 *
 *     const sessions = new Sessions<{ user?: string; visits?: number }>({ keys: [process.env.SESSION_KEY!] });
 *     const app: Handler = async (req, res) => {
 *       const session = await sessions.get(req);
 *       session.data.visits = (session.data.visits ?? 0) + 1;
 *       res.end(`visit ${session.data.visits}\n`);
 *     };
 *     createServer(sessions.middleware(app));
 *
 * Nothing happens for a request whose handler never calls get(): no cookie parsed, no store read, no
 * Set-Cookie. A new session is saved, and its cookie set, only once something is written to it; a
 * loaded one only when its data changed. The save happens before the response completes (see
 * Response.beforeEnd), so the client's next request sees it.
 */
export class Sessions<D extends object = SessionData> {
  readonly store: SessionStore;
  readonly #config: SessionConfig;
  readonly #ownsStore: boolean;
  readonly #requests = new WeakMap<Request, RequestSession<D>>();

  constructor(options: SessionOptions) {
    if (options === null || typeof options !== 'object') throw invalid('new Sessions(options) needs options with keys (or signer)');
    let signer: Signer;
    if (options.signer !== undefined) {
      if (!(options.signer instanceof Signer)) throw invalid('option signer must be a Signer');
      signer = options.signer;
    } else if (options.keys !== undefined) {
      signer = new Signer(options.keys);
    } else {
      throw invalid('sessions need signing keys: option keys (e.g. [crypto.randomBytes(32).toString("base64url")], kept secret and stable) or signer');
    }
    const store = options.store ?? new MemoryStore();
    if (typeof store?.get !== 'function' || typeof store.set !== 'function' || typeof store.destroy !== 'function') {
      throw invalid('option store must have get, set and destroy methods (see SessionStore)');
    }
    this.store = store;
    this.#ownsStore = options.store === undefined;

    const cookie = options.cookie ?? {};
    const secure = cookie.secure ?? 'auto';
    if (secure !== true && secure !== false && secure !== 'auto') throw invalid("option cookie.secure must be true, false or 'auto'");
    const persistent = cookie.persistent ?? true;
    const cookieName = cookie.name ?? defaultSessionOptions.cookieName;
    const attributes = {
      path: cookie.path ?? '/',
      httpOnly: cookie.httpOnly ?? true,
      sameSite: cookie.sameSite ?? ('Lax' as const),
      ...(cookie.domain === undefined ? {} : { domain: cookie.domain }),
      ...(cookie.partitioned === true ? { partitioned: true } : {}),
    };
    const lowerName = String(cookieName).toLowerCase();
    if (secure === 'auto' && (lowerName.startsWith('__secure-') || lowerName.startsWith('__host-') || attributes.sameSite.toLowerCase() === 'none' || cookie.partitioned === true)) {
      // Over plain HTTP 'auto' would leave Secure off, and browsers would drop the cookie.
      throw invalid('option cookie.secure must be true for a __Secure- or __Host- name, SameSite=None, or Partitioned');
    }
    try {
      // Fails now, at start-up, on a name or attribute the cookie could never be set with.
      serializeCookie(cookieName, 'x', { ...attributes, secure: secure !== false });
    } catch (error) {
      throw invalid(`option cookie: ${(error as Error).message}`, error);
    }

    if (options.rolling !== undefined && typeof options.rolling !== 'boolean') throw invalid('option rolling must be a boolean');
    this.#config = {
      store,
      signer,
      ttl: checkIntegerOption('Sessions', 'ttl', options.ttl, 1000, defaultSessionOptions.ttl),
      rolling: options.rolling ?? defaultSessionOptions.rolling,
      maxSize: checkIntegerOption('Sessions', 'maxSize', options.maxSize, 2, defaultSessionOptions.maxSize),
      cookieName,
      cookie: attributes,
      secure,
      persistent,
      logger: options.logger ?? createLogger(),
    };
  }

  /** The session cookie's name. */
  get cookieName(): string {
    return this.#config.cookieName;
  }

  /** Milliseconds a session lives after its last save or renewal. */
  get ttl(): number {
    return this.#config.ttl;
  }

  /**
   * The middleware: wraps a handler so that its requests can have sessions. Costs a small object per
   * request until the handler asks for the session (with `rolling`, also the response hooks).
   */
  readonly middleware: Middleware = (next: Handler): Handler => {
    return (req, res) => {
      const state = new RequestSession<D>(this.#config, req, res);
      this.#requests.set(req, state);
      if (this.#config.rolling) state.hook();
      return next(req, res);
    };
  };

  /**
   * The request's session, loaded from the store on the first call (later calls in the same request
   * share it). Always a session: a request without a valid cookie, or whose id is unknown or expired,
   * gets a new, empty one (a forged cookie is logged as a warning, an expired id as info); see
   * session.origin for which. Rejects with NODEFPM_SESSION_STORE when the store fails, and with
   * NODEFPM_SESSION_NOT_INSTALLED for a request the middleware did not wrap.
   */
  get(req: Request): Promise<Session<D>> {
    const state = this.#requests.get(req);
    if (state === undefined) {
      return Promise.reject(
        new NodefpmError('NODEFPM_SESSION_NOT_INSTALLED', 'sessions.get(req): this request did not pass through sessions.middleware (wrap the handler with it)'),
      );
    }
    return state.load();
  }

  /**
   * As get(), for routes that need an existing session: rejects with NODEFPM_SESSION_FORGED (400) when
   * the cookie's signature fails, and NODEFPM_SESSION_REQUIRED (401) when there is no cookie or its id
   * is unknown or expired. Thrown from a handler, either becomes that status with the reason.
   */
  async require(req: Request): Promise<Session<D>> {
    const session = await this.get(req);
    switch (session.origin) {
      case 'loaded':
        return session;
      case 'forged':
        throw new NodefpmError('NODEFPM_SESSION_FORGED', 'the session cookie failed verification (tampered, forged, or signed with a retired key)');
      case 'absent':
        throw new NodefpmError('NODEFPM_SESSION_REQUIRED', 'this route needs a session and the request has no session cookie');
      default:
        throw new NodefpmError('NODEFPM_SESSION_REQUIRED', 'this route needs a session and the session has expired or does not exist');
    }
  }

  /** Closes the store if this Sessions made it (the default MemoryStore); a store passed in stays open. */
  async close(): Promise<void> {
    if (this.#ownsStore) await this.store.close?.();
  }
}

function invalid(message: string, cause?: unknown): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', `Sessions: ${message}`, cause === undefined ? undefined : { cause });
}
