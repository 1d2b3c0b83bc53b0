// The one catalogue of nodefpm errors: every error the package raises has a stable code listed here.

/**
 * Each entry: the HTTP status a request gets when this error ends it (undefined when the error never
 * maps to a response), and what the code means. docs/errors.md lists the same codes; a test keeps the two
 * in step.
 */
export const errorCatalogue = {
  // Protocol: bytes on the wire that break the FastCGI specification.
  NODEFPM_PROTOCOL_VERSION: { status: undefined, summary: 'A record header carried a version other than FCGI_VERSION_1.' },
  NODEFPM_PROTOCOL_NAME_VALUE: { status: undefined, summary: 'A name-value pair ran past the end of its stream or was otherwise malformed.' },
  NODEFPM_PROTOCOL_RECORD: { status: undefined, summary: 'A record had a body of the wrong size for its type.' },
  NODEFPM_PROTOCOL_UNEXPECTED: { status: undefined, summary: 'A record arrived that the peer must not send in this state or direction.' },
  NODEFPM_PROTOCOL_DUPLICATE_ID: { status: undefined, summary: 'BEGIN_REQUEST arrived for a request id that is already active.' },
  NODEFPM_INVALID_PARAM: { status: undefined, summary: 'A name or value given to the encoder cannot be sent (not Latin-1, or too long).' },

  // Limits: a request or connection went over a configured bound.
  NODEFPM_PARAMS_TOO_LARGE: { status: 431, summary: 'The PARAMS stream of a request exceeded maxParamsBytes.' },
  NODEFPM_BODY_TOO_LARGE: { status: 413, summary: 'The request body exceeded maxBodyBytes (or the limit given to a body reader).' },
  NODEFPM_LINE_TOO_LONG: { status: 413, summary: 'A line read from the body exceeded the line limit.' },
  NODEFPM_PARAMS_TIMEOUT: { status: 408, summary: 'The PARAMS stream was not complete within paramsTimeout.' },
  NODEFPM_IDLE_TIMEOUT: { status: undefined, summary: 'A connection with no active request was idle for longer than idleTimeout.' },
  NODEFPM_OVERLOADED: { status: 503, summary: 'A connection or request was refused with FCGI_OVERLOADED (maxConnections or maxRequests reached).' },
  NODEFPM_CANT_MPX_CONN: { status: undefined, summary: 'A second concurrent request on a connection was refused because multiplexing is off.' },
  NODEFPM_UNKNOWN_ROLE: { status: undefined, summary: 'BEGIN_REQUEST asked for a role this server has no handler for.' },
  NODEFPM_CLIENT_NOT_ALLOWED: { status: undefined, summary: 'A connection came from an address outside FCGI_WEB_SERVER_ADDRS / allowedClients.' },
  NODEFPM_BODY_TIMEOUT: { status: 408, summary: 'The request body (FCGI_STDIN or FCGI_DATA) stalled: no record for bodyTimeout while it was awaited.' },

  // Request lifetime.
  NODEFPM_REQUEST_ABORTED: { status: undefined, summary: 'The web server sent FCGI_ABORT_REQUEST for the request.' },
  NODEFPM_CONNECTION_LOST: { status: undefined, summary: 'The connection carrying the request closed before the request ended.' },
  NODEFPM_SERVER_CLOSING: { status: 503, summary: 'The server shut down before the request finished.' },
  NODEFPM_HANDLER_FAILED: { status: 500, summary: 'The request handler threw or its promise rejected.' },
  NODEFPM_BODY_INCOMPLETE: { status: 400, summary: 'FCGI_STDIN carried fewer or more bytes than CONTENT_LENGTH: the upload did not arrive whole.' },
  NODEFPM_BODY_MALFORMED: { status: 400, summary: 'The request body could not be parsed as the format asked for (JSON, text).' },
  NODEFPM_BODY_CONSUMED: { status: undefined, summary: 'The request body was read a second time, or two readers competed for it.' },
  NODEFPM_DATA_INCOMPLETE: { status: 500, summary: 'FCGI_DATA (the Filter role\'s file) carried fewer or more bytes than FCGI_DATA_LENGTH: the file changed or did not arrive whole.' },
  NODEFPM_FILTER_INPUT_DROPPED: { status: 413, summary: 'A Filter handler started its output before reading FCGI_STDIN to its end, and more than bodyLimit bytes were left unread while the output waited: the rest was dropped.' },

  // Response misuse by application code.
  NODEFPM_HEADERS_SENT: { status: undefined, summary: 'A header or the status was changed after the headers were sent.' },
  NODEFPM_WRITE_AFTER_END: { status: undefined, summary: 'The response was written after end().' },
  NODEFPM_INVALID_HEADER: { status: undefined, summary: 'A response header name or value contains characters HTTP does not allow.' },
  NODEFPM_INVALID_STATUS: { status: undefined, summary: 'A response status code outside 100-999.' },

  // Configuration and start-up.
  NODEFPM_INVALID_OPTION: { status: undefined, summary: 'An option has a value of the wrong type or out of range.' },
  NODEFPM_INVALID_ADDRESS: { status: undefined, summary: 'A listen or connect address is not one of the accepted forms.' },
  NODEFPM_ADDRESS_IN_USE: { status: undefined, summary: 'A Unix socket path is in use by a live listener.' },
  NODEFPM_NO_LISTENER: { status: undefined, summary: 'No address was given and fd 0 is not a listening socket.' },
  NODEFPM_APP_LOAD: { status: undefined, summary: 'The application module could not be loaded or has no usable default export.' },
  NODEFPM_USAGE: { status: undefined, summary: 'The nodefpm command line cannot be acted on: an unknown option, a missing value, or no app module.' },

  // Client side (nodefpm talking to a FastCGI application).
  NODEFPM_CLIENT_CONNECT: { status: 502, summary: 'The client could not connect to the FastCGI application.' },
  NODEFPM_CLIENT_CLOSED: { status: 502, summary: 'The FastCGI application closed the connection before END_REQUEST.' },
  NODEFPM_CLIENT_REJECTED: { status: 503, summary: 'The FastCGI application refused the request (CANT_MPX_CONN, OVERLOADED or UNKNOWN_ROLE).' },
  NODEFPM_CLIENT_TIMEOUT: { status: 504, summary: 'The FastCGI application did not answer within the client timeout.' },
  NODEFPM_CLIENT_BAD_RESPONSE: { status: 502, summary: 'The FastCGI application sent CGI headers that cannot be parsed.' },
  NODEFPM_CLIENT_ABORTED: { status: undefined, summary: 'The caller aborted the client request.' },
  NODEFPM_CLIENT_BODY: { status: undefined, summary: 'The body or data stream given to a client request failed while being sent (its error is the cause).' },
  NODEFPM_CLIENT_CLOSING: { status: undefined, summary: 'A request was made on an FcgiClient after close() or destroy() was called.' },

  // The fetch adapter (nodefpm/fetch).
  NODEFPM_FETCH_BAD_URL: { status: 400, summary: 'The fetch adapter could not make a valid URL for the Request from the request params (host and REQUEST_URI).' },
  NODEFPM_FETCH_NOT_A_RESPONSE: { status: 500, summary: 'A fetch handler returned, or resolved to, something other than a Response.' },
  NODEFPM_FETCH_BODY_USED: { status: 500, summary: 'A fetch handler returned a Response whose body was already used or locked, so it cannot be sent.' },

  // The validator (nodefpm/validate): the application or the web server broke the CGI/FastCGI interface.
  // Each maps to 500 because, in its default mode, the validator answers the request 500 when it still can.
  NODEFPM_VALIDATE_HEAD_TWICE: { status: 500, summary: 'The validator saw the CGI head of one response written more than once.' },
  NODEFPM_VALIDATE_NO_HEAD: { status: 500, summary: 'The validator saw body bytes, or the end of a response, before any CGI head was written.' },
  NODEFPM_VALIDATE_WRITE_AFTER_END: { status: 500, summary: 'The validator saw output written to a response after it was ended.' },
  NODEFPM_VALIDATE_NOT_ENDED: { status: 500, summary: 'The validator saw a request finish (aborted, dropped or timed out) without the application ending its response.' },
  NODEFPM_VALIDATE_HEAD_MALFORMED: { status: 500, summary: 'The validator found a CGI head that does not parse: a line without a colon, no blank line at its end, or no header at all.' },
  NODEFPM_VALIDATE_STATUS: { status: 500, summary: 'The validator found a Status header that is not a final HTTP status (200-599) with a legal reason phrase.' },
  NODEFPM_VALIDATE_HEADER_NAME: { status: 500, summary: 'The validator found a response header name that is not an HTTP token.' },
  NODEFPM_VALIDATE_HEADER_VALUE: { status: 500, summary: 'The validator found a response header value with a control character or a character above U+00FF.' },
  NODEFPM_VALIDATE_HOP_BY_HOP: { status: 500, summary: 'The validator found Transfer-Encoding or another hop-by-hop header in a CGI response, where the web server owns them.' },
  NODEFPM_VALIDATE_CONTENT_LENGTH: { status: 500, summary: 'The validator found a response Content-Length that is malformed, repeated, not allowed, or not the number of body bytes sent.' },
  NODEFPM_VALIDATE_BODY_NOT_ALLOWED: { status: 500, summary: 'The validator saw body bytes in a response to HEAD, or with status 204 or 304, which have no body.' },
  NODEFPM_VALIDATE_READ_AFTER_END: { status: 500, summary: 'The validator saw the request body read after the response was ended.' },
  NODEFPM_VALIDATE_NOT_A_RESPONSE: { status: 500, summary: 'The validator saw a fetch handler return, or resolve to, something other than a Response.' },
  NODEFPM_VALIDATE_BODY_USED: { status: 500, summary: 'The validator saw a fetch handler return a Response whose body was already used or locked, or one it had returned before.' },
  NODEFPM_VALIDATE_PARAM_MISSING: { status: 500, summary: 'The validator found a CGI/1.1 param that applications rely on missing from the request.' },
  NODEFPM_VALIDATE_PARAM_INVALID: { status: 500, summary: 'The validator found a CGI/1.1 param whose value its definition does not allow.' },
  NODEFPM_VALIDATE_PARAM_CONFLICT: { status: 500, summary: 'The validator found HTTP_CONTENT_TYPE or HTTP_CONTENT_LENGTH disagreeing with CONTENT_TYPE or CONTENT_LENGTH.' },
  NODEFPM_VALIDATE_BODY_LENGTH: { status: 500, summary: 'The validator found a request body (FCGI_STDIN) whose length differs from CONTENT_LENGTH.' },

  // Cookies, signing, files and error pages (the native request and response).
  NODEFPM_COOKIE_INVALID: { status: undefined, summary: 'A cookie to set has a name, value or attribute browsers would reject (see serializeCookie).' },
  NODEFPM_COOKIE_HEADER_TOO_LARGE: { status: 431, summary: 'The Cookie request header exceeded maxCookieBytes.' },
  NODEFPM_COOKIE_SIGNATURE: { status: 400, summary: 'A signed cookie failed verification: tampered, signed with a key not in keys, or not signed at all.' },
  NODEFPM_FILE_NOT_FOUND: { status: 404, summary: 'sendFile found no regular file at the path (missing, a directory without index, or not readable).' },
  NODEFPM_PATH_REFUSED: { status: 404, summary: 'sendFile refused a path: it climbs out of the root, holds a NUL or bad encoding, names a dotfile, or is a symlink leading outside the root (answered as 404 so existence is not revealed).' },

  // Sessions (src/http/session).
  NODEFPM_SESSION_FORGED: { status: 400, summary: 'A route that requires a session got a session cookie whose signature does not verify (tampered, forged, or signed with a key no longer in keys).' },
  NODEFPM_SESSION_REQUIRED: { status: 401, summary: 'A route that requires a session got a request with no session cookie, or one whose id is unknown or expired.' },
  NODEFPM_SESSION_TOO_LARGE: { status: 500, summary: 'Session data serialised to more bytes of JSON than the maxSize option allows, so it was not saved.' },
  NODEFPM_SESSION_STORE: { status: 500, summary: 'A session store failed: an I/O or Redis error (the cause), an id that is not a session id, or data that is not a JSON object.' },
  NODEFPM_SESSION_NOT_INSTALLED: { status: 500, summary: 'sessions.get(req) was called for a request the session middleware did not wrap.' },

  // The request's URL, query and forms (req.fullUrl, req.basePath, req.query, req.form(); docs/request.md).
  NODEFPM_BAD_URL: { status: 400, summary: 'The request URL could not be built or decoded: a Host that is not a host name, a target that is not a path, or a path that is not valid percent-encoded UTF-8.' },
  NODEFPM_QUERY_MALFORMED: { status: 400, summary: 'The query string has bad percent-encoding (% not followed by two hex digits) or bytes that are not valid UTF-8; the reason names the sequence.' },
  NODEFPM_QUERY_TOO_MANY_PARAMS: { status: 400, summary: 'The query string has more parameters than maxQueryParams.' },
  NODEFPM_FORM_UNSUPPORTED_TYPE: { status: 400, summary: 'req.form() was called on a request whose Content-Type is neither application/x-www-form-urlencoded nor multipart/form-data (or has an unsupported charset).' },
  NODEFPM_FORM_MALFORMED: { status: 400, summary: 'The form body is malformed: bad percent-encoding, a missing or invalid multipart boundary, a malformed part header, or a body that ends before the closing boundary.' },
  NODEFPM_FORM_TOO_LARGE: { status: 413, summary: 'The form body exceeded maxFormBytes (urlencoded) or maxMultipartBytes (multipart).' },
  NODEFPM_FORM_TOO_MANY_FIELDS: { status: 413, summary: 'The form has more fields than maxFields.' },
  NODEFPM_FORM_TOO_MANY_FILES: { status: 413, summary: 'The multipart form has more files than maxFiles.' },
  NODEFPM_FORM_FIELD_TOO_LARGE: { status: 413, summary: 'A form field value exceeded maxFieldBytes.' },
  NODEFPM_FORM_FIELD_NAME_TOO_LARGE: { status: 413, summary: 'A form field or file name exceeded maxFieldNameBytes.' },
  NODEFPM_FORM_FILE_TOO_LARGE: { status: 413, summary: 'An uploaded file exceeded maxFileBytes.' },
  NODEFPM_FORM_PART_HEADER_TOO_LARGE: { status: 413, summary: 'The header block of a multipart part exceeded maxPartHeaderBytes.' },
  NODEFPM_FORM_UPLOAD_FAILED: { status: 500, summary: 'An uploaded file could not be written to its temp file (uploadDir missing or not writable, disk full); the cause says why.' },
  NODEFPM_FORM_AFTER_END: { status: undefined, summary: 'req.form() was called, or was still reading, when the response ended: temp files are not kept past the response.' },
  // The built-in HTTP front (src/gateway): HTTP in front, FastCGI behind.
  NODEFPM_GATEWAY_BAD_REQUEST: { status: 400, summary: 'The HTTP front refused a request it cannot turn into CGI params: a path with bad percent-encoding, a NUL byte or ".." above the root, or a missing, repeated or malformed Host.' },
  NODEFPM_GATEWAY_NOT_FOUND: { status: 404, summary: 'In script mode the HTTP front found no script or file under documentRoot for the path (and no front controller), or the path names a dotfile.' },
  NODEFPM_GATEWAY_METHOD: { status: 405, summary: 'The HTTP front serves a static file only to GET and HEAD.' },
  NODEFPM_GATEWAY_BAD_RESPONSE: { status: 502, summary: 'The FastCGI application sent a CGI head the HTTP front cannot relay: a 1xx status, or a header Node\'s http refuses.' },
  NODEFPM_GATEWAY_HEAD_TIMEOUT: { status: 504, summary: 'The FastCGI application sent no complete CGI head within the HTTP front\'s headTimeout.' },
  NODEFPM_GATEWAY_SENDFILE: { status: 404, summary: 'X-Accel-Redirect or X-Sendfile named a file outside the configured mapping, or one that does not exist.' },
  NODEFPM_GATEWAY_SPOOL: { status: 500, summary: 'The HTTP front could not spool a chunked request body to its temp file (the cause says why).' },
  NODEFPM_GATEWAY_CLOSING: { status: 503, summary: 'A request reached the HTTP front after close() began.' },

  // The process manager (src/pool): the master and its workers.
  NODEFPM_WORKER_START: { status: undefined, summary: 'A pool worker could not start: it could not be forked, it exited before accepting, or it did not accept within the start timeout.' },
  NODEFPM_WORKER_CRASHED: { status: undefined, summary: 'A pool worker exited without being asked to (an uncaught exception, a signal): it is replaced, with back-off when crashes repeat.' },
  NODEFPM_REQUEST_TIMEOUT: { status: 504, summary: 'A pool worker\'s event loop stayed blocked longer than --request-timeout: the worker was killed and replaced, its requests answered 504 where none of their response had been sent.' },
  NODEFPM_SLOW_REQUEST: { status: undefined, summary: 'A request ran longer than --slowlog-timeout; it was logged with the worker\'s JavaScript stack.' },
  NODEFPM_EMERGENCY_RESTART: { status: undefined, summary: 'More workers crashed within --emergency-restart-interval than --emergency-restart-threshold allows: the whole pool was restarted.' },
  NODEFPM_MAX_WORKERS_REACHED: { status: undefined, summary: 'The pool needed more capacity but already ran --workers workers (php-fpm\'s "max children reached").' },
  NODEFPM_RELOAD_FAILED: { status: undefined, summary: 'A reload\'s new workers could not start (the new code fails to load): the previous generation goes on serving.' },
} as const satisfies Record<string, { status: number | undefined; summary: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** Every error nodefpm raises on purpose. `code` is stable across releases; `status` is the HTTP status it maps to. */
export class NodefpmError extends Error {
  readonly code: ErrorCode;
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NodefpmError';
    this.code = code;
    this.status = options?.status ?? errorCatalogue[code].status;
  }
}

/** True when `error` is a NodefpmError, optionally with the given code. */
export function isNodefpmError(error: unknown, code?: ErrorCode): error is NodefpmError {
  return error instanceof NodefpmError && (code === undefined || error.code === code);
}
