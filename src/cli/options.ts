// The command's options: one table (flag, value type, default, description, target), the argv parser, and --help built from it.

import net from 'node:net';
import { defaultBodyLimits } from '../http/body.js';
import type { HandlerOptions } from '../http/handler.js';
import { NodefpmError, isNodefpmError } from '../errors.js';
import type { LogLevel } from '../log.js';
import { parseListenAddress, type ListenAddress } from '../server/listen.js';
import { defaultLimits, type Limits, type ServerOptions } from '../server/options.js';
import { API_KINDS, type ApiKind } from './adapters.js';

/**
 * How an option's text is read. Every type also accepts the typed value itself, so a config file
 * (issue 5) can feed the same table: `"maxBodyBytes": 1048576` or `"maxBodyBytes": "1M"`.
 * - count: a whole number; bytes: a whole number with an optional k/M/G suffix (powers of 1024);
 * - duration: milliseconds, or a whole number with ms/s/m/h; mode: octal permission bits;
 * - choice: one of `choices`; list: comma-separated, repeatable; address: a listen address, repeatable;
 * - boolean: `--x` / `--no-x` (or `--x=true|false`); action: a flag that makes the command do
 *   something else instead of serving (--help).
 */
export type OptionType = 'boolean' | 'count' | 'bytes' | 'duration' | 'mode' | 'choice' | 'list' | 'address' | 'action';

/** Where a value goes: the server's Limits, other ServerOptions, the handler's options, or the command itself. */
export type OptionScope = 'limits' | 'server' | 'handler' | 'command';

export type OptionValue = boolean | number | string | readonly string[] | readonly ListenAddress[];

export interface OptionSpec {
  /** The option's name in code and in a config file; the flag is its kebab-case form (--max-body-bytes). */
  readonly key: string;
  readonly type: OptionType;
  readonly scope: OptionScope;
  /** The heading it is listed under in --help and docs/cli.md. */
  readonly group: OptionGroup;
  readonly description: string;
  /** What the value looks like in --help (ADDR, N, BYTES, ...). */
  readonly placeholder?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** The value when the option is not given. Undefined: see defaultText, or nothing. */
  readonly default?: OptionValue;
  /** Says what happens when the option is absent when that is not one fixed value. */
  readonly defaultText?: string;
  /** A one-letter alias (-h). */
  readonly short?: string;
}

export const OPTION_GROUPS = ['Application', 'Listening', 'Limits', 'Logging and shutdown', 'Other'] as const;
export type OptionGroup = (typeof OPTION_GROUPS)[number];

const KIB = 1024;
const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

/** Node's timers hold at most 2^31-1 ms; the server refuses longer timeouts. */
const MAX_TIMEOUT = 2_147_483_647;

function limit(key: keyof Limits, type: 'count' | 'bytes' | 'duration', description: string, min?: number): OptionSpec {
  const floor = min ?? (type === 'duration' ? 0 : 1);
  const spec: OptionSpec = { key, type, scope: 'limits', group: 'Limits', description, default: defaultLimits[key], min: floor };
  return type === 'duration' ? { ...spec, max: MAX_TIMEOUT } : spec;
}

