// Forms: the Form result, the form limits and their defaults, the Content-Type dispatch, and the streaming application/x-www-form-urlencoded parser.

import { Buffer } from 'node:buffer';
import type { Readable } from 'node:stream';
import { NodefpmError } from '../errors.js';
import type { Body } from './body.js';
import { PercentDecodingError, strictDecode } from './query.js';
import type { FileInfo, UploadedFile } from './uploads.js';

/**
 * The bounds req.form() enforces, each an option of the handler (createServer) and of req.form()
 * itself. Going over one is a 413 (a NodefpmError whose code names the limit); the rest of the body
 * is dropped unread so the connection goes on. docs/request.md has the table.
 */
export interface FormLimits {
  /** Bytes of an application/x-www-form-urlencoded body. Default 10 MiB (as Smisk). */
  maxFormBytes: number;
  /** Bytes of a multipart/form-data body, files included. Default 2 GiB. */
  maxMultipartBytes: number;
  /** File parts in one multipart form. Default 100. */
  maxFiles: number;
  /** Fields (non-file values) in one form, either kind. Default 1000 (PHP's max_input_vars). */
  maxFields: number;
  /** Bytes of one field's value, decoded. Default 1 MiB. */
  maxFieldBytes: number;
  /** Bytes of one field's or file's name, decoded. Default 1 KiB. */
  maxFieldNameBytes: number;
  /** Bytes of one file. Default 2 GiB (so maxMultipartBytes is what bounds it unless set lower). */
  maxFileBytes: number;
  /** Bytes of one multipart part's header block. Default 8 KiB; at most 16000, under busboy's own fixed bound of about 16 KiB. */
  maxPartHeaderBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const defaultFormLimits: Readonly<FormLimits> = Object.freeze({
  maxFormBytes: 10 * MiB,
  maxMultipartBytes: 2 * GiB,
  maxFiles: 100,
  maxFields: 1000,
  maxFieldBytes: 1 * MiB,
  maxFieldNameBytes: 1 * KiB,
  maxFileBytes: 2 * GiB,
  maxPartHeaderBytes: 8 * KiB,
});

/**
 * busboy refuses part header blocks beyond 16381 bytes on its own (its 16 KiB counter, measured with
 * busboy 1.6) and calls them malformed; our bound stays under it, so ours is the one that answers.
 */
export const MAX_PART_HEADER_BYTES = 16_000;

/** A file part as stream mode hands it over: what the client said, and the bytes as a stream. */
export interface IncomingFile extends FileInfo {
  /** The file's bytes. Read it to its end (pipe it to storage); the form goes on as it is read. */
  readonly stream: Readable;
}

/**
 * Stream mode: called for each file part, in order, with the part's stream; nothing goes to disk.
 * The form waits for the returned promise. Backpressure is end to end: while the stream is not read,
 * the body is not read, and the web server's connection is paused. A stream left unread when the
 * promise settles is drained and dropped, so the rest of the form can be parsed. A throw or rejection
 * fails the form with that error.
 */
export type FileHandler = (file: IncomingFile) => void | Promise<void>;

/** Per-call options of req.form(): limits that override the handler's, where temp files go, or stream mode. */
export interface FormOptions extends Partial<FormLimits> {
  /** The folder temp files go to. Default: the handler's uploadDir, else os.tmpdir(). It must exist. */
  uploadDir?: string;
  /** Stream mode: see FileHandler. Without it, files go to temp files (UploadedFile). */
  onFile?: FileHandler;
}

/** req.form() options in stream mode. */
export interface StreamFormOptions extends FormOptions {
  onFile: FileHandler;
}

/** req.form() options with files going to temp files. */
export interface TempFileFormOptions extends FormOptions {
  onFile?: undefined;
}

/** The limits and folder req.form() runs with, once merged and checked. */
export interface ResolvedFormOptions extends FormLimits {
  uploadDir: string | undefined;
}

/** Checks limit values (integers >= 1 or Infinity) and merges `overrides` over `base`; NODEFPM_INVALID_OPTION names a bad one. */
export function resolveFormOptions(base: ResolvedFormOptions, overrides: FormOptions | undefined): ResolvedFormOptions {
  if (overrides === undefined) return base;
  const merged: ResolvedFormOptions = { ...base };
  for (const key of Object.keys(defaultFormLimits) as Array<keyof FormLimits>) {
    const value = overrides[key];
    if (value === undefined) continue;
    checkLimit(key, value);
    merged[key] = value;
  }
  if (overrides.uploadDir !== undefined) {
    if (typeof overrides.uploadDir !== 'string' || overrides.uploadDir === '') {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', `option uploadDir must be a folder path, got ${JSON.stringify(overrides.uploadDir)}`);
    }
    merged.uploadDir = overrides.uploadDir;
  }
  if (overrides.onFile !== undefined && typeof overrides.onFile !== 'function') {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', 'option onFile must be a function');
  }
  return merged;
}

export function checkLimit(name: keyof FormLimits | 'maxQueryParams', value: unknown): void {
  if (typeof value !== 'number' || !(Number.isInteger(value) || value === Infinity) || value < 1) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option ${name} must be an integer >= 1 (or Infinity), got ${String(value)}`);
  }
  if (name === 'maxPartHeaderBytes' && value > MAX_PART_HEADER_BYTES) {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option maxPartHeaderBytes must be at most ${MAX_PART_HEADER_BYTES} (busboy's own bound), got ${value}`);
  }
}

