// The config file (--config): JSON or a php-fpm-style ini, read through the same option table as the command line.

import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { NodefpmError, isNodefpmError } from '../errors.js';
import type { ListenAddress } from '../server/listen.js';
import {
  OPTIONS,
  coerceOption,
  flagOf,
  parseArguments,
  resolveSettings,
  suggestion,
  type CommandLine,
  type OptionSpec,
  type OptionValue,
} from './options.js';

/** What a config file says: option values by key, the app module, and directives it ignored. */
export interface ConfigFile {
  path: string;
  values: Map<string, OptionValue>;
  /** The `app` key, resolved against the file's folder. */
  app: string | undefined;
  /** php-fpm directives with no meaning for nodefpm, named so the user knows they were read and ignored. */
  ignored: string[];
}

/**
 * php-fpm's directives, accepted in a config file so a pool file can be brought over as it is. Their
 * times are seconds when they have no unit, as in php-fpm (pm.process_idle_timeout = 10).
 */
export const PHP_FPM_DIRECTIVES: Readonly<Record<string, string>> = {
  pm: 'pm',
  'pm.max_children': 'workers',
  'pm.start_servers': 'startWorkers',
  'pm.min_spare_servers': 'minSpareWorkers',
  'pm.max_spare_servers': 'maxSpareWorkers',
  'pm.process_idle_timeout': 'workerIdleTimeout',
  'pm.max_requests': 'workerMaxRequests',
  'pm.status_path': 'statusPath',
  'ping.path': 'pingPath',
  'ping.response': 'pingResponse',
  listen: 'listen',
  'listen.owner': 'socketOwner',
  'listen.group': 'socketGroup',
  'listen.mode': 'socketMode',
  'listen.backlog': 'listenBacklog',
  'listen.allowed_clients': 'allowedClients',
  request_terminate_timeout: 'requestTimeout',
  request_slowlog_timeout: 'slowlogTimeout',
  slowlog: 'slowlog',
  'access.log': 'accessLog',
  'access.format': 'accessFormat',
  error_log: 'errorLog',
  log_level: 'logLevel',
  user: 'user',
  group: 'group',
  emergency_restart_threshold: 'emergencyRestartThreshold',
  emergency_restart_interval: 'emergencyRestartInterval',
  process_control_timeout: 'closeTimeout',
};

