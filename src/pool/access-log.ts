// Access log lines: the Common and Combined Log Formats, JSON lines, and php-fpm's access.format placeholders, compiled once.

import { NodefpmError } from '../errors.js';

/** One finished request, as the access log sees it. */
export interface AccessRecord {
  /** When the request began (epoch ms). */
  start: number;
  /** Milliseconds from BEGIN_REQUEST to END_REQUEST. */
  duration: number;
  /** The HTTP status the response carried (200 when no Status header; 0 when nothing was sent). */
  status: number;
  /** Response body bytes (STDOUT minus the CGI head). */
  bytes: number;
  /** A FastCGI param of the request ('' when absent). */
  param(name: string): string;
  pid: number;
  pool: string;
  /** The worker's RSS and CPU percentage at its last heartbeat. */
  memory: number;
  cpu: number;
}

export type AccessFormatter = (record: AccessRecord) => string;

/** The named formats; anything else given to --access-format is a template of % placeholders. */
export const ACCESS_FORMATS = {
  common: '%R - %u [%t] "%m %r%Q%q %{SERVER_PROTOCOL}e" %s %b',
  combined: '%R - %u [%t] "%m %r%Q%q %{SERVER_PROTOCOL}e" %s %b "%{HTTP_REFERER}e" "%{HTTP_USER_AGENT}e"',
  /** php-fpm's default access.format. */
  'php-fpm': '%R - %u %t "%m %r" %s',
} as const;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