/**
 * A parsed form: its fields (every value of a repeated name, in order) and its files, each by name in a
 * null-prototype object, plus FormData-like lookups. `F` is UploadedFile (temp files, the default) or
 * StreamedFile (stream mode).
 */
export class Form<F extends FileInfo = UploadedFile> {
  /** Field values by name. */
  readonly fields: Readonly<Record<string, readonly string[]>>;
  /** Files by field name. */
  readonly files: Readonly<Record<string, readonly F[]>>;
  readonly #entries: Array<[string, string | F]>;

  /** @internal made by req.form(). */
  constructor(entries: Array<[string, string | F]>) {
    const fields = Object.create(null) as Record<string, string[]>;
    const files = Object.create(null) as Record<string, F[]>;
    for (const [name, value] of entries) {
      if (typeof value === 'string') (fields[name] ??= []).push(value);
      else (files[name] ??= []).push(value);
    }
    this.fields = fields;
    this.files = files;
    this.#entries = entries;
  }

  /** The first value of field `name`, or undefined. */
  get(name: string): string | undefined {
    return this.fields[name]?.[0];
  }

  /** Every value of field `name`, in order ([] when absent). */
  getAll(name: string): string[] {
    return [...(this.fields[name] ?? [])];
  }

  /** True when the form has a field or a file named `name`. */
  has(name: string): boolean {
    return this.fields[name] !== undefined || this.files[name] !== undefined;
  }

  /** The first file of field `name`, or undefined. */
  file(name: string): F | undefined {
    return this.files[name]?.[0];
  }

  /** Every file of field `name`, in order ([] when absent). */
  getFiles(name: string): F[] {
    return [...(this.files[name] ?? [])];
  }

  /** Every field and file as [name, value] in the order they came. */
  entries(): IterableIterator<[string, string | F]> {
    return this.#entries[Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<[string, string | F]> {
    return this.entries();
  }

