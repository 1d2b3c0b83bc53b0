// The command's options: one table (flag, value type, default, description, target), the argv parser, and --help built from it.

import net from 'node:net';
import { defaultBodyLimits } from '../http/body.js';
import type { NodeAdapterOptions } from '../adapters/node/handler.js';
import type { HandlerOptions } from '../http/handler.js';
import { NodefpmError, isNodefpmError } from '../errors.js';
import type { LogLevel } from '../log.js';
import { parseListenAddress, type ListenAddress } from '../server/listen.js';
import { defaultLimits, type Limits, type ServerOptions } from '../server/options.js';
import type { PoolOptions } from '../pool/index.js';
import { parseConnectAddress } from '../client/address.js';
import { parseHttpAddress } from '../gateway/address.js';
import { API_KINDS, type ApiKind } from './adapters.js';

/**
 * How an option's text is read. Every type also accepts the typed value itself, so a config file
 * (issue 5) can feed the same table: `"maxBodyBytes": 1048576` or `"maxBodyBytes": "1M"`.
 * - count: a whole number; bytes: a whole number with an optional k/M/G suffix (powers of 1024);
 * - duration: milliseconds, or a whole number with ms/s/m/h; mode: octal permission bits;
 * - choice: one of `choices`; list: comma-separated, repeatable; address: a listen address, repeatable;
 * - boolean: `--x` / `--no-x` (or `--x=true|false`); action: a flag that makes the command do
 *   something else instead of serving (--help);
 * - text: any non-empty text; path: a file path (in a config file, relative to the file's folder).
 */
export type OptionType = 'boolean' | 'count' | 'bytes' | 'duration' | 'mode' | 'choice' | 'list' | 'address' | 'action' | 'text' | 'path';

/**
 * Where a value goes: the server's Limits, other ServerOptions, the handler's options, the command
 * itself, or the process manager (options that need one: --workers or --pm).
 */
export type OptionScope = 'limits' | 'server' | 'handler' | 'command' | 'pool';

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

