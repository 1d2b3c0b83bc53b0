// The validator's rules as pure functions: the params a CGI/1.1 application relies on, and the CGI head an application writes.

import type { ErrorCode } from '../../errors.js';
import { HOP_BY_HOP_HEADERS } from '../../http/response.js';
import { Role } from '../../protocol/index.js';

/** The validator's error codes (all in src/errors.ts). */
export type ValidateCode = Extract<ErrorCode, `NODEFPM_VALIDATE_${string}`>;

/** One broken rule: its code and a message that says what to fix. */
export interface Finding {
  code: ValidateCode;
  message: string;
}

export type ParamLookup = (name: string) => string | undefined;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^[0-9]+$/;
/** RFC 3875 4.1.16: "HTTP/" major "." minor, or "INCLUDED"; HTTP/2 and HTTP/3 are also seen without the minor. */
const SERVER_PROTOCOL = /^(HTTP\/[0-9]+(\.[0-9]+)?|INCLUDED)$/i;
const GATEWAY_INTERFACE = /^CGI\/1\.[0-9]+$/i;

/**
 * The server's side: the params a CGI/1.1 (RFC 3875) application relies on are there and agree with
 * each other. Empty values count as absent only where CGI says NULL is allowed (CONTENT_LENGTH,
 * CONTENT_TYPE, PATH_INFO); QUERY_STRING must be present, even empty. The Authorizer role gets no
 * SCRIPT_NAME, PATH_INFO nor CONTENT_LENGTH (FastCGI 6.3), so those are not required of it.
 */
