// The query string parsed strictly: percent-decoding that refuses bad escapes and bad UTF-8, repeated keys kept, the pair count bounded.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../errors.js';

/** A query value: a string, or every value in order when the key is repeated. */
export type QueryValue = string | string[];

/** Query parameters by name, in a null-prototype object (a key such as `__proto__` is just a key). */
export type Query = Record<string, QueryValue>;

/** Default for maxQueryParams: as PHP's max_input_vars and the qs module's parameterLimit. */
export const DEFAULT_MAX_QUERY_PARAMS = 1000;

/** The query as a null-prototype object and as the ordered list of pairs (for URLSearchParams). */
export interface ParsedQuery {
  readonly query: Query;
  readonly pairs: ReadonlyArray<readonly [string, string]>;
}

/**
 * Why a string could not be percent-decoded: `sequence` is the offending text as it appeared (bytes
 * above 0x7f written as %XX), `index` where it starts. Callers turn it into their own NodefpmError.
 */
export class PercentDecodingError extends Error {
  readonly sequence: string;
  readonly index: number;
  /** What is wrong with the sequence, e.g. 'is not valid UTF-8 (a truncated sequence)'. */
  readonly problem: string;

  constructor(sequence: string, index: number, problem: string) {
    super(`${JSON.stringify(sequence)} at offset ${index} ${problem}`);
    this.name = 'PercentDecodingError';
    this.sequence = sequence;
    this.index = index;
    this.problem = problem;
  }

  /** The reason for a NodefpmError: where (`what`) and what, with the offset moved by `offset` (a slice's start). */
  describe(what: string, offset = 0): string {
    return `bad percent-encoding in ${what}: ${JSON.stringify(this.sequence)} at offset ${offset + this.index} ${this.problem}`;
  }
}

const PERCENT = 0x25;
const PLUS = 0x2b;

/** Hex digit values, -1 for anything else. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX_VALUE[0x41 + c] = HEX_VALUE[0x61 + c] = 10 + c;

function hexValue(code: number): number {
  return code < 128 ? HEX_VALUE[code]! : -1;
}

/** Shows a piece of Latin-1 input the way it would have been sent: bytes above 0x7f as %XX. */
function visible(text: string): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < 60; i++) {
    const c = text.charCodeAt(i);
    out += c > 0x7e || c < 0x20 ? `%${c.toString(16).toUpperCase().padStart(2, '0')}` : text[i];
  }
  return out;
}

/**
 * Percent-decodes `input` strictly, as UTF-8. The input is a Latin-1 string (each character one byte,
 * as FastCGI params and body slices are read), so raw bytes above 0x7f count as the bytes they are.
 * `plusIsSpace`: "+" means a space, as in application/x-www-form-urlencoded (queries and urlencoded
 * forms); in paths it is a plus.
 *
 * Throws PercentDecodingError for "%" not followed by two hex digits ("%zz", "%2", "%"), and for bytes
 * that are not well-formed UTF-8: a truncated sequence ("%E0%A4"), a stray continuation byte, an
 * overlong form, a surrogate, or a value above U+10FFFF (the rules of the Unicode standard's table 3-7,
 * which decodeURIComponent also applies).
 */
