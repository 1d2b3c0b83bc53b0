// Name-value pairs (section 3.4): 1- or 4-byte lengths, binary-safe bytes, Latin-1 strings on the JS side.

import { Buffer } from 'node:buffer';
import { NodefpmError } from '../errors.js';
import { RecordType } from './constants.js';
import { encodeStream } from './record.js';

/** The largest length a 4-byte length field can carry (31 bits). */
export const MAX_PAIR_LENGTH = 0x7fffffff;

/**
 * Decoded params: a map with no prototype, so names such as `constructor` are plain keys. Values are
 * the bytes the peer sent, read as Latin-1 (as Node's http does for headers), so no byte is lost:
 * `Buffer.from(value, 'latin1')` gives them back.
 */
export type Params = Record<string, string>;

export type PairValue = string | Uint8Array;
export type PairsInput = Iterable<readonly [string, PairValue]> | Readonly<Record<string, PairValue>>;

function lengthFieldSize(length: number): number {
  return length > 127 ? 4 : 1;
}

function writeLength(target: Buffer, offset: number, length: number): number {
  if (length <= 127) {
    target[offset] = length;
    return offset + 1;
  }
  target.writeUInt32BE((length | 0x80000000) >>> 0, offset);
  return offset + 4;
}

/** Names the param in an error: built only when one is thrown (JSON.stringify per pair would cost more than the encoding). */
function describe(name: string, isValue: boolean): string {
  return isValue ? `value of param ${JSON.stringify(name)}` : `param name ${JSON.stringify(name)}`;
}

function toBytes(value: PairValue, name: string, isValue: boolean): Uint8Array {
  if (typeof value !== 'string') return value;
  // Latin-1 keeps one byte per character, the inverse of how params are decoded. Characters above
  // U+00FF have no Latin-1 byte: refuse them rather than send something else.
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0xff) {
      throw new NodefpmError(
        'NODEFPM_INVALID_PARAM',
        `${describe(name, isValue)} has a character outside Latin-1 at index ${i}; percent-encode it or pass the bytes as a Buffer`,
      );
    }
  }
  return Buffer.from(value, 'latin1');
}

function entriesOf(pairs: PairsInput): Iterable<readonly [string, PairValue]> {
  return Symbol.iterator in pairs
    ? (pairs as Iterable<readonly [string, PairValue]>)
    : Object.entries(pairs as Record<string, PairValue>);
}

/** Encodes pairs as the bytes of a name-value stream (no record framing). */
export function encodePairs(pairs: PairsInput): Buffer {
  return (Array.isArray(pairs) ? encodeStringPairs(pairs as ReadonlyArray<readonly [unknown, unknown]>) : null) ?? encodeAnyPairs(pairs);
}

/**
 * The common input, an array of [name, value] strings (what a web server or the HTTP front builds for
 * every request), encoded with no Buffer per string: one byte per character, so the size is known
 * before a byte is written, and each string is copied in with its Latin-1 check on the way. null for
 * any other input or a character outside Latin-1: encodeAnyPairs then encodes it, or words the error.
 */
function encodeStringPairs(pairs: ReadonlyArray<readonly [unknown, unknown]>): Buffer | null {
  let size = 0;
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    const name = pair[0];
    const value = pair[1];
    if (typeof name !== 'string' || typeof value !== 'string') return null;
    // V8 strings stay far below the 31-bit bound of a length field: no length check is needed here.
    size += lengthFieldSize(name.length) + lengthFieldSize(value.length) + name.length + value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    const name = pair[0] as string;
    const value = pair[1] as string;
    offset = writeLength(out, offset, name.length);
    offset = writeLength(out, offset, value.length);
    offset = writeLatin1(out, offset, name);
    if (offset < 0) return null;
    offset = writeLatin1(out, offset, value);
    if (offset < 0) return null;
  }
  return out;
}

/** Copies `text` at `offset`, one byte per character; -1 at a character above U+00FF (it has no Latin-1 byte). */
function writeLatin1(out: Buffer, offset: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) return -1;
    out[offset++] = code;
  }
  return offset;
}

