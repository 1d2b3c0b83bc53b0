// The kinds of handler the command can serve (--api), and the registry mapping each kind to the adapter that serves it.

import { nativeExchangeHandler, type Handler, type HandlerOptions } from '../http/handler.js';
import { fetchExchangeHandler, type FetchHandler } from '../adapters/fetch/handler.js';
import { nodeExchangeHandler, type NodeRequestListener } from '../adapters/node/handler.js';
import { validateExchangeHandler } from '../adapters/validate/exchange.js';
import { validateFetchHandler } from '../adapters/validate/fetch.js';
import { NodefpmError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ExchangeHandler } from '../server/server.js';

/** The interfaces an app module's default export can implement, as `--api` names them. */
export const API_KINDS = ['native', 'node', 'fetch'] as const;
export type ApiKind = (typeof API_KINDS)[number];

export function isApiKind(value: unknown): value is ApiKind {
  return typeof value === 'string' && (API_KINDS as readonly string[]).includes(value);
}

/** What an adapter gets besides the handler: the handler options from the command line and the logger. */
export interface AdapterContext {
  options: HandlerOptions;
  logger: Logger;
}

/** Turns an app's handler (already checked to be of the adapter's kind) into the server's per-request callback. */
export type ApiAdapter = (handler: unknown, context: AdapterContext) => ExchangeHandler;

/** What each kind is called in messages, and where its adapter lives. */
const KIND_NAMES: Record<ApiKind, string> = {
  native: 'a native handler (req, res)',
  node: 'a Node request listener (Express, Connect, Koa, ...)',
  fetch: 'a fetch handler (request) => Response',
};

const adapters = new Map<ApiKind, ApiAdapter>();

/**
 * Makes `kind` servable. The native kind is registered below; the Node-listener and fetch adapters
 * (src/adapters) register theirs here, one line each, when they exist.
 */
export function registerApiAdapter(kind: ApiKind, adapter: ApiAdapter): void {
  adapters.set(kind, adapter);
}

/** The kinds that can be served by this build. */
export function servableKinds(): ApiKind[] {
  return API_KINDS.filter((kind) => adapters.has(kind));
}

export function describeKind(kind: ApiKind): string {
  return KIND_NAMES[kind];
}

/**
 * The per-request callback for `handler` of `kind`. A kind whose adapter is not in this build is a
 * NODEFPM_APP_LOAD error naming the missing adapter, so the user learns it before any request arrives.
 */
export function exchangeHandlerFor(kind: ApiKind, handler: unknown, context: AdapterContext, appPath: string): ExchangeHandler {
  const adapter = adapters.get(kind);
  if (adapter === undefined) {
    throw new NodefpmError(
      'NODEFPM_APP_LOAD',
      `cannot serve ${appPath}: its default export is ${KIND_NAMES[kind]} (--api ${kind}), and this build of nodefpm ` +
        `has no ${kind} adapter yet (src/adapters); it can serve: ${servableKinds().join(', ')}`,
    );
  }
  return adapter(handler, context);
}

/**
 * What the command serves: the app through its kind's adapter, and with `validate` (--validate) under
 * the validator in its report mode, the fetch-only checks included for a fetch handler.
 */
export function servedHandlerFor(kind: ApiKind, handler: unknown, context: AdapterContext, appPath: string, validate: boolean): ExchangeHandler {
  if (!validate) return exchangeHandlerFor(kind, handler, context, appPath);
  const checked = kind === 'fetch' ? validateFetchHandler(handler as FetchHandler) : handler;
  return validateExchangeHandler(exchangeHandlerFor(kind, checked, context, appPath), { logger: context.logger });
}

registerApiAdapter('native', (handler, { options, logger }) => nativeExchangeHandler(handler as Handler, options, logger));
registerApiAdapter('fetch', (handler, { options, logger }) => fetchExchangeHandler(handler as FetchHandler, options, logger));
registerApiAdapter('node', (handler, { options, logger }) => nodeExchangeHandler(handler as NodeRequestListener, options, logger));
