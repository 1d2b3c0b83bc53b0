// The http.IncomingMessage a Node listener gets: method, url, version and headers from the FastCGI params, set through public properties.

import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Exchange } from '../../server/exchange.js';
import type { CgiRequest } from './params.js';

/** The request target: REQUEST_URI, or SCRIPT_NAME + PATH_INFO + ?QUERY_STRING for web servers that send no REQUEST_URI. */
export function requestUrl(requestUri: string | undefined, param: (name: string) => string | undefined): string {
  if (requestUri !== undefined && requestUri !== '') return requestUri;
  const path = (param('SCRIPT_NAME') ?? '') + (param('PATH_INFO') ?? '') || '/';
  const query = param('QUERY_STRING');
  return query === undefined || query === '' ? path : `${path}?${query}`;
}

/** [major, minor] from SERVER_PROTOCOL ("HTTP/1.1", "HTTP/2.0", "HTTP/2"); HTTP/1.1 when absent or not HTTP. */
export function httpVersionOf(protocol: string | undefined): [major: number, minor: number] {
  if (protocol === 'HTTP/1.1' || protocol === undefined) return [1, 1];
  const match = /^HTTP\/(\d{1,3})(?:\.(\d{1,3}))?$/i.exec(protocol);
  return match === null ? [1, 1] : [Number(match[1]), Number(match[2] ?? '0')];
}

/** Spellings already worked out: header names repeat from request to request. Bounded, as names come from clients. */
const displayNames = new Map<string, string>();
const MAX_DISPLAY_NAMES = 1000;

/** A header name's usual spelling, for rawHeaders (CGI keeps no case): accept-language -> Accept-Language. */
export function displayName(lower: string): string {
  let name = displayNames.get(lower);
  if (name === undefined) {
    name = lower.replace(/(^|-)([a-z])/g, (_match, dash: string, letter: string) => dash + letter.toUpperCase());
    if (displayNames.size < MAX_DISPLAY_NAMES) displayNames.set(lower, name);
  }
  return name;
}

/** rawHeaders: [name, value, ...] with names re-capitalised, in the order of `headers`. */
export function rawHeadersFrom(headers: Record<string, string>): string[] {
  const raw: string[] = [];
  for (const name in headers) raw.push(displayName(name), headers[name]!);
  return raw;
}

/**
 * A plain http.IncomingMessage (so `instanceof` and every inherited method are Node's own), filled in
 * from the FastCGI params rather than by Node's HTTP parser, through public properties only.
 *
 * Not a subclass: Express replaces the prototype of every request with its own (which inherits from
 * IncomingMessage.prototype), so nothing may depend on methods of ours on the prototype, and
 * accessors defined on each instance would cost more than they save (V8 turns such objects into slow
 * dictionaries). So rawHeaders and headersDistinct, which Node derives from its parser's records,
 * are built at once. The body is pushed in by the request's FcgiSocket, as Node's parser pushes it.
 */
export function createIncomingMessage(socket: Socket, cgi: CgiRequest, exchange: Exchange): IncomingMessage {
  const req = new IncomingMessage(socket);
  req.method = cgi.method;
  req.url = requestUrl(cgi.REQUEST_URI, (name) => exchange.param(name));
  const [major, minor] = httpVersionOf(cgi.SERVER_PROTOCOL);
  req.httpVersionMajor = major;
  req.httpVersionMinor = minor;
  req.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
  (req as { upgrade?: boolean }).upgrade = false;
  const headers = cgi.headers;
  req.headers = headers;
  req.rawHeaders = rawHeadersFrom(headers);
  const distinct: NodeJS.Dict<string[]> = {};
  for (const name in headers) distinct[name] = [headers[name]!];
  req.headersDistinct = distinct;
  if (exchange.stdin.ended) req.complete = true;
  return req;
}