/** Every option the command takes. --help, docs/cli.md and the parser all come from this table. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    key: 'api',
    type: 'choice',
    scope: 'command',
    group: 'Application',
    choices: API_KINDS,
    description:
      "Which interface the module's default export implements: a native handler (req, res), a Node request listener " +
      '(Express, Connect, Koa callback) or a fetch handler (a function (request) => Response, or an object with a fetch method).',
    defaultText: "the module's `api` export, else detected from the default export when that is unambiguous",
  },
  {
    key: 'development',
    type: 'boolean',
    scope: 'handler',
    group: 'Application',
    default: false,
    description: 'Show error messages and stacks in 500 responses. Never in production.',
  },
  {
    key: 'bodyLimit',
    type: 'bytes',
    scope: 'handler',
    group: 'Application',
    min: 1,
    default: defaultBodyLimits.bodyLimit,
    description: 'Bytes req.bytes(), req.text() and req.json() hold in memory before they fail with 413.',
  },
  {
    key: 'lineLimit',
    type: 'bytes',
    scope: 'handler',
    group: 'Application',
    min: 1,
    default: defaultBodyLimits.lineLimit,
    description: 'Bytes of one line read by req.readLine() and req.lines() before they fail with 413.',
  },
  {
    key: 'listen',
    type: 'address',
    scope: 'command',
    group: 'Listening',
    placeholder: 'ADDR',
    description:
      'Where to accept FastCGI connections: unix:/path/app.sock, /path/app.sock, HOST:PORT, [IPv6]:PORT, fd:N or ' +
      'systemd[:NAME]. May be given more than once.',
    defaultText: 'the sockets systemd passed (LISTEN_FDS), else fd 0 when it is a listening socket (a web server or spawn-fcgi started nodefpm)',
  },
  {
    key: 'socketMode',
    type: 'mode',
    scope: 'command',
    group: 'Listening',
    placeholder: 'MODE',
    max: 0o777,
    default: 0o660,
    description: 'Permission bits (octal) of the Unix socket files nodefpm creates.',
  },
  {
    key: 'allowedClients',
    type: 'list',
    scope: 'server',
    group: 'Listening',
    placeholder: 'IP,...',
    description:
      'Peer addresses (IPv4 or IPv6) allowed to connect, added to the FCGI_WEB_SERVER_ADDRS environment variable. With either ' +
      'set, connections from elsewhere, Unix-socket ones included, are closed at once. May be given more than once.',
    defaultText: 'FCGI_WEB_SERVER_ADDRS when set, else every client',
  },
  {
    key: 'multiplex',
    type: 'boolean',
    scope: 'server',
    group: 'Listening',
    default: true,
    description:
      'Multiplexing: several concurrent requests on one connection (FCGI_MPXS_CONNS=1). --no-multiplex turns it off: a ' +
      'second concurrent request on a connection then gets FCGI_CANT_MPX_CONN.',
  },
  limit('maxConnections', 'count', 'Open connections; beyond it, requests get FCGI_OVERLOADED. Reported as FCGI_MAX_CONNS.'),
  limit('maxRequests', 'count', 'Requests in progress across all connections; beyond it: FCGI_OVERLOADED. Reported as FCGI_MAX_REQS.'),
  limit('maxRequestsPerConnection', 'count', 'Requests in progress on one multiplexed connection; beyond it: FCGI_OVERLOADED.'),
  limit('maxParamsBytes', 'bytes', "Bytes of one request's FastCGI params (the CGI environment, HTTP headers included); beyond it: 431."),
  limit('maxBodyBytes', 'bytes', 'Bytes of one request body; beyond it: 413 (before the handler runs when CONTENT_LENGTH says so).'),
  limit('paramsTimeout', 'duration', 'Time from BEGIN_REQUEST until the params are complete; beyond it: 408. 0 turns it off.'),
  limit('idleTimeout', 'duration', 'Time a connection with no request in progress may stay silent before it is closed. 0 turns it off.'),
  limit('abortTimeout', 'duration', 'After FCGI_ABORT_REQUEST, the time the handler has to finish before END_REQUEST is sent without it.'),
  limit('inputHighWaterMark', 'bytes', 'Body bytes buffered for one request before nodefpm stops reading its connection (input backpressure).'),
  limit(
    'outputHighWaterMark',
    'bytes',
    'Bytes queued on a connection above which res.write() returns false until drain (output backpressure).',
    16 * KIB,
  ),
  {
    key: 'logLevel',
    type: 'choice',
    scope: 'command',
    group: 'Logging and shutdown',
    choices: LOG_LEVELS,
    default: 'info',
    description: 'Least severe log lines written to stderr. debug also prints the stack of a start-up error.',
  },
  {
    key: 'closeTimeout',
    type: 'duration',
    scope: 'command',
    group: 'Logging and shutdown',
    min: 0,
    max: MAX_TIMEOUT,
    default: 30_000,
    description:
      'On SIGTERM or SIGINT, how long requests in progress may take to finish before they are aborted; nodefpm then exits with 0. ' +
      'A second signal exits at once with 1.',
  },
  { key: 'help', type: 'action', scope: 'command', group: 'Other', short: 'h', description: 'Print this help and exit.' },
  { key: 'version', type: 'action', scope: 'command', group: 'Other', short: 'v', description: "Print nodefpm's version and exit." },
];

/** The settings the command runs with, every default applied (limits left to the server's own defaults). */
export interface Settings {
  api: ApiKind | undefined;
  /** Empty: use what the process inherited (systemd sockets, fd 0). */
  listen: ListenAddress[];
  socketMode: number;
  logLevel: LogLevel;
  closeTimeout: number;
  /** Only the options given; the server fills in the rest (see defaultLimits). */
  server: ServerOptions;
  handler: HandlerOptions;
}

