// multipart/form-data read as a stream through busboy: fields, files to temp files or to the handler's streams, every limit and malformation mapped to a 413 or a 400.

import { Buffer } from 'node:buffer';
import { PassThrough, type Readable } from 'node:stream';
import busboy from 'busboy';
import { NodefpmError, isNodefpmError } from '../errors.js';
import type { Body } from './body.js';
import { Form, type FileHandler, type ResolvedFormOptions } from './form.js';
import { UploadedFile, type FileInfo, type StreamedFile, type UploadStore } from './uploads.js';

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const HEADER_END = [CR, LF, CR, LF] as const;
const EMPTY = Buffer.alloc(0);

const GuardState = { Body: 0, AfterDelimiter: 1, AfterDash: 2, AfterCR: 3, Header: 4, Done: 5 } as const;
type GuardState = (typeof GuardState)[keyof typeof GuardState];

/**
 * Bounds the header block of every part before busboy sees the bytes. busboy has a fixed bound (about 16 KiB)
 * and reports it as "Malformed part header", the same as a syntax error; this guard makes the bound an
 * option and its excess a 413. It finds delimiters ("\r\n--" + boundary, the way busboy does, with a
 * CRLF assumed before the first) with Buffer.indexOf, so file bytes are scanned natively and not
 * copied; only the few bytes that may hold a delimiter split across chunks are kept.
 */
export class PartHeaderGuard {
  readonly #delimiter: Buffer;
  readonly #limit: number;
  #state: GuardState = GuardState.Body;
  /** The last bytes of the previous chunk in Body state (a delimiter may start there). */
  #tail: Buffer = Buffer.from('\r\n');
  #headerBytes = 0;
  /** How many bytes of CRLFCRLF the header block ends with so far. */
  #matched = 0;

  constructor(boundary: string, limit: number) {
    this.#delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    this.#limit = limit;
  }

  /** Scans a chunk; throws NODEFPM_FORM_PART_HEADER_TOO_LARGE when a part header block goes over the limit. */
  check(chunk: Buffer): void {
    const delimiter = this.#delimiter;
    let position = 0;
    while (position < chunk.length) {
      switch (this.#state) {
        case GuardState.Body: {
          const tail = this.#tail;
          if (tail.length > 0) {
            const seam = Buffer.concat([tail, chunk.subarray(position, position + delimiter.length - 1)]);
            const at = seam.indexOf(delimiter);
            if (at !== -1) {
              position += at + delimiter.length - tail.length;
              this.#tail = EMPTY;
              this.#state = GuardState.AfterDelimiter;
              continue;
            }
          }
          const at = chunk.indexOf(delimiter, position);
          if (at !== -1) {
            position = at + delimiter.length;
            this.#tail = EMPTY;
            this.#state = GuardState.AfterDelimiter;
            continue;
          }
          const keep = delimiter.length - 1;
          const rest = chunk.subarray(position);
          this.#tail = Buffer.from(rest.length >= keep ? rest.subarray(rest.length - keep) : Buffer.concat([tail, rest]).subarray(-keep));
          return;
        }
        case GuardState.AfterDelimiter: {
          // As busboy: "--" closes the form, CRLF starts a header block, anything else was not a delimiter.
          const byte = chunk[position++];
          this.#state = byte === DASH ? GuardState.AfterDash : byte === CR ? GuardState.AfterCR : GuardState.Body;
          continue;
        }
        case GuardState.AfterDash:
          this.#state = chunk[position] === DASH ? GuardState.Done : GuardState.Body;
          if (this.#state === GuardState.Done) return;
          continue;
        case GuardState.AfterCR:
          if (chunk[position] === LF) {
            position++;
            this.#state = GuardState.Header;
            this.#headerBytes = 0;
            this.#matched = 2; // the boundary line's CRLF: a part with no headers ends at the next CRLF
          } else {
            this.#state = GuardState.Body;
          }
          continue;
        case GuardState.Header: {
          for (; position < chunk.length; position++) {
            const byte = chunk[position]!;
            this.#headerBytes++;
            if (this.#headerBytes > this.#limit) {
              throw new NodefpmError(
                'NODEFPM_FORM_PART_HEADER_TOO_LARGE',
                `a multipart part's header is larger than ${this.#limit} bytes (the maxPartHeaderBytes option)`,
              );
            }
            this.#matched = byte === HEADER_END[this.#matched] ? this.#matched + 1 : byte === CR ? 1 : 0;
            if (this.#matched === 4) {
              position++;
              this.#state = GuardState.Body;
              break;
            }
          }
          continue;
        }
        case GuardState.Done:
          return;
      }
    }
  }
}

/** busboy's error messages, as the reasons a client (and the log) can act on. */
function fromBusboy(error: unknown): unknown {
  if (isNodefpmError(error)) return error;
  const message = (error as Error)?.message ?? String(error);
  let reason: string;
  if (message === 'Malformed part header') reason = 'a part header of the multipart form is malformed (a line that is not "Name: value", or a character headers may not hold)';
  else if (message === 'Unexpected end of form' || message === 'Unexpected end of file') {
    reason = "the body ended before the multipart form's closing boundary: it is truncated, or its boundary is not the one Content-Type names";
  } else reason = `the multipart form is malformed: ${message}`;
  return new NodefpmError('NODEFPM_FORM_MALFORMED', reason, { cause: error });
}

export interface MultipartSource {
  readonly body: Body;
  readonly contentType: string;
  readonly boundary: string;
  readonly declaredLength: number | null;
  readonly uploads: UploadStore;
}

/**
 * Reads a multipart/form-data body through busboy. Files go to temp files registered with `uploads`
 * (removed when the response ends), or to `onFile` as streams. Backpressure runs end to end: a body
 * chunk is not read before busboy has taken the previous one, and busboy waits for the file's
 * consumer (the temp file's write stream, or the handler's stream).
 *
 * The first failure settles the form: the rest of the body is dropped unread, busboy is destroyed, the
 * streams handed out fail with the error, and this form's temp files are removed at once.
 */
export function readMultipart(
  source: MultipartSource,
  options: ResolvedFormOptions,
  uploadDir: string,
  onFile: FileHandler | undefined,
): Promise<Form<UploadedFile | StreamedFile>> {
  const { body, uploads } = source;
  return new Promise((resolve, reject) => {
    /** Entries in arrival order; a file's slot is filled when it is complete (null: a "no file chosen" part, left out). */
    const entries: Array<[string, string | UploadedFile | StreamedFile | null]> = [];
    const pending: Array<Promise<void>> = [];
    const tempPaths: string[] = [];
    const handedOut = new Set<Readable>();
    let settled = false;
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolveStop) => {
      stop = resolveStop;
    });
    let parser: busboy.Busboy | null = null;

    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      stop();
      body.discard();
      parser?.destroy();
      for (const stream of handedOut) stream.destroy(error as Error);
      // cleanup() at the end of the response removes whatever this misses (and reports nothing here).
      if (tempPaths.length > 0) uploads.remove(tempPaths).catch(() => {});
      reject(error);
    };

