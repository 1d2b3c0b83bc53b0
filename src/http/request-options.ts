// The Request's own options (URL mount point, query bound, form limits, upload folder): defaults, checks, and the resolved form every request shares.

import { NodefpmError } from '../errors.js';
import { checkLimit, defaultFormLimits, resolveFormOptions, type FormLimits, type ResolvedFormOptions } from './form.js';
import { DEFAULT_MAX_QUERY_PARAMS } from './query.js';
import { normalizeBasePath } from './url.js';

/**
 * Options of createServer (and of the native handler) that shape req.fullUrl, req.basePath, req.query
 * and req.form(). Every limit has a safe default; docs/request.md has the table.
 */
export interface RequestOptions extends Partial<FormLimits> {
  /**
   * The path the web server mounted the app on ("/app"), for web servers that do not say it (nginx with
   * Debian's fastcgi_params, Apache's ProxyPass without proxy-fcgi-pathinfo, h2o). Unset: derived from
   * SCRIPT_NAME and PATH_INFO. A decoded path; "" or "/" is the root.
   */
  basePath?: string;
  /** Query parameters (pairs) req.query reads; beyond it, NODEFPM_QUERY_TOO_MANY_PARAMS (400). Default 1000. */
  maxQueryParams?: number;
  /** The folder req.form() writes uploaded files to (it must exist). Default os.tmpdir() at the time of the upload. */
  uploadDir?: string;
}

/** RequestOptions checked and with defaults applied, made once per server. */
export interface ResolvedRequestOptions {
  readonly basePath: string | null;
  readonly maxQueryParams: number;
  readonly form: ResolvedFormOptions;
}

export const defaultRequestOptions: ResolvedRequestOptions = Object.freeze({
  basePath: null,
  maxQueryParams: DEFAULT_MAX_QUERY_PARAMS,
  form: Object.freeze({ ...defaultFormLimits, uploadDir: undefined }),
});

/** Applies defaults and checks every option; NODEFPM_INVALID_OPTION names a bad one. */
export function resolveRequestOptions(options: RequestOptions = {}): ResolvedRequestOptions {
  const form = resolveFormOptions(defaultRequestOptions.form, {
    ...pickFormOptions(options),
    ...(options.uploadDir === undefined ? {} : { uploadDir: options.uploadDir }),
  });
  if (options.maxQueryParams !== undefined) checkLimit('maxQueryParams', options.maxQueryParams);
  if (options.basePath !== undefined && typeof options.basePath !== 'string') {
    throw new NodefpmError('NODEFPM_INVALID_OPTION', `option basePath must be a string, got ${String(options.basePath)}`);
  }
  return {
    basePath: options.basePath === undefined ? null : normalizeBasePath(options.basePath),
    maxQueryParams: options.maxQueryParams ?? DEFAULT_MAX_QUERY_PARAMS,
    form: Object.freeze(form),
  };
}

/** Only the form limits of a bag of options (createServer's options hold server limits too). */
function pickFormOptions(options: RequestOptions): Partial<FormLimits> {
  const picked: Partial<FormLimits> = {};
  for (const key of Object.keys(defaultFormLimits) as Array<keyof FormLimits>) {
    if (options[key] !== undefined) picked[key] = options[key];
  }
  return picked;
}