/** The headings of --help and docs/cli.md, in order. A group with no option is not shown. */
export const OPTION_GROUPS = ['Application', 'Listening', 'Process manager', 'Status page', 'Limits', 'Logging and shutdown', 'HTTP front', 'Other'] as const;
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
    key: 'validate',
    type: 'boolean',
    scope: 'command',
    group: 'Application',
    default: false,
    description:
      'Run the app under nodefpm/validate: every request checks both sides of the interface (the app\'s output and the web ' +
      "server's params); a broken rule is logged, written to FCGI_STDERR and, when nothing was sent yet, answered 500. " +
      'For development and for trying a web server configuration, not production.',
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
    key: 'reserveFrameworkFields',
    type: 'boolean',
    scope: 'handler',
    group: 'Application',
    default: true,
    description:
      'With --api node: give each request and response, before the app runs, the fields Express and Connect set on them, so ' +
      "that V8 makes no new hidden class per request after Express swaps their prototypes (docs/frameworks.md). " +
      '--no-reserve-framework-fields leaves the objects as Node makes them.',
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
    description: "Permission bits (octal) of the Unix socket files nodefpm creates (php-fpm's listen.mode).",
  },
  {
    key: 'socketOwner',
    type: 'text',
    scope: 'command',
    group: 'Listening',
    placeholder: 'USER',
    defaultText: 'the user nodefpm runs as',
    description: "Owner (user name or uid) of the Unix socket files nodefpm creates (php-fpm's listen.owner). Changing it needs root.",
  },
  {
    key: 'socketGroup',
    type: 'text',
    scope: 'command',
    group: 'Listening',
    placeholder: 'GROUP',
    defaultText: "nodefpm's group",
    description: "Group (name or gid) of the Unix socket files nodefpm creates (php-fpm's listen.group), e.g. the web server's.",
  },
  {
    key: 'listenBacklog',
    type: 'count',
    scope: 'command',
    group: 'Listening',
    min: 1,
    default: 511,
    description: "Connections the kernel queues for accepting (listen(2)'s backlog, php-fpm's listen.backlog); capped by net.core.somaxconn.",
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
  {
    key: 'pm',
    type: 'choice',
    scope: 'pool',
    group: 'Process manager',
    choices: ['none', 'static', 'dynamic', 'ondemand'],
    defaultText: 'static when --workers is given (and not 0), else none',
    description:
      "The process manager, as php-fpm's pm. static: --workers workers; dynamic: between the spare-capacity bounds, up to " +
      '--workers; ondemand: workers started when connections come and stopped when idle; none: serve in this one process, ' +
      'no master. A master opens the sockets once and shares them with its workers; see docs/pool.md.',
  },
  {
    key: 'workers',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 0,
    defaultText: 'the number of CPUs, with --pm static, dynamic or ondemand',
    description:
      "static: the number of workers; dynamic and ondemand: the most at once (php-fpm's pm.max_children). Alone, --workers N " +
      'means --pm static; --workers 0 means no process manager.',
  },
  {
    key: 'startWorkers',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 1,
    defaultText: 'min + (max - min) / 2 of the spare bounds',
    description: "dynamic: workers started with the pool (php-fpm's pm.start_servers).",
  },
  {
    key: 'minSpareWorkers',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 0,
    default: 1,
    description:
      "dynamic: the pool grows when its spare capacity, counted in workers, falls below this (php-fpm's pm.min_spare_servers). " +
      'A worker at load 0.25 has 0.75 to spare; load is defined under --worker-concurrency.',
  },
  {
    key: 'maxSpareWorkers',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 1,
    defaultText: '3, or --workers when that is less',
    description: "dynamic: above this much spare capacity the pool stops an idle worker, one a second (php-fpm's pm.max_spare_servers).",
  },
  {
    key: 'workerIdleTimeout',
    type: 'duration',
    scope: 'pool',
    group: 'Process manager',
    max: MAX_TIMEOUT,
    default: 10_000,
    description: "ondemand: a worker with no request for this long is stopped (php-fpm's pm.process_idle_timeout).",
  },
  {
    key: 'workerConcurrency',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 1,
    default: 100,
    description:
      "Requests one worker is meant to carry at once. A worker's load is the larger of its event-loop utilisation and its " +
      'requests in progress divided by this; what load leaves is spare capacity (dynamic and ondemand size the pool by it).',
  },
  {
    key: 'workerMaxRequests',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 0,
    default: 0,
    description: "Replace a worker after it has served this many FastCGI requests, failing none (php-fpm's pm.max_requests). 0: never.",
  },
  {
    key: 'workerMaxMemory',
    type: 'bytes',
    scope: 'pool',
    group: 'Process manager',
    min: 0,
    default: 0,
    description: 'Replace a worker whose resident memory grows above this, failing no request. 0: never.',
  },
  {
    key: 'requestTimeout',
    type: 'duration',
    scope: 'pool',
    group: 'Process manager',
    max: MAX_TIMEOUT,
    default: 0,
    description:
      "Kill and replace a worker whose event loop stays blocked this long (php-fpm's request_terminate_timeout): its requests " +
      'get 504 where none of their response was sent, else their connection closes; the other workers go on. 0: off.',
  },
  {
    key: 'slowlogTimeout',
    type: 'duration',
    scope: 'pool',
    group: 'Process manager',
    max: MAX_TIMEOUT,
    default: 0,
    description:
      "Log each request that runs longer than this, with the worker's JavaScript stack at that moment (php-fpm's " +
      'request_slowlog_timeout). 0: off.',
  },
  {
    key: 'emergencyRestartThreshold',
    type: 'count',
    scope: 'pool',
    group: 'Process manager',
    min: 0,
    default: 0,
    description: "Restart the whole pool when this many workers crash within --emergency-restart-interval (php-fpm's emergency_restart_threshold). 0: off.",
  },
  {
    key: 'emergencyRestartInterval',
    type: 'duration',
    scope: 'pool',
    group: 'Process manager',
    min: 1,
    max: MAX_TIMEOUT,
    default: 60_000,
    description: "The window of --emergency-restart-threshold (php-fpm's emergency_restart_interval).",
  },
  {
    key: 'user',
    type: 'text',
    scope: 'pool',
    group: 'Process manager',
    placeholder: 'USER',
    defaultText: "the master's user",
    description: "Run the workers as this user (name or uid); the master must run as root (php-fpm's user).",
  },
  {
    key: 'group',
    type: 'text',
    scope: 'pool',
    group: 'Process manager',
    placeholder: 'GROUP',
    defaultText: "the --user's primary group",
    description: "Run the workers with this group (name or gid) (php-fpm's group).",
  },
  {
    key: 'poolName',
    type: 'text',
    scope: 'pool',
    group: 'Process manager',
    placeholder: 'NAME',
    defaultText: "the app module's file name",
    description: "The pool's name on the status page, in the slow log and in the metrics' labels (php-fpm's [pool] section name).",
  },
  {
    key: 'statusPath',
    type: 'text',
    scope: 'pool',
    group: 'Status page',
    placeholder: 'PATH',
    description:
      "Answer requests for this path (REQUEST_URI or SCRIPT_NAME) with the pool's status, before the app (php-fpm's " +
      'pm.status_path): text; ?json, ?xml, ?html, ?openmetrics or ?prometheus (or the Accept header) for the others; ?full ' +
      'adds every worker.',
  },
  {
    key: 'pingPath',
    type: 'text',
    scope: 'pool',
    group: 'Status page',
    placeholder: 'PATH',
    description: "Answer requests for this path with --ping-response, before the app, from whichever worker takes it (php-fpm's ping.path).",
  },
  {
    key: 'pingResponse',
    type: 'text',
    scope: 'pool',
    group: 'Status page',
    placeholder: 'TEXT',
    default: 'pong',
    description: "The body of the ping answer (php-fpm's ping.response).",
  },
  limit('maxConnections', 'count', 'Open connections; beyond it, requests get FCGI_OVERLOADED. Reported as FCGI_MAX_CONNS.'),
  limit('maxRequests', 'count', 'Requests in progress across all connections; beyond it: FCGI_OVERLOADED. Reported as FCGI_MAX_REQS.'),
  limit('maxRequestsPerConnection', 'count', 'Requests in progress on one multiplexed connection; beyond it: FCGI_OVERLOADED.'),
  limit('maxParamsBytes', 'bytes', "Bytes of one request's FastCGI params (the CGI environment, HTTP headers included); beyond it: 431."),
  limit('maxBodyBytes', 'bytes', 'Bytes of one request body; beyond it: 413 (before the handler runs when CONTENT_LENGTH says so).'),
  limit('paramsTimeout', 'duration', 'Time from BEGIN_REQUEST until the params are complete; beyond it: 408. 0 turns it off.'),
  limit('idleTimeout', 'duration', 'Time a connection with no request in progress may stay silent before it is closed. 0 turns it off.'),
  limit('bodyTimeout', 'duration', 'Time an unfinished request body may go without a record from the web server; beyond it: 408. 0 turns it off.'),
  limit('abortTimeout', 'duration', 'After FCGI_ABORT_REQUEST, the time the handler has to finish before END_REQUEST is sent without it.'),
  limit('inputHighWaterMark', 'bytes', 'Body bytes buffered for one request before nodefpm stops reading its connection (input backpressure).'),
  limit(
    'outputHighWaterMark',
    'bytes',
    'Bytes queued on a connection above which res.write() returns false until drain (output backpressure).',
    16 * KIB,
  ),
  limit(
    'maxReadBuffers',
    'count',
    'Connections that may read into a buffer of their own (64 to 128 KiB), so that large body chunks a handler keeps are not copied; the others share one.',
    0,
  ),
  {
    key: 'tuneMalloc',
    type: 'boolean',
    scope: 'server',
    group: 'Limits',
    default: true,
    description:
      "Raise glibc malloc's trim threshold to 32 MiB in a serving process once its handlers keep body chunks, so that the read " +
      'buffers those chunks are handed are not returned to the kernel and faulted in again at every GC (up to 32 MiB freed ' +
      'stay with the process). ' +
      '--no-tune-malloc leaves malloc as it is.',
  },
  {
    key: 'logLevel',
    type: 'choice',
    scope: 'command',
    group: 'Logging and shutdown',
    choices: LOG_LEVELS,
    default: 'info',
    description: 'Least severe log lines written to the error log. debug also prints the stack of a start-up error.',
  },
  {
    key: 'errorLog',
    type: 'path',
    scope: 'command',
    group: 'Logging and shutdown',
    placeholder: 'FILE',
    defaultText: 'stderr',
    description:
      "Append the log, and every line the workers print (stamped with their pid), to this file (php-fpm's error_log). SIGUSR1 " +
      'reopens it.',
  },
  {
    key: 'accessLog',
    type: 'path',
    scope: 'pool',
    group: 'Logging and shutdown',
    placeholder: 'FILE',
    description: "Append one line per request to this file (php-fpm's access.log). SIGUSR1 reopens it.",
  },
  {
    key: 'accessFormat',
    type: 'text',
    scope: 'pool',
    group: 'Logging and shutdown',
    placeholder: 'FORMAT',
    default: 'common',
    description:
      'The access log line: common (the Common Log Format), combined, json (one JSON object per line), php-fpm, or a template ' +
      "of php-fpm's access.format placeholders (%R %u %t %m %r %q %s %b %d %{NAME}e ...; docs/pool.md).",
  },
  {
    key: 'slowlog',
    type: 'path',
    scope: 'pool',
    group: 'Logging and shutdown',
    placeholder: 'FILE',
    defaultText: 'the error log',
    description: "Where --slowlog-timeout writes slow requests and their stacks (php-fpm's slowlog). SIGUSR1 reopens it.",
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
      'A second signal exits at once with 1. With a pool, also how long a worker being replaced (reload, recycling) may take ' +
      "to drain (php-fpm's process_control_timeout); SIGQUIT waits with no limit.",
  },
  {
    key: 'http',
    type: 'text',
    scope: 'command',
    group: 'HTTP front',
    placeholder: 'HOST:PORT',
    description:
      'Also serve HTTP on HOST:PORT ([IPv6]:PORT, unix:/path), forwarding each request over FastCGI (kept-alive connections) to ' +
      'the app, or to --upstream: try an app with no web server installed. Without --listen, the app then listens on a private ' +
      'Unix socket in a temporary folder.',
  },
  {
    key: 'upstream',
    type: 'text',
    scope: 'command',
    group: 'HTTP front',
    placeholder: 'ADDR',
    description:
      'Serve no app module: forward the --http requests to the FastCGI server at ADDR (unix:/path, /path, HOST:PORT, ' +
      '[IPv6]:PORT), PHP-FPM included.',
  },
  {
    key: 'documentRoot',
    type: 'path',
    scope: 'command',
    group: 'HTTP front',
    placeholder: 'DIR',
    description:
      'The HTTP front\'s DOCUMENT_ROOT. With --upstream it also turns on script mode, as nginx in front of PHP-FPM: a path ' +
      'naming a .php file runs it (SCRIPT_FILENAME under DIR, PATH_INFO split off), other files under DIR are served as they are.',
  },
  {
    key: 'frontController',
    type: 'text',
    scope: 'command',
    group: 'HTTP front',
    placeholder: 'PATH',
    description:
      "In script mode, the script run for a path that names no file (nginx's try_files $uri $uri/ /index.php?$query_string): " +
      'for example /index.php.',
  },
  {
    key: 'httpConnections',
    type: 'count',
    scope: 'command',
    group: 'HTTP front',
    min: 1,
    default: 32,
    description: 'FastCGI connections the HTTP front keeps open to the app or upstream; HTTP requests beyond that many at once wait in line.',
  },
  {
    key: 'config',
    type: 'path',
    scope: 'command',
    group: 'Other',
    placeholder: 'FILE',
    description:
      "Read options from FILE: JSON ({\"workers\": 4, \"listen\": \"/run/app.sock\"}) or, for any other extension, an ini file " +
      "(workers = 4), keys named as the options (camelCase or kebab-case) or as php-fpm's directives (pm.max_children); " +
      'the key app names the app module. The command line overrides the file. SIGHUP re-reads it.',
  },
  { key: 'help', type: 'action', scope: 'command', group: 'Other', short: 'h', description: 'Print this help and exit.' },
  { key: 'version', type: 'action', scope: 'command', group: 'Other', short: 'v', description: "Print nodefpm's version and exit." },
];

