// Name-value pairs (section 3.4): 1- or 4-byte lengths, binary-safe bytes, Latin-1 strings on the JS side.

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

function toBytes(value: PairValue, what: string): Uint8Array {
  if (typeof value !== 'string') return value;
  // Latin-1 keeps one byte per character, the inverse of how params are decoded. Characters above
  // U+00FF have no Latin-1 byte: refuse them rather than send something else.
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0xff) {
      throw new NodefpmError(
        'NODEFPM_INVALID_PARAM',
        `${what} has a character outside Latin-1 at index ${i}; percent-encode it or pass the bytes as a Buffer`,
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
  const encoded: Array<[Uint8Array, Uint8Array]> = [];
  let size = 0;
  for (const [name, value] of entriesOf(pairs)) {
    const nameBytes = toBytes(name, `param name ${JSON.stringify(name)}`);
    const valueBytes = toBytes(value, `value of param ${JSON.stringify(name)}`);
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
 * A request's PARAMS stream, kept as bytes and decoded only as far as it is used: get() finds one
 * value by scanning the bytes, toObject() decodes everything once. Most requests need only a few
 * params (method, URI, content length), so most never pay for the whole decode. The bytes must
 * have passed validatePairs().
 */
export class ParamsBlock {
  readonly bytes: Buffer;
  #decoded: Params | null = null;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  /** The value of `name` (the last one, if repeated), or undefined. */
  get(name: string): string | undefined {
    if (this.#decoded !== null) return this.#decoded[name];
    const cursor = new PairCursor(this.bytes);
    let found = -1;
    let foundEnd = -1;
    while (cursor.next()) {
      if (cursor.nameIs(name)) {
        found = cursor.valueStart;
        foundEnd = cursor.valueEnd;
      }
    }
    return found === -1 ? undefined : this.bytes.toString('latin1', found, foundEnd);
  }

  /** Every param, decoded once (a null-prototype object; later duplicates win). */
  toObject(): Params {
    if (this.#decoded === null) this.#decoded = decodePairs(this.bytes);
    return this.#decoded;
  }
}
