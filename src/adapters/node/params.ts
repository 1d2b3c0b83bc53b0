// Reads what a Node request needs from the raw FastCGI PARAMS stream in one pass: the CGI variables it uses and the HTTP headers.

import { PairCursor } from '../../protocol/index.js';

/**
 * The CGI variables the adapter uses, and the request headers as Node's http gives them: lower-case
 * names, in the order the web server sent them, in a plain object. The web server already joined
 * repeated headers into one param each (with ", ", or "; " for Cookie), as Node joins them too.
 */
export interface CgiRequest {
  /** REQUEST_METHOD ("GET" when absent or empty). */
  method: string;
  REQUEST_URI: string | undefined;
  SERVER_PROTOCOL: string | undefined;
  REMOTE_ADDR: string | undefined;
  REMOTE_PORT: string | undefined;
  SERVER_ADDR: string | undefined;
  SERVER_PORT: string | undefined;
  HTTPS: string | undefined;
  REQUEST_SCHEME: string | undefined;
  headers: Record<string, string>;
}

/** Param name -> header name (HTTP_ACCEPT_LANGUAGE -> accept-language). Bounded: names come from clients. */
const headerNames = new Map<string, string>();
const MAX_CACHED_NAMES = 1000;

function headerName(param: string): string {
  let name = headerNames.get(param);
  if (name === undefined) {
    name = param.slice(5).toLowerCase().replaceAll('_', '-');
    if (headerNames.size < MAX_CACHED_NAMES) headerNames.set(param, name);
  }
  return name;
}

function isHttpPrefix(bytes: Buffer, offset: number): boolean {
  // "HTTP_"
  return bytes[offset] === 72 && bytes[offset + 4] === 95 && bytes[offset + 1] === 84 && bytes[offset + 2] === 84 && bytes[offset + 3] === 80;
}

/**
 * Walks a validated name-value stream (Exchange.paramsBlock.bytes) once. Only the pairs used become
 * strings, as slices of one Latin-1 decode of the block (params are bytes; Latin-1 keeps every one,
 * as Node's HTTP parser does for header values). A later duplicate replaces an earlier one.
 *
 * content-type and content-length come from CGI's CONTENT_TYPE and CONTENT_LENGTH when they are not
 * empty; the HTTP_CONTENT_* copies some web servers add give way to them. Empty ones (nginx sends
 * CONTENT_TYPE="" for every GET) make no header. Where such a copy follows, the header takes the
 * copy's place: nginx sends CONTENT_TYPE among the first params and HTTP_CONTENT_TYPE where the
 * client sent the header, which is where Node's http has it in `req.headers` too.
 */
export function readCgiRequest(bytes: Buffer): CgiRequest {
  const text = bytes.toString('latin1');
  const request: CgiRequest = {
    method: 'GET',
    REQUEST_URI: undefined,
    SERVER_PROTOCOL: undefined,
    REMOTE_ADDR: undefined,
    REMOTE_PORT: undefined,
    SERVER_ADDR: undefined,
    SERVER_PORT: undefined,
    HTTPS: undefined,
    REQUEST_SCHEME: undefined,
    headers: {},
  };
  const headers = request.headers;
  let cgiType = false;
  let cgiLength = false;
  /** CONTENT_TYPE's (CONTENT_LENGTH's) value, held until its HTTP_ copy gives it its place. */
  let heldType: string | null = null;
  let heldLength: string | null = null;
  const cursor = new PairCursor(bytes);
  while (cursor.next()) {
    const offset = cursor.nameStart;
    const valueStart = cursor.valueStart;
    const valueEnd = cursor.valueEnd;
    const nameLength = valueStart - offset;
    const valueLength = valueEnd - valueStart;
    if (nameLength > 5 && isHttpPrefix(bytes, offset)) {
      const name = headerName(text.slice(offset, valueStart));
      if (name === 'content-type') {
        if (heldType !== null) {
          headers[name] = heldType;
          heldType = null;
        } else if (!cgiType && valueLength > 0) {
          headers[name] = text.slice(valueStart, valueEnd);
        }
      } else if (name === 'content-length') {
        if (heldLength !== null) {
          headers[name] = heldLength;
          heldLength = null;
        } else if (!cgiLength && valueLength > 0) {
          headers[name] = text.slice(valueStart, valueEnd);
        }
      } else {
        headers[name] = text.slice(valueStart, valueEnd);
      }
    } else {
      // Names are told apart by length first, so the CGI variables not used cost no string.
      switch (nameLength) {
        case 5:
          if (text.startsWith('HTTPS', offset)) request.HTTPS = text.slice(valueStart, valueEnd);
          break;
        case 11:
          if (text.startsWith('REQUEST_URI', offset)) request.REQUEST_URI = text.slice(valueStart, valueEnd);
          else if (text.startsWith('REMOTE_ADDR', offset)) request.REMOTE_ADDR = text.slice(valueStart, valueEnd);
          else if (text.startsWith('REMOTE_PORT', offset)) request.REMOTE_PORT = text.slice(valueStart, valueEnd);
          else if (text.startsWith('SERVER_ADDR', offset)) request.SERVER_ADDR = text.slice(valueStart, valueEnd);
          else if (text.startsWith('SERVER_PORT', offset)) request.SERVER_PORT = text.slice(valueStart, valueEnd);
          break;
        case 12:
          if (valueLength > 0 && text.startsWith('CONTENT_TYPE', offset)) {
            cgiType = true;
            const value = text.slice(valueStart, valueEnd);
            // A copy later on (a value holding the name only makes this wait until the end).
            if (text.includes('HTTP_CONTENT_TYPE', valueEnd)) heldType = value;
            else headers['content-type'] = value;
          }
          break;
        case 14:
          if (text.startsWith('REQUEST_METHOD', offset)) {
            if (valueLength > 0) request.method = text.slice(valueStart, valueEnd);
          } else if (text.startsWith('REQUEST_SCHEME', offset)) {
            request.REQUEST_SCHEME = text.slice(valueStart, valueEnd);
          } else if (valueLength > 0 && text.startsWith('CONTENT_LENGTH', offset)) {
            cgiLength = true;
            const value = text.slice(valueStart, valueEnd);
            if (text.includes('HTTP_CONTENT_LENGTH', valueEnd)) heldLength = value;
            else headers['content-length'] = value;
          }
          break;
        case 15:
          if (text.startsWith('SERVER_PROTOCOL', offset)) request.SERVER_PROTOCOL = text.slice(valueStart, valueEnd);
          break;
        default:
      }
    }
  }
  if (heldType !== null) headers['content-type'] = heldType;
  if (heldLength !== null) headers['content-length'] = heldLength;
  return request;
}
