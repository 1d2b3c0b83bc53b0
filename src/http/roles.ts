// The three FastCGI roles for native handlers: which handler serves which role, and the server's `roles` option made from them.

import { NodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import { Role } from '../protocol/index.js';
import type { Exchange } from '../server/exchange.js';
import type { ExchangeHandler } from '../server/server.js';
import { defaultBodyLimits } from './body.js';
import { nativeExchangeHandler, type Handler, type HandlerOptions } from './handler.js';

/**
 * A handler per role (section 6). A server given these serves exactly those roles: a BEGIN_REQUEST for
 * any other is refused with FCGI_UNKNOWN_ROLE before a handler sees it.
 *
 * - `responder` (role 1): the ordinary request and response.
 * - `authorizer` (role 2): decides with `res.allow(variables)` (200 with `Variable-NAME` headers) or
 *   `res.deny(status, body, headers)`. Its body is empty: nothing waits for FCGI_STDIN.
 * - `filter` (role 3): reads the file from `req.data` (with `req.dataLastModified` and
 *   `req.dataLength`); its output waits until FCGI_STDIN has ended.
 */
export interface RoleHandlers {
  responder?: Handler;
  authorizer?: Handler;
  filter?: Handler;
}

const ROLE_KEYS = { responder: Role.Responder, authorizer: Role.Authorizer, filter: Role.Filter } as const;

/** What createServer needs: one callback for every request, and the roles to admit. */
export interface ServedRoles {
  handler: ExchangeHandler;
  roles: number[];
}

/**
 * Builds the per-request callback and the roles option from a handler (which serves every role in
 * `options.roles`, by default the Responder only) or from a handler per role (which serve those roles,
 * and only those). Throws NODEFPM_INVALID_OPTION for an empty or misspelt set, or a `roles` option
 * that contradicts the handlers given.
 */
export function serveRoles(handlers: Handler | RoleHandlers, options: HandlerOptions & { roles?: readonly number[] }, log: Logger): ServedRoles {
  // Output of a Filter that answers before reading its body whole waits for the end of STDIN; bodyLimit
  // bounds what is kept for it meanwhile, as it bounds a body read whole.
  const unreadStdinLimit = options.bodyLimit ?? defaultBodyLimits.bodyLimit;
  if (typeof handlers === 'function') {
    const run = nativeExchangeHandler(handlers, options, log);
    return {
      roles: [...(options.roles ?? [Role.Responder])],
      handler: (exchange: Exchange): void => {
        if (exchange.role === Role.Filter) exchange.unreadStdinLimit = unreadStdinLimit;
        run(exchange);
      },
    };
  }
  if (typeof handlers !== 'object' || handlers === null) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'createServer needs a handler function or an object of handlers by role');
  }
  const byRole = new Map<number, ExchangeHandler>();
  for (const [key, handler] of Object.entries(handlers) as Array<[string, unknown]>) {
    if (handler === undefined) continue;
    if (!Object.hasOwn(ROLE_KEYS, key)) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `createServer: ${JSON.stringify(key)} is not a role; use responder, authorizer or filter`);
    }
    if (typeof handler !== 'function') {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `createServer: the ${key} handler must be a function, got ${typeof handler}`);
    }
    byRole.set(ROLE_KEYS[key as keyof typeof ROLE_KEYS], nativeExchangeHandler(handler as Handler, options, log));
  }
  if (byRole.size === 0) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'createServer: no handler given; pass responder, authorizer or filter');
  }
  const roles = [...byRole.keys()].sort((a, b) => a - b);
  if (options.roles !== undefined) {
    const asked = [...new Set(options.roles)].sort((a, b) => a - b);
    if (asked.length !== roles.length || asked.some((role, index) => role !== roles[index])) {
      throw new NodefpmError(
        'NODEFPM_INVALID_OPTION',
        `option roles [${asked.join(', ')}] does not match the handlers given (roles [${roles.join(', ')}]); leave it out, the handlers decide`,
      );
    }
  }
  return {
    roles,
    handler: (exchange: Exchange): void => {
      if (exchange.role === Role.Filter) exchange.unreadStdinLimit = unreadStdinLimit;
      // The connection admits only the roles listed, so a handler is always there.
      byRole.get(exchange.role)!(exchange);
    },
  };
}
