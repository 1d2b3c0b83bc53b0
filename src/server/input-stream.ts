// A request's incoming byte stream (FCGI_STDIN or FCGI_DATA): a bounded queue of chunks with backpressure.

/** The side that feeds an InputStream (the connection); told when the stream has room again. */
export interface InputSource {
  inputHasRoom(stream: InputStream): void;
}

type Waiter = { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: unknown) => void };
type Sink = { onChunk: (chunk: Buffer) => void; resolve: () => void; reject: (error: unknown) => void };

/**
 * The connection pushes chunks in; the reader takes them out, by async iteration, by awaiting read(),
 * or synchronously with readSync() plus onReadable (what stream adapters use). When more than
 * `highWaterMark` bytes wait unread, push() returns false and the connection stops reading its socket;
 * when the reader brings the queue under the mark, the stream tells its source.
 *
 * A reader that uses each chunk at once can consume() instead: chunks are then lent to a callback as
 * they arrive, never queued, and may be views of the connection's read buffer (nothing is allocated
 * or copied for them).
 *
 * The stream ends normally, or fails with an error (abort, lost connection, a limit) that every
 * further read throws. A reader that does not want the rest calls discard(): queued and later chunks
 * are dropped, so an unread body never holds the connection back.
 */
export class InputStream implements AsyncIterable<Buffer> {
  readonly #source: InputSource;
  #highWaterMark: number;
  /** Set by keepUnread(): unread bytes beyond which the stream fails instead of asking for backpressure. */
  #unreadLimit = Infinity;
  #unreadError: (() => unknown) | null = null;
  #chunks: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  #received = 0;
  #ended = false;
  #error: unknown = null;
  #discarding = false;
  #full = false;
  #waiter: Waiter | null = null;
  #sink: Sink | null = null;
  #iterating = false;
  /** Called (once per state change) when a chunk, the end or an error becomes readable. */
  onReadable: (() => void) | null = null;

  constructor(source: InputSource, highWaterMark: number) {
    this.#source = source;
    this.#highWaterMark = highWaterMark;
  }

  // ---- the connection's side ----

  /**
   * True when push() would keep the chunk it is given (queued, or handed to a waiting reader), so that
   * it must outlive the socket read it came in; false when it is dropped or only lent to a consumer.
   */
  get keepsChunks(): boolean {
    return !this.#ended && this.#error === null && !this.#discarding && this.#sink === null;
  }

