// Log destinations: an append-only file that can be reopened (SIGUSR1, after logrotate moved it), or stderr.

import { Buffer } from 'node:buffer';
import { closeSync, openSync, writeSync } from 'node:fs';

/** Where log text goes. */
export interface LogSink {
  /** Appends text (whole lines). */
  write(text: string): void;
  /** Starts a new file at the same path (the old one was renamed by a log rotator). */
  reopen(): void;
  /** Writes what is buffered now. */
  flush(): void;
  close(): void;
}

/**
 * A file opened in append mode (O_APPEND: lines from several processes never overwrite each other).
 * Text written in one turn of the event loop is gathered and written with one write(2) at the end of
 * that turn, so a busy worker's access log costs one system call per turn, not one per request;
 * flush() writes at once (before exit).
 */
export class LogFile implements LogSink {
  readonly path: string;
  #fd: number;
  #pending: string[] = [];
  #scheduled = false;

  /** Opens (creating) `path` for appending; throws the system error when it cannot. */
  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'a', 0o640);
  }

  write(text: string): void {
    if (this.#fd < 0) return;
    this.#pending.push(text);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush()).unref();
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#fd < 0) return;
    const data = Buffer.from(this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join(''));
    this.#pending = [];
    let offset = 0;
    try {
      while (offset < data.length) offset += writeSync(this.#fd, data, offset);
    } catch (error) {
      // A full disk must not take the server down with it; say so once on stderr.
      process.stderr.write(`nodefpm[${process.pid}]: cannot write to ${this.path}: ${(error as Error).message}\n`);
    }
  }

  reopen(): void {
    this.flush();
    const previous = this.#fd;
    try {
      this.#fd = openSync(this.path, 'a', 0o640);
    } catch (error) {
      // Keep writing to the old file rather than losing lines.
      process.stderr.write(`nodefpm[${process.pid}]: cannot reopen ${this.path}: ${(error as Error).message}\n`);
      return;
    }
    if (previous >= 0) closeSync(previous);
  }

  close(): void {
    this.flush();
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

/** stderr as a sink: nothing to reopen. */
export const stderrSink: LogSink = {
  write: (text) => {
    process.stderr.write(text);
  },
  reopen() {},
  flush() {},
  close() {},
};