export interface CommandLine {
  /** The app module as written (relative to the working directory), if one was given. */
  app: string | undefined;
  help: boolean;
  version: boolean;
  /** The values given, by option key: what a config file's values would be merged under. */
  values: ReadonlyMap<string, OptionValue>;
  settings: Settings;
}

export function flagOf(spec: OptionSpec): string {
  return spec.key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** The flag as --help shows it: a boolean that is on by default is shown as the --no- form that changes it. */
export function displayFlag(spec: OptionSpec): string {
  return spec.type === 'boolean' && spec.default === true ? `--no-${flagOf(spec)}` : `--${flagOf(spec)}`;
}

const byFlag = new Map(OPTIONS.map((spec) => [flagOf(spec), spec]));
const byShort = new Map(OPTIONS.filter((spec) => spec.short !== undefined).map((spec) => [spec.short!, spec]));

export function optionSpec(key: string): OptionSpec | undefined {
  return OPTIONS.find((spec) => spec.key === key);
}

/** A command line nodefpm cannot act on: an unknown option, a missing value, no app module. */
function usage(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_USAGE', message);
}

function invalid(origin: string, message: string, cause?: unknown): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', `${origin}: ${message}`, cause === undefined ? undefined : { cause });
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: KIB, m: KIB * KIB, g: KIB * KIB * KIB };
const DURATION_UNITS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function checkRange(spec: OptionSpec, origin: string, value: number, shown: string): number {
  if (!Number.isSafeInteger(value)) throw invalid(origin, `${shown} is too large`);
  if (spec.min !== undefined && value < spec.min) throw invalid(origin, `must be at least ${formatValue(spec, spec.min)}, got ${shown}`);
  if (spec.max !== undefined && value > spec.max) throw invalid(origin, `must be at most ${formatValue(spec, spec.max)}, got ${shown}`);
  return value;
}

