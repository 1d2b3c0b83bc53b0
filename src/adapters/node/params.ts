// Reads what a Node request needs from the raw FastCGI PARAMS stream in one pass: the CGI variables it uses and the HTTP headers.

import { Buffer } from 'node:buffer';
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

/** What a param is to the adapter: a request header (HTTP_*), or one of the CGI variables it reads. */
const Field = {
  Header: 0,
  HTTPS: 1,
  REQUEST_URI: 2,
  REMOTE_ADDR: 3,
  REMOTE_PORT: 4,
  SERVER_ADDR: 5,
  SERVER_PORT: 6,
  SERVER_PROTOCOL: 7,
  REQUEST_SCHEME: 8,
  REQUEST_METHOD: 9,
  CONTENT_TYPE: 10,
  CONTENT_LENGTH: 11,
} as const;
type Field = (typeof Field)[keyof typeof Field];

/** A param name the adapter knows: the CGI variable it is, or the header name it stands for (HTTP_ACCEPT_LANGUAGE, accept-language). */
interface KnownName {
  /** The name's bytes, to compare with the params in place. */
  bytes: Uint8Array;
  field: Field;
  header: string;
}

/**
 * The names the adapter knows, found without making a string of the param name: a slot from the
 * name's length, one letter near its start (after HTTP_ for headers) and its last letter, then the
 * bytes compared in place. Slicing each name and hashing it for a Map, or comparing it with
 * String#startsWith against every candidate of its length, cost several times as much; header names
 * repeat from request to request, so each one met is learned. Learned names are bounded: they come
 * from clients.
 */
const SLOT_BITS = 15;
const slots: Array<KnownName[] | undefined> = new Array<KnownName[] | undefined>(1 << SLOT_BITS).fill(undefined);
let learned = 0;
const MAX_LEARNED = 1000;

function slotOf(bytes: Uint8Array, offset: number, length: number): number {
  return ((length & 31) << 10) | ((bytes[offset + (length > 5 ? 5 : 0)]! & 31) << 5) | (bytes[offset + length - 1]! & 31);
}

function addName(param: string, field: Field, header: string): void {
  const bytes = Buffer.from(param, 'latin1');
  const slot = slotOf(bytes, 0, bytes.length);
  const known: KnownName = { bytes, field, header };
  const list = slots[slot];
  if (list === undefined) slots[slot] = [known];
  else list.push(known);
}

for (const [name, field] of Object.entries(Field)) if (field !== Field.Header) addName(name, field, '');

/** True when the bytes at `offset` are `name`'s. A loop over two byte arrays: faster than any call out for names this short. */
function sameBytes(bytes: Uint8Array, offset: number, name: Uint8Array): boolean {
  const length = name.length;
  for (let i = 0; i < length; i++) if (bytes[offset + i] !== name[i]) return false;
  return true;
}

function lookUp(bytes: Uint8Array, offset: number, length: number): KnownName | undefined {
  if (length === 0) return undefined;
  const list = slots[slotOf(bytes, offset, length)];
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) {
    const known = list[i]!;
    if (known.bytes.length === length && sameBytes(bytes, offset, known.bytes)) return known;
  }
  return undefined;
}

function isHttpPrefix(bytes: Buffer, offset: number): boolean {
  // "HTTP_"
  return bytes[offset] === 72 && bytes[offset + 4] === 95 && bytes[offset + 1] === 84 && bytes[offset + 2] === 84 && bytes[offset + 3] === 80;
}

/** The header name of an HTTP_* param met for the first time (HTTP_ACCEPT_LANGUAGE -> accept-language), learned while there is room. */
function learnHeader(text: string, offset: number, length: number): string {
  const param = text.slice(offset, offset + length);
  const header = param.slice(5).toLowerCase().replaceAll('_', '-');
  if (learned < MAX_LEARNED) {
    learned++;
    addName(param, Field.Header, header);
  }
  return header;
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
    const known = lookUp(bytes, offset, nameLength);
    let field: Field;
    let name: string;
    if (known !== undefined) {
      field = known.field;
      name = known.header;
    } else if (nameLength > 5 && isHttpPrefix(bytes, offset)) {
      field = Field.Header;
      name = learnHeader(text, offset, nameLength);
    } else {
      // A CGI variable the adapter does not read: it costs no string.
      continue;
    }
    switch (field) {
      case Field.Header:
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
        break;
      case Field.HTTPS:
        request.HTTPS = text.slice(valueStart, valueEnd);
        break;
      case Field.REQUEST_URI:
        request.REQUEST_URI = text.slice(valueStart, valueEnd);
        break;
      case Field.REMOTE_ADDR:
        request.REMOTE_ADDR = text.slice(valueStart, valueEnd);
        break;
      case Field.REMOTE_PORT:
        request.REMOTE_PORT = text.slice(valueStart, valueEnd);
        break;
      case Field.SERVER_ADDR:
        request.SERVER_ADDR = text.slice(valueStart, valueEnd);
        break;
      case Field.SERVER_PORT:
        request.SERVER_PORT = text.slice(valueStart, valueEnd);
        break;
      case Field.SERVER_PROTOCOL:
        request.SERVER_PROTOCOL = text.slice(valueStart, valueEnd);
        break;
      case Field.REQUEST_SCHEME:
        request.REQUEST_SCHEME = text.slice(valueStart, valueEnd);
        break;
      case Field.REQUEST_METHOD:
        if (valueLength > 0) request.method = text.slice(valueStart, valueEnd);
        break;
      case Field.CONTENT_TYPE:
        if (valueLength > 0) {
          cgiType = true;
          const value = text.slice(valueStart, valueEnd);
          // A copy later on (a value holding the name only makes this wait until the end).
          if (text.includes('HTTP_CONTENT_TYPE', valueEnd)) heldType = value;
          else headers['content-type'] = value;
        }
        break;
      case Field.CONTENT_LENGTH:
        if (valueLength > 0) {
          cgiLength = true;
          const value = text.slice(valueStart, valueEnd);
          if (text.includes('HTTP_CONTENT_LENGTH', valueEnd)) heldLength = value;
          else headers['content-length'] = value;
        }
        break;
      default:
    }
  }
  if (heldType !== null) headers['content-type'] = heldType;
  if (heldLength !== null) headers['content-length'] = heldLength;
  return request;
}