export function checkParams(param: ParamLookup, role: number = Role.Responder): Finding[] {
  const findings: Finding[] = [];
  const missing = (name: string, why: string): void => {
    findings.push({ code: 'NODEFPM_VALIDATE_PARAM_MISSING', message: `the web server sent no ${name} param: ${why}` });
  };
  const invalid = (name: string, value: string, why: string): void => {
    findings.push({ code: 'NODEFPM_VALIDATE_PARAM_INVALID', message: `the web server sent ${name}=${JSON.stringify(value.slice(0, 200))}: ${why}` });
  };

  const method = param('REQUEST_METHOD');
  if (method === undefined || method === '') missing('REQUEST_METHOD', 'every request needs its HTTP method (nginx: fastcgi_param REQUEST_METHOD $request_method)');
  else if (!TOKEN.test(method)) invalid('REQUEST_METHOD', method, 'a method is an HTTP token (letters, digits and !#$%&\'*+-.^_`|~)');

  const protocol = param('SERVER_PROTOCOL');
  if (protocol === undefined || protocol === '') missing('SERVER_PROTOCOL', 'applications need the HTTP version, e.g. HTTP/1.1 (nginx: fastcgi_param SERVER_PROTOCOL $server_protocol)');
  else if (!SERVER_PROTOCOL.test(protocol)) invalid('SERVER_PROTOCOL', protocol, 'it must look like HTTP/1.1 (RFC 3875 4.1.16)');

  if (param('QUERY_STRING') === undefined) {
    missing('QUERY_STRING', 'CGI defines it as always present, empty when the URL has no query (nginx: fastcgi_param QUERY_STRING $query_string)');
  }

  const serverName = param('SERVER_NAME');
  if (serverName === undefined || serverName === '') missing('SERVER_NAME', 'applications build URLs from it when the request has no Host header (nginx: fastcgi_param SERVER_NAME $server_name)');
  const serverPort = param('SERVER_PORT');
  if (serverPort === undefined || serverPort === '') missing('SERVER_PORT', 'applications build URLs from it (nginx: fastcgi_param SERVER_PORT $server_port)');
  else if (!DIGITS.test(serverPort)) invalid('SERVER_PORT', serverPort, 'a port is decimal digits');

  const gateway = param('GATEWAY_INTERFACE');
  if (gateway !== undefined && !GATEWAY_INTERFACE.test(gateway)) invalid('GATEWAY_INTERFACE', gateway, 'when sent, it must be CGI/1.1 (or another CGI/1.x)');

  const scriptName = param('SCRIPT_NAME');
  const pathInfo = param('PATH_INFO');
  if (role !== Role.Authorizer && scriptName === undefined) {
    missing('SCRIPT_NAME', 'it is the path the application is mounted at, "" for the root (nginx: fastcgi_param SCRIPT_NAME $fastcgi_script_name)');
  }
  if (scriptName !== undefined && scriptName !== '' && !scriptName.startsWith('/')) {
    invalid('SCRIPT_NAME', scriptName, 'it must be empty or a path starting with "/"');
  }
  if (pathInfo !== undefined && pathInfo !== '') {
    if (!pathInfo.startsWith('/')) invalid('PATH_INFO', pathInfo, 'it must be empty or a path starting with "/" (the part of the path after SCRIPT_NAME)');
    else if (scriptName !== undefined && scriptName.endsWith('/')) {
      invalid('SCRIPT_NAME', scriptName, `with PATH_INFO=${JSON.stringify(pathInfo.slice(0, 200))} it must not end with "/": the slash between them belongs to PATH_INFO`);
    }
  }

  const uri = param('REQUEST_URI');
  if (uri !== undefined && uri !== '' && !uri.startsWith('/') && uri !== '*' && !/^https?:\/\//i.test(uri)) {
    invalid('REQUEST_URI', uri, 'the request target is a path starting with "/" (or an absolute URL, or "*")');
  }

  const contentLength = param('CONTENT_LENGTH');
  if (contentLength !== undefined && contentLength !== '' && !DIGITS.test(contentLength)) {
    invalid('CONTENT_LENGTH', contentLength, 'it must be the body length in decimal digits, or absent (or empty) when there is no body');
  }
  const httpContentLength = param('HTTP_CONTENT_LENGTH');
  if (httpContentLength !== undefined && httpContentLength !== (contentLength ?? '')) {
    findings.push({
      code: 'NODEFPM_VALIDATE_PARAM_CONFLICT',
      message:
        `the web server sent HTTP_CONTENT_LENGTH=${JSON.stringify(httpContentLength)} but CONTENT_LENGTH=${JSON.stringify(contentLength ?? null)}: ` +
        'CGI carries the body length in CONTENT_LENGTH; both must agree (or send only CONTENT_LENGTH)',
    });
  }
  const contentType = param('CONTENT_TYPE');
  const httpContentType = param('HTTP_CONTENT_TYPE');
  if (httpContentType !== undefined && httpContentType !== (contentType ?? '')) {
    findings.push({
      code: 'NODEFPM_VALIDATE_PARAM_CONFLICT',
      message:
        `the web server sent HTTP_CONTENT_TYPE=${JSON.stringify(httpContentType.slice(0, 200))} but CONTENT_TYPE=${JSON.stringify(contentType?.slice(0, 200) ?? null)}: ` +
        'CGI carries the media type in CONTENT_TYPE; both must agree (or send only CONTENT_TYPE)',
    });
  }
  return findings;
}

/** The request body length compared with CONTENT_LENGTH; null when they agree or nothing was declared. */
export function checkBodyLength(declared: string | undefined, received: number): Finding | null {
  if (declared === undefined || declared === '' || !DIGITS.test(declared)) return null;
  if (Number(declared) === received) return null;
  return {
    code: 'NODEFPM_VALIDATE_BODY_LENGTH',
    message: `the web server sent a ${received}-byte body (FCGI_STDIN) with CONTENT_LENGTH=${declared}: it must send exactly CONTENT_LENGTH bytes`,
  };
}

/** What the validator learns from a CGI head. */
export interface HeadInfo {
  /** The status the web server will send: Status, else 302 for a Location alone, else 200. */
  status: number;
  /** Content-Length when given (and well-formed), else null. */
  contentLength: number | null;
  findings: Finding[];
}