function numberFrom(spec: OptionSpec, origin: string, raw: string | number, pattern: RegExp, units: Record<string, number>, expected: string): number {
  if (typeof raw === 'number') {
    if (!Number.isInteger(raw)) throw invalid(origin, `expected ${expected}, got ${raw}`);
    return checkRange(spec, origin, raw, String(raw));
  }
  const match = pattern.exec(raw.trim());
  if (match === null) throw invalid(origin, `expected ${expected}, got ${JSON.stringify(raw)}`);
  return checkRange(spec, origin, Number(match[1]) * units[(match[2] ?? '').toLowerCase()]!, raw);
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

/**
 * Reads one value of `spec` from text (the command line) or an already typed value (a config file).
 * `origin` names where it came from in the error (--max-body-bytes). Throws NODEFPM_INVALID_OPTION.
 */
export function coerceOption(spec: OptionSpec, raw: unknown, origin = `--${flagOf(spec)}`): OptionValue {
  switch (spec.type) {
    case 'boolean':
    case 'action': {
      if (typeof raw === 'boolean') return raw;
      const word = String(raw).trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      throw invalid(origin, `expected true or false, got ${JSON.stringify(raw)}`);
    }
    case 'count':
      return numberFrom(spec, origin, textOrNumber(origin, raw), /^(\d+)()$/, BYTE_UNITS, 'a whole number');
    case 'bytes':
      return numberFrom(spec, origin, textOrNumber(origin, raw), /^(\d+)(?:([kmg])(?:i?b)?|b)?$/i, BYTE_UNITS, 'a size in bytes (65536, 64k, 10M, 2G)');
    case 'duration':
      return numberFrom(spec, origin, textOrNumber(origin, raw), /^(\d+)(ms|s|m|h)?$/i, DURATION_UNITS, 'a time in milliseconds (30000) or with a unit (30s, 5m)');
    case 'mode': {
      const text = typeof raw === 'number' ? raw.toString(8) : String(raw).trim();
      const match = /^(?:0o|0)?([0-7]{1,4})$/i.exec(text);
      if (match === null) throw invalid(origin, `expected octal permission bits (660, 0660, 0o660), got ${JSON.stringify(raw)}`);
      return checkRange(spec, origin, parseInt(match[1]!, 8), String(raw));
    }
    case 'choice': {
      const text = String(raw).trim();
      if (!spec.choices!.includes(text)) throw invalid(origin, `expected one of ${spec.choices!.join(', ')}, got ${JSON.stringify(raw)}`);
      return text;
    }
    case 'list': {
      const items = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((item) => item.trim()).filter((item) => item !== '');
      if (items.length === 0) throw invalid(origin, 'expected a comma-separated list, got nothing');
      for (const item of items) {
        if (spec.key === 'allowedClients' && net.isIP(item) === 0) throw invalid(origin, `${JSON.stringify(item)} is not an IPv4 or IPv6 address`);
      }
      return items;
    }
    case 'address': {
      const texts = Array.isArray(raw) ? raw.map(String) : [String(raw)];
      return texts.map((text) => {
        try {
          return parseListenAddress(text);
        } catch (error) {
          throw invalid(origin, isNodefpmError(error) ? error.message : String(error), error);
        }
      });
    }
  }
}

function textOrNumber(origin: string, raw: unknown): string | number {
  if (typeof raw === 'number' || typeof raw === 'string') return raw;
  throw invalid(origin, `expected a number or text, got ${typeof raw}`);
}

/** Levenshtein distance, for "did you mean" on a mistyped flag. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function suggestion(name: string): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const flag of byFlag.keys()) {
    const d = flag.startsWith(name) && name.length >= 3 ? 1 : distance(name, flag);
    if (d < bestDistance) {
      best = flag;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean --${best}?)`;
}

function isRepeatable(spec: OptionSpec): boolean {
  return spec.type === 'list' || spec.type === 'address';
}

function store(values: Map<string, OptionValue>, spec: OptionSpec, value: OptionValue): void {
  const previous = values.get(spec.key);
  if (isRepeatable(spec) && Array.isArray(previous)) values.set(spec.key, [...previous, ...(value as readonly unknown[])] as OptionValue);
  else values.set(spec.key, value);
}

/**
 * Parses `argv` (without node and the script): one app module and options in any order, `--flag value`
 * or `--flag=value`, `--` ending the options. Throws NODEFPM_USAGE or NODEFPM_INVALID_OPTION.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const values = new Map<string, OptionValue>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq === -1 ? undefined : arg.slice(eq + 1);
      let spec = byFlag.get(name);
      let negated = false;
      if (spec === undefined && name.startsWith('no-') && byFlag.get(name.slice(3))?.type === 'boolean') {
        spec = byFlag.get(name.slice(3));
        negated = true;
      }
      if (spec === undefined) throw usage(`unknown option --${name}${suggestion(name)}`);
      const origin = `--${name}`;
      if (spec.type === 'boolean' || spec.type === 'action') {
        if (inline === undefined) store(values, spec, !negated);
        else if (negated) throw usage(`${origin} takes no value`);
        else store(values, spec, coerceOption(spec, inline, origin));
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        const next = argv[i + 1];
        // A following flag is a forgotten value, not a value that looks like a flag.
        if (next !== undefined && !next.startsWith('--')) {
          raw = next;
          i++;
        }
      }
      if (raw === undefined) throw usage(`${origin} needs a value: ${placeholderOf(spec)}`);
      store(values, spec, coerceOption(spec, raw, origin));
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const spec = byShort.get(arg.slice(1));
      if (spec === undefined) throw usage(`unknown option ${arg}`);
      store(values, spec, true);
      continue;
    }
    positional.push(arg);
  }
  if (positional.length > 1) {
    throw usage(`one app module expected, got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return {
    app: positional[0],
    help: values.get('help') === true,
    version: values.get('version') === true,
    values,
    settings: resolveSettings(values),
  };
}

/** Applies the defaults to the values given and sorts them into the parts of the program they configure. */
export function resolveSettings(values: ReadonlyMap<string, OptionValue>): Settings {
  const server: Record<string, unknown> = {};
  const handler: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const value = values.get(spec.key);
    if (value === undefined) continue;
    if (spec.scope === 'limits' || spec.scope === 'server') server[spec.key] = value;
    else if (spec.scope === 'handler') handler[spec.key] = value;
  }
  const valueOf = <T>(key: string): T => (values.get(key) ?? optionSpec(key)!.default) as T;
  return {
    api: values.get('api') as ApiKind | undefined,
    listen: [...((values.get('listen') as readonly ListenAddress[] | undefined) ?? [])],
    socketMode: valueOf<number>('socketMode'),
    logLevel: valueOf<LogLevel>('logLevel'),
    closeTimeout: valueOf<number>('closeTimeout'),
    server: server as ServerOptions,
    handler: handler as HandlerOptions,
  };
}

// ---- help and docs, both generated from OPTIONS ----