    if (source.declaredLength !== null && source.declaredLength > options.maxMultipartBytes) {
      fail(tooLargeBody(options.maxMultipartBytes));
      return;
    }
    try {
      parser = busboy({
        headers: { 'content-type': source.contentType },
        // busboy reports a value or file that reaches its limit; one more byte means "over" ours.
        limits: {
          fieldSize: options.maxFieldBytes + 1,
          fileSize: options.maxFileBytes + 1,
          fields: options.maxFields,
          files: options.maxFiles,
          fieldNameSize: options.maxFieldNameBytes + 1,
        },
        // Browsers send file names as raw UTF-8 in filename="...".
        defParamCharset: 'utf8',
        preservePath: false,
      });
    } catch (error) {
      fail(fromBusboy(error));
      return;
    }

    const nameTooLong = (name: string): boolean => {
      if (Buffer.byteLength(name) <= options.maxFieldNameBytes) return false;
      fail(
        new NodefpmError(
          'NODEFPM_FORM_FIELD_NAME_TOO_LARGE',
          `a form field name is longer than ${options.maxFieldNameBytes} bytes (the maxFieldNameBytes option)`,
        ),
      );
      return true;
    };

    parser.on('field', (name: string, value: string, info: busboy.FieldInfo) => {
      if (settled || nameTooLong(name)) return;
      if (info.valueTruncated) {
        fail(
          new NodefpmError(
            'NODEFPM_FORM_FIELD_TOO_LARGE',
            `form field ${JSON.stringify(name.slice(0, 100))} is larger than ${options.maxFieldBytes} bytes (the maxFieldBytes option)`,
          ),
        );
        return;
      }
      entries.push([name, value]);
    });

    parser.on('file', (name: string, stream: Readable, info: busboy.FileInfo) => {
      // A stream nobody reads would hold busboy (and the body) back forever.
      stream.on('error', () => {});
      if (settled || nameTooLong(name)) {
        stream.resume();
        return;
      }
      const file: FileInfo = { fieldName: name, filename: info.filename ?? '', mimeType: info.mimeType, encoding: info.encoding };
      stream.once('limit', () =>
        fail(
          new NodefpmError(
            'NODEFPM_FORM_FILE_TOO_LARGE',
            `file ${JSON.stringify(file.filename.slice(0, 100))} (field ${JSON.stringify(name.slice(0, 100))}) is larger than ${options.maxFileBytes} bytes (the maxFileBytes option)`,
          ),
        ),
      );
      const slot = entries.length;
      entries.push([name, null]);
      if (onFile !== undefined) streamToHandler(file, stream, slot);
      else streamToDisk(file, stream, slot);
    });