function encodeAnyPairs(pairs: PairsInput): Buffer {
  const encoded: Array<[Uint8Array, Uint8Array]> = [];
  let size = 0;
  for (const [name, value] of entriesOf(pairs)) {
    const nameBytes = toBytes(name, name, false);
    const valueBytes = toBytes(value, name, true);
    if (nameBytes.length > MAX_PAIR_LENGTH || valueBytes.length > MAX_PAIR_LENGTH) {
      throw new NodefpmError('NODEFPM_INVALID_PARAM', `param ${JSON.stringify(name)} is longer than ${MAX_PAIR_LENGTH} bytes`);
    }
    encoded.push([nameBytes, valueBytes]);
    size += lengthFieldSize(nameBytes.length) + lengthFieldSize(valueBytes.length) + nameBytes.length + valueBytes.length;
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const [nameBytes, valueBytes] of encoded) {
    offset = writeLength(out, offset, nameBytes.length);
    offset = writeLength(out, offset, valueBytes.length);
    out.set(nameBytes, offset);
    offset += nameBytes.length;
    out.set(valueBytes, offset);
    offset += valueBytes.length;
  }
  return out;
}

/** Encodes pairs as a complete PARAMS stream for `requestId`: records split at 65535 bytes plus the empty one. */
export function encodeParams(requestId: number, pairs: PairsInput): Buffer {
  return encodeStream(RecordType.Params, requestId, encodePairs(pairs), true);
}

function malformed(detail: string): NodefpmError {
  return new NodefpmError('NODEFPM_PROTOCOL_NAME_VALUE', `malformed name-value pair: ${detail}`);
}

/**
 * Steps through a name-value stream pair by pair without allocating: after next() returns true,
 * nameStart, valueStart and valueEnd locate the pair in the source (the name is nameStart..valueStart).
 * The one place lengths are decoded: every reader of pairs goes through it. next() throws
 * NODEFPM_PROTOCOL_NAME_VALUE when a length runs past the end, before exposing that pair.
 */
export class PairCursor {
  nameStart = 0;
  valueStart = 0;
  valueEnd = 0;
  #source: Uint8Array;
  #offset = 0;

  constructor(source: Uint8Array) {
    this.#source = source;
  }

  /** Moves to the next pair; false at the end of the stream. */
  next(): boolean {
    const source = this.#source;
    const end = source.length;
    let offset = this.#offset;
    if (offset >= end) return false;
    let nameLength = source[offset]!;
    if (nameLength > 127) {
      if (offset + 4 > end) throw malformed(`name length truncated at byte ${offset}`);
      nameLength = ((nameLength & 0x7f) << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!;
      offset += 4;
    } else {
      offset += 1;
    }
    if (offset >= end) throw malformed(`value length missing at byte ${offset}`);
    let valueLength = source[offset]!;
    if (valueLength > 127) {
      if (offset + 4 > end) throw malformed(`value length truncated at byte ${offset}`);
      valueLength = ((valueLength & 0x7f) << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!;
      offset += 4;
    } else {
      offset += 1;
    }
    const valueStart = offset + nameLength;
    const valueEnd = valueStart + valueLength;
    if (valueEnd > end) {
      throw malformed(`pair at byte ${offset} declares ${nameLength}+${valueLength} bytes, only ${end - offset} remain`);
    }
    this.nameStart = offset;
    this.valueStart = valueStart;
    this.valueEnd = valueEnd;
    this.#offset = valueEnd;
    return true;
  }

  /** True when the current pair's name is the bytes `name`. */
  nameIsBytes(name: Uint8Array): boolean {
    const start = this.nameStart;
    if (this.valueStart - start !== name.length) return false;
    const source = this.#source;
    for (let i = 0; i < name.length; i++) if (source[start + i] !== name[i]) return false;
    return true;
  }

  /** True when the current pair's name is `name` (compared byte by byte, as Latin-1). */
  nameIs(name: string): boolean {
    const start = this.nameStart;
    if (this.valueStart - start !== name.length) return false;
    const source = this.#source;
    for (let i = 0; i < name.length; i++) if (source[start + i] !== name.charCodeAt(i)) return false;
    return true;
  }
}

/** Calls `onPair` for every pair in `source` (the whole concatenated stream); throws on a malformed stream. */
export function forEachPair(source: Buffer, onPair: (name: string, value: string) => void): void {
  // One Latin-1 string for the whole stream: its character offsets are the byte offsets, and
  // slicing it is far cheaper than a native decode per name and per value.
  const text = source.toString('latin1');
  const cursor = new PairCursor(source);
  while (cursor.next()) onPair(text.slice(cursor.nameStart, cursor.valueStart), text.slice(cursor.valueStart, cursor.valueEnd));
}

/** Decodes a whole name-value stream into Params (a later duplicate name replaces an earlier one). */
export function decodePairs(source: Buffer): Params {
  const params: Params = Object.create(null) as Params;
  forEachPair(source, (name, value) => {
    params[name] = value;
  });
  return params;
}

/** Decodes into an ordered list, keeping duplicates, for tools that must see exactly what was sent. */
export function decodePairList(source: Buffer): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  forEachPair(source, (name, value) => list.push([name, value]));
  return list;
}

/** Checks that `source` is a well-formed name-value stream without decoding it; returns the pair count. */
export function validatePairs(source: Uint8Array): number {
  const cursor = new PairCursor(source);
  let count = 0;
  while (cursor.next()) count++;
  return count;
}

/**
 * Param names a ParamsBlock finds in the pass that validates it, so that get() answers them without
 * a walk of its own: the names a server reads for every request (its body length, the method). Made
 * once and shared by every block.
 */
export class ParamNames {
  readonly names: readonly string[];
  /** By name length: the names of that length, as bytes, with their position in `names`. */
  readonly byLength: ReadonlyArray<ReadonlyArray<{ index: number; bytes: Uint8Array }> | undefined>;