export function strictDecode(input: string, plusIsSpace: boolean): string {
  const length = input.length;
  let plain = true;
  for (let i = 0; i < length; i++) {
    const c = input.charCodeAt(i);
    if (c === PERCENT || c > 0x7f || (plusIsSpace && c === PLUS)) {
      plain = false;
      break;
    }
  }
  if (plain) return input;

  const bytes = Buffer.allocUnsafe(length);
  let count = 0;
  // UTF-8 state: continuation bytes still expected, the range allowed for the next one, where the sequence began.
  let needed = 0;
  let lower = 0x80;
  let upper = 0xbf;
  let sequenceStart = 0;
  for (let i = 0; i < length; ) {
    const start = i;
    let c = input.charCodeAt(i);
    if (c === PERCENT) {
      const high = i + 1 < length ? hexValue(input.charCodeAt(i + 1)) : -1;
      const low = i + 2 < length ? hexValue(input.charCodeAt(i + 2)) : -1;
      if (high < 0 || low < 0) {
        throw new PercentDecodingError(visible(input.slice(i, i + 3)), i, 'is not "%" followed by two hex digits');
      }
      c = high * 16 + low;
      i += 3;
    } else {
      if (c > 0xff) throw new PercentDecodingError(input[i]!, i, 'is not a byte');
      if (plusIsSpace && c === PLUS) c = 0x20;
      i += 1;
    }
    if (needed > 0) {
      if (c < lower || c > upper) {
        throw new PercentDecodingError(visible(input.slice(sequenceStart, start)), sequenceStart, 'is not valid UTF-8 (a truncated sequence)');
      }
      needed--;
      lower = 0x80;
      upper = 0xbf;
    } else if (c >= 0x80) {
      sequenceStart = start;
      if (c >= 0xc2 && c <= 0xdf) needed = 1;
      else if (c === 0xe0) (needed = 2), (lower = 0xa0);
      else if (c === 0xed) (needed = 2), (upper = 0x9f);
      else if (c >= 0xe1 && c <= 0xef) needed = 2;
      else if (c === 0xf0) (needed = 3), (lower = 0x90);
      else if (c === 0xf4) (needed = 3), (upper = 0x8f);
      else if (c >= 0xf1 && c <= 0xf3) needed = 3;
      else {
        const problem = c < 0xc0 ? 'is not valid UTF-8 (a continuation byte without a lead byte)' : 'is not valid UTF-8 (a byte that never occurs in it)';
        throw new PercentDecodingError(visible(input.slice(start, i)), start, problem);
      }
    }
    bytes[count++] = c;
  }
  if (needed > 0) {
    throw new PercentDecodingError(visible(input.slice(sequenceStart)), sequenceStart, 'is not valid UTF-8 (a truncated sequence at the end)');
  }
  return bytes.toString('utf8', 0, count);
}

/** Adds a value under `name`, turning the entry into an array on the second value. */
export function addValue(target: Record<string, QueryValue>, name: string, value: string): void {
  const existing = target[name];
  if (existing === undefined) target[name] = value;
  else if (typeof existing === 'string') target[name] = [existing, value];
  else existing.push(value);
}

/**
 * Parses a query string ("a=1&b=2&a=3", without the "?") as application/x-www-form-urlencoded: "&"
 * separates pairs, the first "=" splits name from value (a pair without one has the value ""), "+" is
 * a space, empty pairs ("&&") are skipped, repeated names keep every value in order.
 *
 * Bad percent-encoding or UTF-8 is NODEFPM_QUERY_MALFORMED (400), naming the sequence. More than
 * `maxParams` pairs is NODEFPM_QUERY_TOO_MANY_PARAMS (400: the query is part of the request target,
 * not its content, so 413 would mislead), raised before anything is decoded.
 */
export function parseQuery(queryString: string, maxParams: number = DEFAULT_MAX_QUERY_PARAMS): ParsedQuery {
  const query: Query = Object.create(null) as Query;
  const pairs: Array<readonly [string, string]> = [];
  const length = queryString.length;
  if (length === 0) return { query, pairs };
  // Count first, so a query of a million "&x" costs one scan and no allocation before it is refused.
  let count = 0;
  for (let start = 0; start <= length; ) {
    let end = queryString.indexOf('&', start);
    if (end === -1) end = length;
    if (end > start && ++count > maxParams) {
      throw new NodefpmError(
        'NODEFPM_QUERY_TOO_MANY_PARAMS',
        `the query string has more than ${maxParams} parameters (the maxQueryParams option)`,
      );
    }
    start = end + 1;
  }
  for (let start = 0; start < length; ) {
    let end = queryString.indexOf('&', start);
    if (end === -1) end = length;
    if (end > start) {
      const equals = queryString.indexOf('=', start);
      const hasValue = equals !== -1 && equals < end;
      const name = decodeQueryPart(queryString, start, hasValue ? equals : end);
      const value = hasValue ? decodeQueryPart(queryString, equals + 1, end) : '';
      addValue(query, name, value);
      pairs.push([name, value]);
    }
    start = end + 1;
  }
  return { query, pairs };
}

function decodeQueryPart(queryString: string, start: number, end: number): string {
  try {
    return strictDecode(queryString.slice(start, end), true);
  } catch (error) {
    if (!(error instanceof PercentDecodingError)) throw error;
    throw new NodefpmError('NODEFPM_QUERY_MALFORMED', error.describe('the query string', start), { cause: error });
  }
}