    const streamToDisk = (file: FileInfo, stream: Readable, slot: number): void => {
      let created: ReturnType<UploadStore['create']>;
      try {
        created = uploads.create(uploadDir);
      } catch (error) {
        stream.resume();
        fail(uploads.closed ? afterEnd() : uploadFailed(uploadDir, error));
        return;
      }
      tempPaths.push(created.path);
      created.stream.on('error', (error) => fail(uploadFailed(uploadDir, error)));
      stream.pipe(created.stream);
      pending.push(
        created.closed.then(() => {
          if (settled) return;
          if (!created.stream.writableFinished) {
            fail(uploadFailed(uploadDir, new Error('the temp file was closed before the upload was written')));
            return;
          }
          const size = created.stream.bytesWritten;
          if (file.filename === '' && size === 0) {
            // A file input left empty: browsers send a part with filename="" and no bytes. Not a file.
            uploads.remove([created.path]).catch(() => {});
            return;
          }
          entries[slot]![1] = new UploadedFile(file, created.path, size, uploads);
        }),
      );
    };

    const streamToHandler = (file: FileInfo, stream: Readable, slot: number): void => {
      let size = 0;
      const counted = new PassThrough();
      // Destroying it with the form's error must not become an uncaught exception if the handler listens to nothing.
      counted.on('error', () => {});
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
      });
      stream.pipe(counted);
      handedOut.add(counted);
      const ended = new Promise<void>((resolveEnd) => {
        counted.once('end', resolveEnd);
        counted.once('close', resolveEnd);
      });
      let result: void | Promise<void>;
      try {
        result = onFile!({ ...file, stream: counted });
      } catch (error) {
        fail(error);
        return;
      }
      pending.push(
        Promise.resolve(result).then(
          async () => {
            if (settled) return;
            // Whatever the handler left unread is drained, so that busboy can go on to the next part.
            if (!counted.readableEnded) counted.resume();
            await ended;
            handedOut.delete(counted);
            entries[slot]![1] = { ...file, size } satisfies StreamedFile;
          },
          (error: unknown) => fail(error),
        ),
      );
    };

    parser.on('filesLimit', () =>
      fail(new NodefpmError('NODEFPM_FORM_TOO_MANY_FILES', `the form has more than ${options.maxFiles} files (the maxFiles option)`)),
    );
    parser.on('fieldsLimit', () =>
      fail(new NodefpmError('NODEFPM_FORM_TOO_MANY_FIELDS', `the form has more than ${options.maxFields} fields (the maxFields option)`)),
    );
    parser.on('error', (error: unknown) => fail(fromBusboy(error)));
    parser.on('finish', () => {
      // busboy has parsed everything and every file stream has ended; wait for the writes and handlers.
      Promise.all(pending).then(
        () => {
          if (settled) return;
          settled = true;
          stop();
          const complete = entries.filter((entry): entry is [string, string | UploadedFile | StreamedFile] => entry[1] !== null);
          resolve(new Form<UploadedFile | StreamedFile>(complete));
        },
        (error: unknown) => fail(error),
      );
    });

    const guard = new PartHeaderGuard(source.boundary, options.maxPartHeaderBytes);
    const feed = async (): Promise<void> => {
      let total = 0;
      const target = parser!;
      for (let chunk = await body.read(); chunk !== null; chunk = await body.read()) {
        if (settled) return;
        total += chunk.length;
        if (total > options.maxMultipartBytes) throw tooLargeBody(options.maxMultipartBytes);
        guard.check(chunk);
        const written = new Promise<void>((resolveWrite, rejectWrite) => {
          target.write(chunk, (error) => (error === null || error === undefined ? resolveWrite() : rejectWrite(error)));
        });
        // A destroyed busboy may never call back: stop waiting when the form has settled.
        await Promise.race([written, stopped]);
        if (settled) return;
      }
      target.end();
    };
    feed().catch((error: unknown) => fail(fromBusboy(error)));
  });
}

function tooLargeBody(limit: number): NodefpmError {
  return new NodefpmError('NODEFPM_FORM_TOO_LARGE', `the multipart form body is larger than ${limit} bytes (the maxMultipartBytes option)`);
}

function uploadFailed(dir: string, cause: unknown): NodefpmError {
  return new NodefpmError('NODEFPM_FORM_UPLOAD_FAILED', `an uploaded file could not be written to ${dir}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
}

export function afterEnd(): NodefpmError {
  return new NodefpmError('NODEFPM_FORM_AFTER_END', 'the response ended before the form was read: its files were not kept');
}