/** Headers the web server owns (the Status line is the CGI way to give the status, so it is not one of them). */
const HOP_BY_HOP = new Set([...HOP_BY_HOP_HEADERS].filter((name) => name !== 'status'));
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const STATUS_VALUE = /^([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

/**
 * The application's side of the head: it parses as CGI (RFC 3875 6), each header is legal HTTP, the
 * status is a final HTTP status, nothing hop-by-hop, Content-Length well-formed and allowed.
 */
export function checkCgiHead(head: string): HeadInfo {
  const findings: Finding[] = [];
  const malformed = (why: string): void => {
    findings.push({ code: 'NODEFPM_VALIDATE_HEAD_MALFORMED', message: `the CGI head ${why}` });
  };
  let text = head;
  // A head of no header lines is just the empty line ("\r\n"): its end is right, its lack of headers is not.
  if (text === '\r\n' || text === '\n') text = '';
  else if (text.endsWith('\r\n\r\n')) text = text.slice(0, -4);
  else if (text.endsWith('\n\n')) text = text.slice(0, -2);
  else {
    malformed('does not end with an empty line: end it with "\\r\\n\\r\\n", then write the body with write()');
    text = text.replace(/\r?\n$/, '');
  }
  const lines = text === '' ? [] : text.split(/\r?\n/);
  if (lines.length === 0) malformed('has no header: a CGI response needs at least a Status, Content-Type or Location header');

  let status: number | null = null;
  let location = false;
  let contentLength: number | null = null;
  let lengthSeen: string | null = null;
  for (const line of lines) {
    if (line === '') {
      malformed('has an empty line before its end: everything after it would be taken as the body');
      continue;
    }
    if (line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09) {
      malformed(`has a continuation line (${JSON.stringify(line.slice(0, 80))}): folded headers are obsolete; put each header on one line`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      malformed(`has a line without "name:" (${JSON.stringify(line.slice(0, 80))}): each head line is "Name: value"`);
      continue;
    }
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name)) {
      findings.push({ code: 'NODEFPM_VALIDATE_HEADER_NAME', message: `the response header name ${JSON.stringify(name.slice(0, 80))} is not an HTTP token: use letters, digits and !#$%&'*+-.^_\`|~ only` });
      continue;
    }
    if (BAD_VALUE.test(value)) {
      findings.push({
        code: 'NODEFPM_VALIDATE_HEADER_VALUE',
        message:
          `the value of response header ${name} has a control character or a character above U+00FF: ` +
          'header bytes are Latin-1 text; percent-encode or RFC 8187-encode anything else',
      });
    }
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const match = STATUS_VALUE.exec(value);
      const code = match === null ? NaN : Number(match[1]);
      if (status !== null) {
        findings.push({ code: 'NODEFPM_VALIDATE_STATUS', message: 'the CGI head has more than one Status header: send one' });
      } else if (match === null || code < 200 || code > 599) {
        findings.push({
          code: 'NODEFPM_VALIDATE_STATUS',
          message:
            `Status: ${JSON.stringify(value.slice(0, 80))} is not a final HTTP status: write "Status: NNN Reason" with NNN from 200 to 599 ` +
            '(1xx interim responses cannot be sent through CGI)',
        });
      }
      if (status === null) status = Number.isNaN(code) ? 500 : code;
    } else if (lower === 'location') {
      location = true;
    } else if (lower === 'content-length') {
      if (!DIGITS.test(value)) {
        findings.push({ code: 'NODEFPM_VALIDATE_CONTENT_LENGTH', message: `Content-Length: ${JSON.stringify(value.slice(0, 80))} is not a number of bytes (decimal digits)` });
      } else if (lengthSeen !== null && lengthSeen !== value) {
        findings.push({ code: 'NODEFPM_VALIDATE_CONTENT_LENGTH', message: `Content-Length is given twice with different values (${lengthSeen} and ${value}): send one` });
      } else {
        lengthSeen = value;
        contentLength = Number(value);
      }
    } else if (HOP_BY_HOP.has(lower)) {
      findings.push({
        code: 'NODEFPM_VALIDATE_HOP_BY_HOP',
        message:
          lower === 'transfer-encoding'
            ? 'the response has a Transfer-Encoding header: through CGI the web server frames the body itself, so send the bytes unframed and no Transfer-Encoding'
            : `the response has a ${name} header, which belongs to one HTTP connection and is the web server's to send: remove it`,
      });
    }
  }
  const finalStatus = status ?? (location ? 302 : 200);
  if ((finalStatus === 204 || finalStatus < 200) && contentLength !== null) {
    findings.push({ code: 'NODEFPM_VALIDATE_CONTENT_LENGTH', message: `a ${finalStatus} response must not have a Content-Length header (RFC 9110 8.6)` });
  }
  return { status: finalStatus, contentLength, findings };
}
