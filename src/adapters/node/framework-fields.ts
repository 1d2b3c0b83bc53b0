// Gives each request and response, before the listener runs, the own properties Express sets on every one, so V8 does not make a new hidden class per property per request.

import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What Express (4 and 5: its app, its router, parseurl, express.json()/urlencoded()) assigns to every
 * request after it has replaced the request's prototype with its own. Only plain data fields: none
 * of these is an accessor on Node's or Express's prototypes (an own field would hide such a getter;
 * `query` is one in Express 5, so it is not here). test/adapters-node-fields.test.ts checks that.
 */
export const REQUEST_FIELDS = ['next', 'baseUrl', 'originalUrl', '_parsedUrl', 'params', 'route', 'body'] as const;

/**
 * The same for the response: Express's `locals`, and the status that writeHead() stores (Node keeps
 * the defaults, 200 and undefined, on ServerResponse.prototype until then).
 */
export const RESPONSE_FIELDS = ['locals', 'statusCode', 'statusMessage'] as const;

/**
 * Why: Express calls `Object.setPrototypeOf(req, app.request)` (and the same for res) on every
 * request. On the V8 of Node 20, an object whose prototype was replaced gets a hidden class of its own
 * for each property added afterwards: no two requests share them, every access to them misses V8's
 * inline caches, and the hidden classes are garbage per request. Measured with the Express hello world
 * (bench `express` scenario): that is about 40 % of the request's CPU, on Node's own http server as
 * well. A property that already exists when the prototype is replaced is only stored into, which
 * makes no hidden class: responses keep a shared one (requests still get one each from router 2's
 * module-private tracing symbol, which cannot be reserved).
 *
 * The values are the ones the app would read anyway (undefined, and the prototype's status defaults).
 * What an app can tell: `Object.keys(req)` lists these names, and `'params' in req` is true, before a
 * framework sets them. `reserveFrameworkFields: false` turns this off.
 */
export function reserveFrameworkFields(req: IncomingMessage, res: ServerResponse): void {
  // Written out rather than looped over the lists: named stores stay cheap, where a store per name
  // from an array is a keyed one. The adapter's tests check the two agree.
  const request = req as unknown as Record<(typeof REQUEST_FIELDS)[number], unknown>;
  request.next = undefined;
  request.baseUrl = undefined;
  request.originalUrl = undefined;
  request._parsedUrl = undefined;
  request.params = undefined;
  request.route = undefined;
  request.body = undefined;
  const response = res as unknown as Record<(typeof RESPONSE_FIELDS)[number], unknown>;
  response.locals = undefined;
  response.statusCode = 200;
  response.statusMessage = undefined;
}