  /** Every field and file name, once each, in order of first appearance. */
  keys(): string[] {
    return [...new Set(this.#entries.map(([name]) => name))];
  }
}

// ---- Content-Type ----

/** A media type split into its lower-case type and its parameters (lower-case names, unquoted values). */
export interface MediaType {
  type: string;
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses a Content-Type value (RFC 9110 section 8.3.1); null when it is not one. */
export function parseMediaType(value: string): MediaType | null {
  const semicolon = value.indexOf(';');
  const type = (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  const slash = type.indexOf('/');
  if (slash <= 0 || !TOKEN.test(type.slice(0, slash)) || !TOKEN.test(type.slice(slash + 1))) return null;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  let rest = semicolon === -1 ? '' : value.slice(semicolon + 1);
  const param = /^[\t ]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[\t ]*=[\t ]*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+\-.^_`|~0-9A-Za-z]+))[\t ]*(?:;|$)/;
  while (rest.trim() !== '') {
    if (/^[\t ;]*$/.test(rest)) break;
    rest = rest.replace(/^[\t ;]+/, '');
    const match = param.exec(rest);
    if (match === null) return null;
    const name = match[1]!.toLowerCase();
    params[name] ??= match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : match[3]!;
    rest = rest.slice(match[0].length);
  }
  return { type, params };
}

/** RFC 2046 section 5.1.1: 1 to 70 characters from a small set, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

export function isValidBoundary(boundary: string): boolean {
  return BOUNDARY.test(boundary);
}

// ---- application/x-www-form-urlencoded, streamed ----

const AMPERSAND = 0x26;
const EQUALS = 0x3d;

function tooLarge(code: 'NODEFPM_FORM_FIELD_TOO_LARGE' | 'NODEFPM_FORM_FIELD_NAME_TOO_LARGE', message: string): NodefpmError {
  return new NodefpmError(code, message);
}

/**
 * Parses a urlencoded body chunk by chunk: "&" separates pairs, the first "=" splits them, "+" is a
 * space, percent-decoding is strict (NODEFPM_FORM_MALFORMED names the bad sequence). Holds at most one
 * pair's raw bytes, bounded by the name and value limits (raw bytes are at most three times the
 * decoded ones, so a raw excess over that fails early; the exact check is on the decoded bytes).
 */
export class UrlencodedParser {
  readonly #limits: FormLimits;
  readonly #entries: Array<[string, string]> = [];
  #name = '';
  #value = '';
  #inValue = false;
  #fieldCount = 0;
  /** Bytes of the body so far, for the offset in error messages. */
  #offset = 0;
  #pairStart = 0;

  constructor(limits: FormLimits) {
    this.#limits = limits;
  }

  /** Feeds a chunk; throws a NodefpmError (413 for a limit, 400 for bad encoding). */
  push(chunk: Buffer): void {
    let position = 0;
    while (position < chunk.length) {
      const ampersand = chunk.indexOf(AMPERSAND, position);
      const end = ampersand === -1 ? chunk.length : ampersand;
      if (!this.#inValue) {
        const equals = chunk.indexOf(EQUALS, position);
        if (equals !== -1 && equals < end) {
          this.#appendName(chunk.toString('latin1', position, equals));
          this.#inValue = true;
          position = equals + 1;
        }
      }
      if (this.#inValue) this.#appendValue(chunk.toString('latin1', position, end));
      else this.#appendName(chunk.toString('latin1', position, end));
      if (ampersand === -1) break;
      this.#completePair(this.#offset + ampersand);
      position = ampersand + 1;
    }
    this.#offset += chunk.length;
  }

  /** The body ended: the last pair is complete. Returns the entries in order. */
  end(): Array<[string, string]> {
    this.#completePair(this.#offset);
    return this.#entries;
  }

  #appendName(text: string): void {
    if (text === '') return;
    this.#name += text;
    if (this.#name.length > 3 * this.#limits.maxFieldNameBytes + 2) this.#nameTooLarge();
  }

  #appendValue(text: string): void {
    if (text === '') return;
    this.#value += text;
    if (this.#value.length > 3 * this.#limits.maxFieldBytes + 2) this.#valueTooLarge();
  }

  #nameTooLarge(): never {
    throw tooLarge('NODEFPM_FORM_FIELD_NAME_TOO_LARGE', `a form field name is longer than ${this.#limits.maxFieldNameBytes} bytes (the maxFieldNameBytes option)`);
  }

  #valueTooLarge(): never {
    const name = this.#inValue ? ` ${JSON.stringify(this.#decode(this.#name, this.#pairStart).slice(0, 100))}` : '';
    throw tooLarge('NODEFPM_FORM_FIELD_TOO_LARGE', `form field${name} is larger than ${this.#limits.maxFieldBytes} bytes (the maxFieldBytes option)`);
  }

  #completePair(nextStart: number): void {
    const rawName = this.#name;
    const rawValue = this.#value;
    const hadValue = this.#inValue;
    const start = this.#pairStart;
    this.#name = '';
    this.#value = '';
    this.#inValue = false;
    this.#pairStart = nextStart + 1;
    if (rawName === '' && !hadValue) return; // an empty pair, as in "a=1&&b=2"
    if (++this.#fieldCount > this.#limits.maxFields) {
      throw new NodefpmError('NODEFPM_FORM_TOO_MANY_FIELDS', `the form has more than ${this.#limits.maxFields} fields (the maxFields option)`);
    }
    const name = this.#decode(rawName, start);
    if (Buffer.byteLength(name) > this.#limits.maxFieldNameBytes) this.#nameTooLarge();
    const value = this.#decode(rawValue, start + rawName.length + 1);
    if (Buffer.byteLength(value) > this.#limits.maxFieldBytes) {
      throw tooLarge('NODEFPM_FORM_FIELD_TOO_LARGE', `form field ${JSON.stringify(name.slice(0, 100))} is larger than ${this.#limits.maxFieldBytes} bytes (the maxFieldBytes option)`);
    }
    this.#entries.push([name, value]);
  }

  #decode(raw: string, offset: number): string {
    try {
      return strictDecode(raw, true);
    } catch (error) {
      if (!(error instanceof PercentDecodingError)) throw error;
      throw new NodefpmError('NODEFPM_FORM_MALFORMED', error.describe('the urlencoded form body', offset), { cause: error });
    }
  }
}

/**
 * Reads a urlencoded body whole through UrlencodedParser, at most maxFormBytes (checked against
 * CONTENT_LENGTH first, then as bytes arrive). On any failure the rest of the body is dropped.
 */
export async function readUrlencoded(body: Body, declaredLength: number | null, limits: FormLimits): Promise<Form<never>> {
  const parser = new UrlencodedParser(limits);
  const overLimit = (): NodefpmError =>
    new NodefpmError('NODEFPM_FORM_TOO_LARGE', `the urlencoded form body is larger than ${limits.maxFormBytes} bytes (the maxFormBytes option)`);
  try {
    if (declaredLength !== null && declaredLength > limits.maxFormBytes) throw overLimit();
    let total = 0;
    for (let chunk = await body.read(); chunk !== null; chunk = await body.read()) {
      total += chunk.length;
      if (total > limits.maxFormBytes) throw overLimit();
      parser.push(chunk);
    }
    return new Form<never>(parser.end());
  } catch (error) {
    body.discard();
    throw error;
  }
}

/** Which kind of form a Content-Type names, or the 400 error for one req.form() cannot read. */
export function formKind(contentType: string | undefined): { kind: 'urlencoded' } | { kind: 'multipart'; boundary: string } {
  const unsupported = (detail: string): NodefpmError =>
    new NodefpmError(
      'NODEFPM_FORM_UNSUPPORTED_TYPE',
      `req.form() reads application/x-www-form-urlencoded and multipart/form-data bodies; this request has ${detail}`,
    );
  if (contentType === undefined) throw unsupported('no Content-Type');
  const media = parseMediaType(contentType);
  if (media === null) {
    throw new NodefpmError('NODEFPM_FORM_MALFORMED', `the Content-Type ${JSON.stringify(contentType.slice(0, 200))} cannot be parsed`);
  }
  if (media.type === 'application/x-www-form-urlencoded') {
    const charset = media.params.charset?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') {
      throw unsupported(`charset ${JSON.stringify(charset)}; only UTF-8 is read`);
    }
    return { kind: 'urlencoded' };
  }
  if (media.type === 'multipart/form-data') {
    const boundary = media.params.boundary;
    if (boundary === undefined || boundary === '') {
      throw new NodefpmError('NODEFPM_FORM_MALFORMED', 'the multipart/form-data Content-Type has no boundary parameter');
    }
    if (!isValidBoundary(boundary)) {
      throw new NodefpmError(
        'NODEFPM_FORM_MALFORMED',
        `the multipart boundary ${JSON.stringify(boundary.slice(0, 100))} is not valid (RFC 2046: 1 to 70 characters from a set of letters, digits and '()+_,-./:=? )`,
      );
    }
    return { kind: 'multipart', boundary };
  }
  throw unsupported(`Content-Type ${JSON.stringify(media.type)}`);
}

export type { FileInfo, StreamedFile, UploadedFile } from './uploads.js';
