// Uploaded files on disk: the temp files of one request, written with backpressure and all removed when its response ends, whatever happened.

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, unlinkSync, type ReadStream, type WriteStream } from 'node:fs';
import { copyFile, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** What the client said about a file part. */
export interface FileInfo {
  /** The form field's name. */
  readonly fieldName: string;
  /** The file name the client sent, without any folder part ("" when it sent none). Never use it as a path as is. */
  readonly filename: string;
  /** The part's Content-Type; "text/plain" when the part had none (RFC 7578's default). */
  readonly mimeType: string;
  /** The part's Content-Transfer-Encoding ("7bit" unless said; browsers never send another). */
  readonly encoding: string;
}

/** A file received in stream mode (the onFile option): what was said about it and how many bytes passed. */
export interface StreamedFile extends FileInfo {
  /** Bytes of the file that went through its stream. */
  readonly size: number;
}

/** Every temp file path still on disk in this process, removed synchronously if the process exits first. */
const livePaths = new Set<string>();
let exitHookInstalled = false;

function track(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const live of livePaths) {
        try {
          unlinkSync(live);
        } catch {
          // Gone already.
        }
      }
    });
  }
  livePaths.add(path);
}

/** Removes a file, treating "already gone" as done. */
async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  } finally {
    livePaths.delete(path);
  }
}

/** One temp file being written or written: its path, its write stream while open, and whether it still belongs to the request. */
interface TempFile {
  readonly path: string;
  stream: WriteStream | null;
  /** Resolves once the write stream has closed (its fd released), successfully or not. */
  readonly closed: Promise<void>;
  /** True once moveTo() took it: cleanup leaves it alone. */
  kept: boolean;
}

/**
 * The temp files of one request. Each is registered before it is opened, so that cleanup, which can
 * come at any moment (the response ends, the handler throws, the web server aborts or drops the
 * connection), finds it: cleanup destroys open write streams, waits for their descriptors to close
 * (an open still in flight would otherwise create the file after its unlink), then unlinks every file.
 * After cleanup no new file can be created.
 */
export class UploadStore {
  readonly #files = new Set<TempFile>();
  #closed = false;
  #cleaning: Promise<void> | null = null;

  /** True once cleanup() ran: the response is over. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Creates a temp file in `dir` (exclusive, mode 0600, an unguessable name) and its write stream. The
   * caller pipes into the stream; `file.closed` settles when its descriptor is released.
   */
  create(dir: string): { path: string; stream: WriteStream; closed: Promise<void> } {
    if (this.#closed) throw new Error('UploadStore: the response is over; no temp file may be created');
    const path = join(dir, `nodefpm-upload-${randomBytes(12).toString('hex')}`);
    const stream = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    const file: TempFile = { path, stream, closed, kept: false };
    void closed.then(() => {
      file.stream = null;
    });
    this.#files.add(file);
    track(path);
    return { path, stream, closed };
  }

  /** Removes some files now (a failed form's), keeping the others for cleanup(). */
  async remove(paths: Iterable<string>): Promise<void> {
    const wanted = new Set(paths);
    const files = [...this.#files].filter((file) => wanted.has(file.path));
    await this.#removeAll(files);
  }

  /** moveTo() took the file elsewhere: it is the application's now. */
  release(path: string): void {
    for (const file of this.#files) {
      if (file.path === path) {
        file.kept = true;
        this.#files.delete(file);
      }
    }
    livePaths.delete(path);
  }

  /** Removes every temp file (idempotent; later calls return the same promise). Errors other than "already gone" reject it after all were tried. */
  cleanup(): Promise<void> {
    this.#closed = true;
    this.#cleaning ??= this.#removeAll([...this.#files]);
    return this.#cleaning;
  }

  async #removeAll(files: TempFile[]): Promise<void> {
    const failures: unknown[] = [];
    await Promise.all(
      files.map(async (file) => {
        file.stream?.destroy();
        await file.closed;
        this.#files.delete(file);
        if (file.kept) return;
        try {
          await removeFile(file.path);
        } catch (error) {
          failures.push(error);
        }
      }),
    );
    if (failures.length > 0) throw failures[0];
  }
}

/**
 * A file received into a temp file (the default). The temp file is removed when the response ends:
 * read it, stream it, or move it elsewhere (moveTo) before that.
 */
export class UploadedFile implements FileInfo {
  readonly fieldName: string;
  readonly filename: string;
  readonly mimeType: string;
  readonly encoding: string;
  /** Bytes written to the temp file. */
  readonly size: number;
  /** Where the temp file is (in the uploadDir folder), until the response ends or moveTo() moves it. */
  readonly path: string;
  readonly #store: UploadStore;
  #moved: string | null = null;

  /** @internal made by req.form(). */
  constructor(info: FileInfo, path: string, size: number, store: UploadStore) {
    this.fieldName = info.fieldName;
    this.filename = info.filename;
    this.mimeType = info.mimeType;
    this.encoding = info.encoding;
    this.path = path;
    this.size = size;
    this.#store = store;
  }

  /** A read stream of the file's bytes. */
  stream(): ReadStream {
    return createReadStream(this.#moved ?? this.path);
  }

  /** The whole file in memory: for files known to be small (size says how big it is). */
  bytes(): Promise<Buffer> {
    return readFile(this.#moved ?? this.path);
  }

  /**
   * Moves the file to `destination` (a rename; a copy and unlink across file systems). The file is then
   * the application's: it is no longer removed when the response ends. Rejects when the response has
   * already ended (the temp file is gone).
   */
  async moveTo(destination: string): Promise<void> {
    if (this.#moved !== null) throw new Error(`the upload ${JSON.stringify(this.filename)} was already moved to ${this.#moved}`);
    if (this.#store.closed) throw new Error(`the upload ${JSON.stringify(this.filename)} was removed when the response ended; move it before`);
    try {
      await rename(this.path, destination);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await copyFile(this.path, destination);
      await removeFile(this.path);
    }
    this.#moved = destination;
    this.#store.release(this.path);
  }
}