function formatBytes(value: number): string {
  for (const [unit, size] of [['G', KIB ** 3], ['M', KIB ** 2], ['k', KIB]] as const) {
    if (value >= size && value % size === 0) return `${value / size}${unit}`;
  }
  return String(value);
}

function formatDuration(value: number): string {
  if (value === 0) return '0';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (value % size === 0) return `${value / size}${unit}`;
  }
  return `${value}ms`;
}

/** A value in the syntax the parser reads back. */
export function formatValue(spec: OptionSpec, value: OptionValue): string {
  if (typeof value === 'number') {
    if (spec.type === 'bytes') return formatBytes(value);
    if (spec.type === 'duration') return formatDuration(value);
    if (spec.type === 'mode') return `0${value.toString(8)}`;
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function placeholderOf(spec: OptionSpec): string {
  if (spec.choices !== undefined) return spec.choices.join('|');
  if (spec.placeholder !== undefined) return spec.placeholder;
  return { count: 'N', bytes: 'BYTES', duration: 'TIME', mode: 'MODE', list: 'LIST', address: 'ADDR' }[spec.type as string] ?? 'VALUE';
}

/** The option as a synopsis shows it: `--max-body-bytes BYTES`, `--no-multiplex`, `-h, --help`. */
export function synopsisOf(spec: OptionSpec): string {
  const flag = displayFlag(spec);
  const named = spec.short === undefined ? flag : `-${spec.short}, ${flag}`;
  return spec.type === 'boolean' || spec.type === 'action' ? named : `${named} ${placeholderOf(spec)}`;
}

/** The default as --help and the docs state it, or undefined when there is nothing to say. */
export function defaultOf(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined) return undefined;
  return formatValue(spec, spec.default);
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

export const USAGE = 'nodefpm <app-module> [--api native|node|fetch] [--listen ADDR] [options]';

/** The exit statuses, for --help and docs/cli.md. */
export const EXIT_CODES: ReadonlyArray<readonly [number, string]> = [
  [0, 'stopped by SIGTERM or SIGINT after in-flight requests finished (or --help, --version)'],
  [1, 'the app module could not be loaded, the server failed (an address in use), or a second signal cut the graceful stop short'],
  [2, 'a bad command line: an unknown option, a bad value, no app module, or nothing to listen on'],
];

/** The text of --help: usage, then every option of OPTIONS by group with its default, then exit statuses and signals. */
export function helpText(width = 100): string {
  const out = [
    `Usage: ${USAGE}`,
    '',
    wrap(
      "Serves the app module's default export over FastCGI, in one process. The module is a path relative to the working " +
        'directory: .js, .mjs, .cjs, or .ts/.mts/.cts when tsx is installed (next to the app or with nodefpm).',
      width,
      '',
    ),
  ];
  for (const group of OPTION_GROUPS) {
    out.push('', `${group}:`);
    for (const spec of OPTIONS.filter((option) => option.group === group)) {
      out.push(`  ${synopsisOf(spec)}`);
      const fallback = defaultOf(spec);
      out.push(wrap(fallback === undefined ? spec.description : `${spec.description} Default: ${fallback}.`, width, '      '));
    }
  }
  out.push('', 'Exit status:');
  for (const [code, meaning] of EXIT_CODES) out.push(`  ${code}${wrap(meaning, width, '     ').slice(3)}`);
  out.push(
    '',
    'Signals:',
    wrap(
      'SIGTERM or SIGINT: stop accepting connections, let requests in progress finish (up to --close-timeout), exit 0. ' +
        'A second SIGTERM or SIGINT: exit 1 at once.',
      width,
      '  ',
    ),
    '',
    'See docs/cli.md for launching nodefpm from spawn-fcgi, nginx, Apache, lighttpd, h2o and systemd.',
  );
  return `${out.join('\n')}\n`;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** The options table of docs/cli.md (between its `options` markers); a test keeps the doc equal to it. */
export function optionsMarkdown(): string {
  const rows = ['| option | default | what it does |', '|---|---|---|'];
  for (const group of OPTION_GROUPS) {
    rows.push(`| **${group}** | | |`);
    for (const spec of OPTIONS.filter((option) => option.group === group)) {
      rows.push(`| \`${escapeCell(synopsisOf(spec))}\` | ${escapeCell(defaultOf(spec) ?? '')} | ${escapeCell(spec.description)} |`);
    }
  }
  return `${rows.join('\n')}\n`;
}