  /** Queues a chunk (kept as given). Returns false when the reader is behind. */
  push(chunk: Buffer): boolean {
    if (this.#ended || this.#error !== null) return true;
    this.#received += chunk.length;
    if (this.#discarding || chunk.length === 0) return true;
    if (this.#sink !== null) {
      this.#lend(this.#sink, chunk);
      return true;
    }
    const waiter = this.#waiter;
    if (waiter !== null && this.#buffered === 0) {
      this.#waiter = null;
      waiter.resolve({ value: chunk, done: false });
      return true;
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#buffered > this.#unreadLimit && this.#unreadError !== null) {
      // The reader was given room up to the limit and has not caught up: fail loudly rather than
      // stall the connection or drop bytes unseen. Failing releases the queue; later bytes are ignored.
      this.fail(this.#unreadError());
      return true;
    }
    this.onReadable?.();
    if (this.#buffered >= this.#highWaterMark) {
      this.#full = true;
      return false;
    }
    return true;
  }

  /** The stream's last byte has arrived. */
  end(): void {
    if (this.#ended || this.#error !== null) return;
    this.#ended = true;
    const sink = this.#sink;
    if (sink !== null) {
      this.#sink = null;
      sink.resolve();
    }
    const waiter = this.#waiter;
    if (waiter !== null && this.#buffered === 0) {
      this.#waiter = null;
      waiter.resolve({ value: undefined, done: true });
    }
    this.onReadable?.();
  }

  /** Fails the stream: queued chunks are dropped and every read from now on throws `error`. */
  fail(error: unknown): void {
    if (this.#error !== null || (this.#ended && this.#buffered === 0)) return;
    this.#error = error;
    this.#release();
    const sink = this.#sink;
    if (sink !== null) {
      this.#sink = null;
      sink.reject(error);
    }
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter.reject(error);
    }
    this.onReadable?.();
  }

  /**
   * Keeps the rest of the stream arriving whether or not the reader comes back before its end: up to
   * `limit` unread bytes are queued with no backpressure; one more and the stream fails with
   * `error()` and drops the rest. For a Filter whose output waits for the end of STDIN (section 6.4):
   * pausing the socket then would keep that end from ever arriving.
   */
  keepUnread(limit: number, error: () => unknown): void {
    if (this.#ended || this.#error !== null || this.#discarding) return;
    this.#highWaterMark = Infinity;
    this.#unreadLimit = limit;
    this.#unreadError = error;
    if (this.#buffered > limit) {
      this.fail(error());
    } else if (this.#full) {
      this.#full = false;
      this.#source.inputHasRoom(this);
    }
  }

  /** True while the queue is over the high-water mark and the reader has not caught up. */
  get full(): boolean {
    return this.#full;
  }

  // ---- the reader's side ----

  /** Bytes that have arrived so far, read or not. */
  get bytesReceived(): number {
    return this.#received;
  }

  /** Bytes queued and not yet read. */
  get bytesBuffered(): number {
    return this.#buffered;
  }

  /** True once the stream ended normally (queued chunks may remain). */
  get ended(): boolean {
    return this.#ended;
  }

  /** The error the stream failed with, or null. */
  get error(): unknown {
    return this.#error;
  }

  /** True when the reader has taken everything: ended and empty, or failed. */
  get finished(): boolean {
    return (this.#ended && this.#buffered === 0) || this.#error !== null;
  }

  /**
   * Takes the next chunk without waiting: a Buffer, `null` at the end, or `undefined` when nothing is
   * there yet (set onReadable to hear when something is). Throws the stream's error if it failed.
   */
  readSync(): Buffer | null | undefined {
    if (this.#error !== null) throw this.#error;
    if (this.#buffered > 0) return this.#shift();
    return this.#ended ? null : undefined;
  }

  /** Waits for the next chunk; resolves `null` at the end, rejects with the stream's error. */
  async read(): Promise<Buffer | null> {
    const result = await this.next();
    return result.done === true ? null : result.value;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#buffered > 0) return Promise.resolve({ value: this.#shift(), done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== null) {
      return Promise.reject(new Error('InputStream: a read is already waiting; read the body from one place at a time'));
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /**
   * Lends every chunk to `onChunk` as it arrives, synchronously: the chunk may be a view of the
   * socket's read buffer and is valid only until onChunk returns (copy what you keep). Chunks already
   * queued come first. Resolves when the stream ends; rejects with the stream's error, or with what
   * onChunk threw (the rest is then discarded). Nothing is queued, so no backpressure is needed.
   */
  consume(onChunk: (chunk: Buffer) => void): Promise<void> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#waiter !== null || this.#sink !== null) {
      return Promise.reject(new Error('InputStream: the body is already being read; read it from one place at a time'));
    }
    return new Promise((resolve, reject) => {
      const sink: Sink = { onChunk, resolve, reject };
      while (this.#buffered > 0) {
        if (!this.#lend(sink, this.#shift())) return;
      }
      if (this.#ended) resolve();
      else this.#sink = sink;
    });
  }

  /** Hands a chunk to a consumer; false when it threw (the stream is then discarded and the consumer rejected). */
  #lend(sink: Sink, chunk: Buffer): boolean {
    try {
      sink.onChunk(chunk);
      return true;
    } catch (error) {
      this.#sink = null;
      this.discard();
      sink.reject(error);
      return false;
    }
  }

  /** Drops what is queued and everything still to come: for a reader that does not want the rest. */
  discard(): void {
    if (this.#discarding) return;
    this.#discarding = true;
    this.#release();
  }

  /** True once discard() was called. */
  get discarded(): boolean {
    return this.#discarding;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#iterating) throw new Error('InputStream: the body is already being iterated');
    this.#iterating = true;
    return {
      next: () => this.next(),
      // Breaking out of `for await` means the rest of the body is not wanted.
      return: () => {
        this.discard();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #shift(): Buffer {
    const chunk = this.#chunks[this.#head]!;
    this.#chunks[this.#head] = undefined as unknown as Buffer;
    this.#head++;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    this.#buffered -= chunk.length;
    if (this.#full && this.#buffered < this.#highWaterMark) {
      this.#full = false;
      this.#source.inputHasRoom(this);
    }
    return chunk;
  }

  #release(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#buffered = 0;
    if (this.#full) {
      this.#full = false;
      this.#source.inputHasRoom(this);
    }
  }
}