  constructor(names: readonly string[]) {
    this.names = names;
    const byLength: Array<Array<{ index: number; bytes: Uint8Array }> | undefined> = [];
    names.forEach((name, index) => (byLength[name.length] ??= []).push({ index, bytes: Buffer.from(name, 'latin1') }));
    this.byLength = byLength;
  }
}

const NO_NAMES = new ParamNames([]);

/**
 * A request's PARAMS stream, kept as bytes and decoded only as far as it is used: get() finds one
 * value without decoding the others, toObject() decodes everything once. Most requests need only a
 * few params (method, URI, content length), so most never pay for the whole decode.
 *
 * The constructor validates the stream (a malformed one throws NODEFPM_PROTOCOL_NAME_VALUE) and, in
 * the same pass, notes where the values of `found` names lie: get() answers those at once and scans
 * the bytes for any other name.
 */
export class ParamsBlock {
  readonly bytes: Buffer;
  readonly #found: ParamNames;
  /** For found name i: its value's start at 2i and end at 2i+1 (the last pair of that name), or -1 when absent. */
  readonly #foundAt: number[];
  #decoded: Params | null = null;

  constructor(bytes: Buffer, found: ParamNames = NO_NAMES) {
    this.bytes = bytes;
    this.#found = found;
    const foundAt: number[] = [];
    for (let i = 0; i < found.names.length; i++) foundAt.push(-1, -1);
    this.#foundAt = foundAt;
    const byLength = found.byLength;
    const cursor = new PairCursor(bytes);
    while (cursor.next()) {
      const candidates = byLength[cursor.valueStart - cursor.nameStart];
      if (candidates === undefined) continue;
      for (const candidate of candidates) {
        if (!cursor.nameIsBytes(candidate.bytes)) continue;
        foundAt[2 * candidate.index] = cursor.valueStart;
        foundAt[2 * candidate.index + 1] = cursor.valueEnd;
        break;
      }
    }
  }

  /** The value of `name` (the last one, if repeated), or undefined. */
  get(name: string): string | undefined {
    if (this.#decoded !== null) return this.#decoded[name];
    const found = this.#found.names.indexOf(name);
    if (found !== -1) {
      const start = this.#foundAt[2 * found]!;
      return start === -1 ? undefined : this.bytes.toString('latin1', start, this.#foundAt[2 * found + 1]);
    }
    const cursor = new PairCursor(this.bytes);
    let valueStart = -1;
    let valueEnd = -1;
    while (cursor.next()) {
      if (cursor.nameIs(name)) {
        valueStart = cursor.valueStart;
        valueEnd = cursor.valueEnd;
      }
    }
    return valueStart === -1 ? undefined : this.bytes.toString('latin1', valueStart, valueEnd);
  }

  /** Every param, decoded once (a null-prototype object; later duplicates win). */
  toObject(): Params {
    if (this.#decoded === null) this.#decoded = decodePairs(this.bytes);
    return this.#decoded;
  }
}