/** php-fpm directives that nodefpm reads and ignores (they configure PHP, or things Node or the init system does). */
const IGNORED = /^(php_(admin_)?(value|flag)\[|env\[|include$|pid$|daemonize$|events\.mechanism$|syslog\.|rlimit_|process\.|process_max$|systemd_interval$|catch_workers_output$|decorate_workers_output$|clear_env$|security\.limit_extensions$|chroot$|chdir$|access\.suppress_path|request_terminate_timeout_track_finished$|request_slowlog_trace_depth$|log_limit$|log_buffering$|listen\.acl_|pm\.status_listen$|pm\.max_spawn_rate$|log_(level|limit)?$)/;

const PHP_LOG_LEVELS: Record<string, string> = { alert: 'error', error: 'error', warning: 'warn', notice: 'info', debug: 'debug' };

/** Keys a config file may not set. */
const COMMAND_ONLY = new Set(['config', 'help', 'version']);

function problem(file: string, message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', `${file}: ${message}`);
}

function specFor(key: string): OptionSpec | undefined {
  return OPTIONS.find((spec) => spec.key === key || flagOf(spec) === key);
}

function isRepeatable(spec: OptionSpec): boolean {
  return spec.type === 'list' || spec.type === 'address';
}

/** Resolves relative file paths (and relative Unix socket paths) against the config file's folder. */
function anchor(spec: OptionSpec, value: OptionValue, base: string): OptionValue {
  if (spec.type === 'path' && typeof value === 'string') return isAbsolute(value) ? value : resolve(base, value);
  if (spec.type === 'address' && Array.isArray(value)) {
    return (value as readonly ListenAddress[]).map((address) =>
      address.kind === 'unix' && !isAbsolute(address.path) ? { kind: 'unix' as const, path: resolve(base, address.path) } : address,
    );
  }
  return value;
}

class Collector {
  readonly values = new Map<string, OptionValue>();
  readonly ignored: string[] = [];
  app: string | undefined;
  readonly #file: string;
  readonly #base: string;

  constructor(file: string) {
    this.#file = file;
    this.#base = dirname(file);
  }

  set(rawKey: string, raw: unknown, where: string): void {
    const key = rawKey.trim();
    if (key === 'app') {
      if (typeof raw !== 'string' || raw.trim() === '') throw problem(this.#file, `${where}app: expected the app module's path`);
      this.app = resolve(this.#base, raw.trim());
      return;
    }
    const directive = PHP_FPM_DIRECTIVES[key];
    if (directive === undefined && IGNORED.test(key)) {
      this.ignored.push(key);
      return;
    }
    const spec = specFor(directive ?? key);
    if (spec === undefined) {
      throw problem(this.#file, `${where}unknown option ${JSON.stringify(key)}${suggestion(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))}`);
    }
    if (COMMAND_ONLY.has(spec.key)) throw problem(this.#file, `${where}${key} belongs on the command line, not in a config file`);
    let value = raw;
    if (directive !== undefined && typeof raw === 'string') {
      // php-fpm's own units: bare times are seconds, log levels have their own names.
      if (spec.type === 'duration' && /^\s*\d+\s*$/.test(raw)) value = `${raw.trim()}s`;
      if (spec.key === 'logLevel') value = PHP_LOG_LEVELS[raw.trim().toLowerCase()] ?? raw;
      if (spec.key === 'pm' && raw.trim() === 'static') value = 'static';
    }
    if (Array.isArray(value) && !isRepeatable(spec)) throw problem(this.#file, `${where}${key} takes one value, got a list`);
    let coerced: OptionValue;
    try {
      coerced = anchor(spec, coerceOption(spec, value, `${this.#file}: ${where}${key}`), this.#base);
    } catch (error) {
      if (isNodefpmError(error)) throw error;
      throw problem(this.#file, `${where}${key}: ${(error as Error).message}`);
    }
    const previous = this.values.get(spec.key);
    if (isRepeatable(spec) && Array.isArray(previous)) this.values.set(spec.key, [...previous, ...(coerced as readonly unknown[])] as OptionValue);
    else this.values.set(spec.key, coerced);
  }
}

function parseJson(file: string, text: string): Collector {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw problem(file, `not valid JSON: ${(error as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw problem(file, 'expected a JSON object of options');
  const collector = new Collector(file);
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) collector.set(key, value, '');
  return collector;
}

function unquote(value: string): string {
  const trimmed = value.trim();
  if (trimmed.length >= 2 && ((trimmed.startsWith('"') && trimmed.endsWith('"')) || (trimmed.startsWith("'") && trimmed.endsWith("'")))) {
    return trimmed.slice(1, -1);
  }
  return trimmed;
}

/** An ini file as php-fpm's pool files are written: `key = value`, `;` or `#` comment lines, `[section]` headers. */
function parseIni(file: string, text: string): Collector {
  const collector = new Collector(file);
  let pool: string | undefined;
  text.split(/\r?\n/).forEach((line, index) => {
    const where = `line ${index + 1}: `;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) return;
    const section = /^\[([^\]]+)\]$/.exec(trimmed);
    if (section !== null) {
      const name = section[1]!.trim();
      if (name === 'global') return;
      if (pool !== undefined) {
        throw problem(file, `${where}a second pool [${name}] after [${pool}]: one nodefpm runs one pool; start one per pool`);
      }
      pool = name;
      return;
    }
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw problem(file, `${where}expected key = value, got ${JSON.stringify(trimmed)}`);
    collector.set(trimmed.slice(0, eq), unquote(trimmed.slice(eq + 1)), where);
  });
  // php-fpm names a pool by its section: [www].
  if (pool !== undefined && !collector.values.has('poolName')) collector.values.set('poolName', pool);
  return collector;
}

/** Reads a config file: JSON when it ends in .json, an ini file otherwise. Throws NODEFPM_INVALID_OPTION naming the file and line. */
export function readConfigFile(path: string, cwd: string): ConfigFile {
  const file = resolve(cwd, path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw problem(file, code === 'ENOENT' ? 'no such file' : `cannot read it: ${(error as Error).message}`);
  }
  const collector = extname(file).toLowerCase() === '.json' ? parseJson(file, text) : parseIni(file, text);
  return { path: file, values: collector.values, app: collector.app, ignored: collector.ignored };
}

/** The command to run: the command line over the config file it names (--config), resolved. */
export interface Command extends CommandLine {
  /** The config file read, if any. */
  config: ConfigFile | null;
}

/**
 * Parses argv, reads the config file it names, and resolves the settings with the command line over
 * the file (a repeatable option given on the command line replaces the file's list). Throws
 * NODEFPM_USAGE or NODEFPM_INVALID_OPTION.
 */
export function loadCommand(argv: readonly string[], cwd: string): Command {
  const parsed = parseArguments(argv);
  const configPath = parsed.values.get('config') as string | undefined;
  if (configPath === undefined || parsed.help || parsed.version) {
    return { ...parsed, settings: resolveSettings(parsed.values), config: null };
  }
  const config = readConfigFile(configPath, cwd);
  const values = new Map(config.values);
  for (const [key, value] of parsed.values) values.set(key, value);
  return { ...parsed, app: parsed.app ?? config.app, values, settings: resolveSettings(values), config };
}