function zone(date: Date): string {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

/** A small strftime for %{format}t: the directives log formats use. */
export function strftime(format: string, time: number): string {
  const date = new Date(time);
  return format.replace(/%([a-zA-Z%])/g, (whole, directive: string) => {
    switch (directive) {
      case 'Y':
        return String(date.getFullYear());
      case 'y':
        return pad(date.getFullYear() % 100);
      case 'm':
        return pad(date.getMonth() + 1);
      case 'd':
        return pad(date.getDate());
      case 'e':
        return String(date.getDate()).padStart(2, ' ');
      case 'H':
        return pad(date.getHours());
      case 'M':
        return pad(date.getMinutes());
      case 'S':
        return pad(date.getSeconds());
      case 'z':
        return zone(date);
      case 'b':
        return MONTHS[date.getMonth()]!;
      case 'a':
        return DAYS[date.getDay()]!;
      case 's':
        return String(Math.floor(time / 1000));
      case 'F':
        return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
      case 'T':
        return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
      case '%':
        return '%';
      default:
        return whole;
    }
  });
}

/**
 * strftime for one format, formatted once per second: every directive has a resolution of a second,
 * and a busy worker logs thousands of lines in one.
 */
function secondsCache(format: string): (time: number) => string {
  let second = Number.NaN;
  let text = '';
  return (time) => {
    const now = Math.floor(time / 1000);
    if (now !== second) {
      second = now;
      text = strftime(format, time);
    }
    return text;
  };
}

/** Common Log Format time: 10/Oct/2000:13:55:36 -0700. */
const CLF_TIME = '%d/%b/%Y:%H:%M:%S %z';

function dash(value: string): string {
  return value === '' ? '-' : value;
}

function pathOf(uri: string): string {
  const query = uri.indexOf('?');
  return query === -1 ? uri : uri.slice(0, query);
}

function queryOf(record: AccessRecord): string {
  const query = record.param('QUERY_STRING');
  if (query !== '') return query;
  const uri = record.param('REQUEST_URI');
  const at = uri.indexOf('?');
  return at === -1 ? '' : uri.slice(at + 1);
}

type Part = string | AccessFormatter;

function invalid(format: string, message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', `--access-format ${JSON.stringify(format)}: ${message}`);
}

/** One placeholder (letter plus optional {argument}) to a function of the record. */
function placeholder(format: string, letter: string, argument: string | undefined): AccessFormatter {
  switch (letter) {
    case 'C':
      return (r) => r.cpu.toFixed(2);
    case 'd': {
      const unit = argument ?? 'microseconds';
      if (unit === 'seconds') return (r) => (r.duration / 1000).toFixed(3);
      if (unit === 'milliseconds' || unit === 'milli' || unit === 'mili') return (r) => r.duration.toFixed(3);
      if (unit === 'microseconds' || unit === 'micro') return (r) => String(Math.round(r.duration * 1000));
      throw invalid(format, `%{${unit}}d: the unit must be seconds, milliseconds or microseconds`);
    }
    case 'e':
      if (argument === undefined) throw invalid(format, '%e needs a param name: %{HTTP_USER_AGENT}e');
      return (r) => dash(r.param(argument));
    case 'f':
      return (r) => dash(r.param('SCRIPT_FILENAME'));
    case 'l':
      return (r) => r.param('CONTENT_LENGTH') || '0';
    case 'm':
      return (r) => dash(r.param('REQUEST_METHOD'));
    case 'M': {
      const unit = argument ?? 'bytes';
      const divisor = { bytes: 1, kilo: 1024, mega: 1024 * 1024 }[unit];
      if (divisor === undefined) throw invalid(format, `%{${unit}}M: the unit must be bytes, kilo or mega`);
      return (r) => String(Math.round(r.memory / divisor));
    }
    case 'n':
      return (r) => r.pool;
    case 'p':
      return (r) => String(r.pid);
    case 'q':
      return queryOf;
    case 'Q':
      return (r) => (queryOf(r) === '' ? '' : '?');
    case 'r':
      return (r) => dash(pathOf(r.param('REQUEST_URI') || r.param('SCRIPT_NAME')));
    case 'R':
      return (r) => dash(r.param('REMOTE_ADDR'));
    case 's':
      return (r) => String(r.status);
    case 'b':
      return (r) => (r.bytes === 0 ? '-' : String(r.bytes));
    case 't': {
      const time = secondsCache(argument ?? CLF_TIME);
      return (r) => time(r.start);
    }
    case 'T': {
      const time = secondsCache(argument ?? CLF_TIME);
      return (r) => time(r.start + r.duration);
    }
    case 'u':
      return (r) => dash(r.param('REMOTE_USER'));
    default:
      throw invalid(format, `unknown placeholder %${letter} (see docs/pool.md for the list)`);
  }
}

/** Compiles a template of % placeholders (php-fpm's access.format) into a line formatter. */
export function compileTemplate(format: string): AccessFormatter {
  const parts: Part[] = [];
  let literal = '';
  for (let i = 0; i < format.length; i++) {
    const char = format[i]!;
    if (char !== '%') {
      literal += char;
      continue;
    }
    let argument: string | undefined;
    let j = i + 1;
    if (format[j] === '{') {
      const close = format.indexOf('}', j);
      if (close === -1) throw invalid(format, `unclosed %{ at position ${i}`);
      argument = format.slice(j + 1, close);
      j = close + 1;
    }
    const letter = format[j];
    if (letter === undefined) throw invalid(format, 'ends with a lone %');
    if (letter === '%') {
      literal += '%';
    } else {
      if (literal !== '') parts.push(literal);
      literal = '';
      parts.push(placeholder(format, letter, argument));
    }
    i = j;
  }
  if (literal !== '') parts.push(literal);
  return (record) => {
    let line = '';
    for (const part of parts) line += typeof part === 'string' ? part : part(record);
    return `${line}\n`;
  };
}

function jsonLine(r: AccessRecord): string {
  const optional = (name: string): string | null => {
    const value = r.param(name);
    return value === '' ? null : value;
  };
  return `${JSON.stringify({
    time: new Date(r.start).toISOString(),
    remote_addr: optional('REMOTE_ADDR'),
    remote_user: optional('REMOTE_USER'),
    method: optional('REQUEST_METHOD'),
    uri: optional('REQUEST_URI') ?? optional('SCRIPT_NAME'),
    protocol: optional('SERVER_PROTOCOL'),
    status: r.status,
    bytes: r.bytes,
    duration_ms: Math.round(r.duration * 1000) / 1000,
    content_length: Number(r.param('CONTENT_LENGTH') || 0),
    referer: optional('HTTP_REFERER'),
    user_agent: optional('HTTP_USER_AGENT'),
    pid: r.pid,
    pool: r.pool,
  })}\n`;
}

/** The formatter for --access-format: common, combined, php-fpm, json, or a template. Throws NODEFPM_INVALID_OPTION. */
export function accessFormatter(format: string): AccessFormatter {
  if (format === 'json') return jsonLine;
  const named = (ACCESS_FORMATS as Record<string, string>)[format];
  return compileTemplate(named ?? format);
}

/** The HTTP status a CGI head announces: its Status line, else 302 with a Location, else 200. */
export function statusOfHead(head: string): number {
  const match = /(?:^|\n)status:[ \t]*(\d{3})/i.exec(head);
  if (match !== null) return Number(match[1]);
  return /(?:^|\n)location:/i.test(head) ? 302 : 200;
}