/** The process manager's part of the settings: only the options given (the pool fills in its defaults), pm always. */
export type PoolSettings = Omit<PoolOptions, 'setup' | 'listen' | 'server' | 'closeTimeout' | 'socketMode' | 'socketOwner' | 'socketGroup' | 'listenBacklog' | 'errorLog' | 'logLevel'> & {
  pm: NonNullable<PoolOptions['pm']>;
};

/** The settings the command runs with, every default applied (limits left to the server's own defaults). */
export interface Settings {
  api: ApiKind | undefined;
  /** Serve the app under the validator (--validate). */
  validate: boolean;
  /** Empty: use what the process inherited (systemd sockets, fd 0). */
  listen: ListenAddress[];
  socketMode: number;
  socketOwner: string | undefined;
  socketGroup: string | undefined;
  listenBacklog: number;
  logLevel: LogLevel;
  errorLog: string | undefined;
  closeTimeout: number;
  /** Only the options given; the server fills in the rest (see defaultLimits). */
  server: ServerOptions;
  /** Every adapter's options: the native and fetch handlers' and the Node adapter's (reserveFrameworkFields). */
  handler: HandlerOptions & NodeAdapterOptions;
  /** The process manager, or null to serve in this one process (--pm none, or neither --pm nor --workers). */
  pool: PoolSettings | null;
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
    case 'text':
    case 'path': {
      if (typeof raw !== 'string' && typeof raw !== 'number') throw invalid(origin, `expected text, got ${typeof raw}`);
      const text = String(raw);
      if (text.trim() === '') throw invalid(origin, 'expected a value, got nothing');
      if ((spec.key === 'statusPath' || spec.key === 'pingPath' || spec.key === 'frontController') && !text.startsWith('/')) {
        throw invalid(origin, `expected a path starting with /, got ${JSON.stringify(text)}`);
      }
      // Addresses are checked here, so a mistyped one stops the command before anything starts.
      try {
        if (spec.key === 'http') parseHttpAddress(text);
        if (spec.key === 'upstream') parseConnectAddress(text);
      } catch (error) {
        throw invalid(origin, isNodefpmError(error) ? error.message : String(error), error);
      }
      return text;
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

export function suggestion(name: string): string {
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
  const parsed = parseArguments(argv);
  return { ...parsed, settings: resolveSettings(parsed.values) };
}

/** The command line as given, before defaults and before a config file is merged under it. */
export type ParsedArguments = Omit<CommandLine, 'settings'>;

/** parseCommandLine without resolving the settings (a config file's values may still come under these). */
export function parseArguments(argv: readonly string[]): ParsedArguments {
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
  };
}

/** Which process manager the values ask for: --pm, else static when --workers is above 0, else none. */
function poolMode(values: ReadonlyMap<string, OptionValue>): PoolSettings['pm'] | null {
  const pm = values.get('pm') as string | undefined;
  const workers = values.get('workers') as number | undefined;
  if (pm === 'none') {
    if (workers !== undefined && workers > 0) throw usage(`--workers ${workers} needs a process manager, but --pm is none`);
    return null;
  }
  if (pm !== undefined) {
    if (workers === 0) throw invalid('--workers', `must be at least 1 with --pm ${pm}`);
    return pm as PoolSettings['pm'];
  }
  return workers !== undefined && workers > 0 ? 'static' : null;
}

/**
 * Applies the defaults to the values given and sorts them into the parts of the program they configure.
 * Throws NODEFPM_USAGE for a pool option without a pool.
 */
export function resolveSettings(values: ReadonlyMap<string, OptionValue>): Settings {
  const server: Record<string, unknown> = {};
  const handler: Record<string, unknown> = {};
  const pm = poolMode(values);
  const pool: Record<string, unknown> = { pm };
  for (const spec of OPTIONS) {
    const value = values.get(spec.key);
    if (value === undefined) continue;
    if (spec.scope === 'limits' || spec.scope === 'server') server[spec.key] = value;
    else if (spec.scope === 'handler') handler[spec.key] = value;
    else if (spec.scope === 'pool' && spec.key !== 'pm') {
      if (pm === null && !(spec.key === 'workers' && value === 0)) {
        throw usage(
          `--${flagOf(spec)} needs a process manager: add --workers N (or --pm static|dynamic|ondemand); ` +
            'without one nodefpm serves in this single process',
        );
      }
      if (spec.key !== 'workers' || value !== 0) pool[spec.key] = value;
    }
  }
  const valueOf = <T>(key: string): T => (values.get(key) ?? optionSpec(key)!.default) as T;
  return {
    api: values.get('api') as ApiKind | undefined,
    validate: valueOf<boolean>('validate'),
    listen: [...((values.get('listen') as readonly ListenAddress[] | undefined) ?? [])],
    socketMode: valueOf<number>('socketMode'),
    socketOwner: values.get('socketOwner') as string | undefined,
    socketGroup: values.get('socketGroup') as string | undefined,
    listenBacklog: valueOf<number>('listenBacklog'),
    logLevel: valueOf<LogLevel>('logLevel'),
    errorLog: values.get('errorLog') as string | undefined,
    closeTimeout: valueOf<number>('closeTimeout'),
    server: server as ServerOptions,
    handler: handler as HandlerOptions & NodeAdapterOptions,
    pool: pm === null ? null : (pool as PoolSettings),
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
  return { count: 'N', bytes: 'BYTES', duration: 'TIME', mode: 'MODE', list: 'LIST', address: 'ADDR', text: 'TEXT', path: 'FILE' }[spec.type as string] ?? 'VALUE';
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
  [0, 'stopped by SIGTERM, SIGINT or SIGQUIT after in-flight requests finished (or --help, --version)'],
  [
    1,
    'the app module could not be loaded, the server or the pool failed (an address in use, workers that cannot start), or a ' +
      'second signal cut the graceful stop short',
  ],
  [2, 'a bad command line or config file: an unknown option, a bad value, no app module, or nothing to listen on'],
];

/** The signals, for --help and docs/cli.md. */
export const SIGNALS: ReadonlyArray<readonly [string, string]> = [
  ['SIGTERM or SIGINT', 'stop accepting connections, let requests in progress finish (up to --close-timeout), exit 0. A second one: exit 1 at once.'],
  ['SIGQUIT', 'the same graceful stop, with no time limit: every request in progress finishes.'],
  ['SIGHUP or SIGUSR2', 'with a pool: reload. Re-read --config, start new workers with the app module imported afresh, then drain the old ones; no request fails.'],
  ['SIGUSR1', 'reopen the log files (--error-log, --access-log, --slowlog), after a log rotator moved them.'],
];

/** The text of --help: usage, then every option of OPTIONS by group with its default, then exit statuses and signals. */
export function helpText(width = 100): string {
  const out = [
    `Usage: ${USAGE}`,
    '',
    wrap(
      "Serves the app module's default export over FastCGI: in one process, or, with --workers or --pm, in a pool of worker " +
        'processes behind a master, as PHP-FPM does. The module is a path relative to the working directory: .js, .mjs, .cjs, ' +
        'or .ts/.mts/.cts when tsx is installed (next to the app or with nodefpm).',
      width,
      '',
    ),
  ];
  for (const group of OPTION_GROUPS) {
    const specs = OPTIONS.filter((option) => option.group === group);
    if (specs.length === 0) continue;
    out.push('', `${group}:`);
    for (const spec of specs) {
      out.push(`  ${synopsisOf(spec)}`);
      const fallback = defaultOf(spec);
      out.push(wrap(fallback === undefined ? spec.description : `${spec.description} Default: ${fallback}.`, width, '      '));
    }
  }
  out.push('', 'Exit status:');
  for (const [code, meaning] of EXIT_CODES) out.push(`  ${code}${wrap(meaning, width, '     ').slice(3)}`);
  out.push('', 'Signals:');
  for (const [signals, meaning] of SIGNALS) out.push(wrap(`${signals}: ${meaning}`, width, '  '));
  out.push(
    '',
    'See docs/cli.md for launching nodefpm from spawn-fcgi, nginx, Apache, lighttpd, h2o and systemd,',
    'and docs/pool.md for the process manager.',
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
    const specs = OPTIONS.filter((option) => option.group === group);
    if (specs.length === 0) continue;
    rows.push(`| **${group}** | | |`);
    for (const spec of specs) {
      rows.push(`| \`${escapeCell(synopsisOf(spec))}\` | ${escapeCell(defaultOf(spec) ?? '')} | ${escapeCell(spec.description)} |`);
    }
  }
  return `${rows.join('\n')}\n`;
}
