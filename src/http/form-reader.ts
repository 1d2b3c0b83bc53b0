// req.form() for one request: picks the parser from Content-Type, reads the body once, and ties the request's temp files to the end of its response.

import { tmpdir } from 'node:os';
import { NodefpmError } from '../errors.js';
import type { Body } from './body.js';
import { Form, formKind, readUrlencoded, resolveFormOptions, type FormOptions, type ResolvedFormOptions } from './form.js';
import { afterEnd, readMultipart } from './multipart.js';
import { UploadStore, type StreamedFile, type UploadedFile } from './uploads.js';

/** What the form state needs from the request, read when req.form() is called. */
export interface FormRequest {
  readonly body: Body;
  readonly contentType: string | undefined;
  readonly contentLength: number | null;
}

/** The part of the Response the form state hooks: 'close' comes once, on end and on abort or a lost connection. */
export interface ClosingResponse {
  once(event: 'close', listener: () => void): unknown;
  readonly writableEnded: boolean;
}

type Mode = 'temp' | 'stream';

/**
 * The form side of one Request, made on the first req.form(). The body is read once: a second call in
 * the same mode returns the same promise; one in the other mode is NODEFPM_BODY_CONSUMED.
 *
 * Temp files live in an UploadStore that is emptied when the response emits 'close' (normal end,
 * handler failure, FCGI_ABORT_REQUEST, dropped connection), including files of a form still being
 * read then (the read stops) and of a form the handler never looked at.
 */
export class FormState {
  readonly #defaults: ResolvedFormOptions;
  readonly #uploads = new UploadStore();
  #result: { mode: Mode; promise: Promise<Form<UploadedFile | StreamedFile>> } | null = null;

  constructor(defaults: ResolvedFormOptions, response: ClosingResponse | null, aborted: boolean) {
    this.#defaults = defaults;
    if (response === null) return;
    if (response.writableEnded || aborted) {
      void this.#uploads.cleanup();
      return;
    }
    response.once('close', () => {
      // Nothing is left to report a removal failure to: the response is over. The exit hook is the last resort.
      this.#uploads.cleanup().catch(() => {});
    });
  }

  /** The UploadStore (for tests and for code that must know whether the response is over). */
  get uploads(): UploadStore {
    return this.#uploads;
  }

  read(request: FormRequest, options: FormOptions | undefined): Promise<Form<UploadedFile | StreamedFile>> {
    const mode: Mode = options?.onFile !== undefined ? 'stream' : 'temp';
    if (this.#result !== null) {
      if (this.#result.mode === mode) return this.#result.promise;
      return Promise.reject(
        new NodefpmError('NODEFPM_BODY_CONSUMED', `req.form() was already called with${mode === 'stream' ? 'out' : ''} onFile: the body is read once`),
      );
    }
    const promise = this.#start(request, options);
    // A handler that drops the promise (it threw meanwhile, say) must not crash the process with an unhandled rejection.
    promise.catch(() => {});
    this.#result = { mode, promise };
    return promise;
  }

  async #start(request: FormRequest, overrides: FormOptions | undefined): Promise<Form<UploadedFile | StreamedFile>> {
    const { body } = request;
    try {
      const options = resolveFormOptions(this.#defaults, overrides);
      if (this.#uploads.closed) throw afterEnd();
      const kind = formKind(request.contentType);
      if (kind.kind === 'urlencoded') return await readUrlencoded(body, request.contentLength, options);
      return await readMultipart(
        { body, contentType: request.contentType!, boundary: kind.boundary, declaredLength: request.contentLength, uploads: this.#uploads },
        options,
        options.uploadDir ?? tmpdir(),
        overrides?.onFile,
      );
    } catch (error) {
      // Whatever the failure, the rest of the body goes unread so the connection carries on.
      body.discard();
      throw error;
    }
  }
}
