// The pool's options: one interface with php-fpm's knobs, their defaults, and the checks that reject impossible combinations.

import { availableParallelism } from 'node:os';
import { basename, extname } from 'node:path';
import { NodefpmError } from '../errors.js';
import type { LogLevel } from '../log.js';
import { parseListenAddress, type ListenAddress } from '../server/listen.js';
import { accessFormatter } from './access-log.js';
import type { LogSink } from './log-file.js';
import type { WorkerServerOptions, WorkerSetupSpec } from './messages.js';

export const POOL_MODES = ['static', 'dynamic', 'ondemand'] as const;
export type PoolMode = (typeof POOL_MODES)[number];

/**
 * The pool's options. Times in milliseconds (0 turns a timeout off), sizes in bytes. docs/pool.md
 * describes each one beside its php-fpm counterpart.
 */
export interface PoolOptions {
  /** What each worker runs: a module exporting setupWorker(context) (src/cli/worker-setup.ts serves an app module). */
  setup: WorkerSetupSpec;
  /** Where to accept FastCGI connections: every form --listen takes, inherited fds and systemd sockets included. */
  listen: ReadonlyArray<string | ListenAddress>;
  /** php-fpm's pm. Default static. */
  pm?: PoolMode;
  /** static: the number of workers; dynamic and ondemand: the most at once (php-fpm pm.max_children). Default: the number of CPUs. */
  workers?: number;
  /** dynamic: workers at start (pm.start_servers). Default minSpare + (maxSpare - minSpare) / 2. */
  startWorkers?: number;
  /** dynamic: spare capacity to keep, in workers (pm.min_spare_servers / pm.max_spare_servers). Defaults 1 and 3 (at most workers). */
  minSpareWorkers?: number;
  maxSpareWorkers?: number;
  /** ondemand: a worker with no request for this long is stopped (pm.process_idle_timeout). Default 10 s. */
  workerIdleTimeout?: number;
  /** Requests a worker is meant to carry at once: its load is max(event-loop utilisation, active / this). Default 100. */
  workerConcurrency?: number;
  /** A worker is replaced after this many requests (pm.max_requests). Default 0: never. */
  workerMaxRequests?: number;
  /** A worker is replaced when its resident memory exceeds this. Default 0: never. */
  workerMaxMemory?: number;
  /** A worker whose event loop is blocked this long is killed and replaced (request_terminate_timeout). Default 0: off. */
  requestTimeout?: number;
  /** A request running this long is logged with the worker's JavaScript stack (request_slowlog_timeout). Default 0: off. */
  slowlogTimeout?: number;
  /** The slow log file (slowlog). Default: the error log. */
  slowlog?: string | null;
  /** This many worker crashes within emergencyRestartInterval restart the pool (emergency_restart_threshold). Default 0: off. */
  emergencyRestartThreshold?: number;
  emergencyRestartInterval?: number;
  /** How long a graceful stop, a reload or a recycle lets requests run before aborting them. Default 30 s. */
  closeTimeout?: number;
  /** Unix socket mode, owner and group (listen.mode, listen.owner, listen.group). */
  socketMode?: number;
  socketOwner?: string;
  socketGroup?: string;
  /** listen(2) backlog (listen.backlog). Default 511. */
  listenBacklog?: number;
  /** The FastCGI server options of every worker (limits, multiplexing, allowed clients). */
  server?: WorkerServerOptions;
  /** The status page and ping paths (pm.status_path, ping.path, ping.response). */
  statusPath?: string | null;
  pingPath?: string | null;
  pingResponse?: string;
  /** The pool's name on the status page and in the logs. Default: the app module's file name, else "www". */
  poolName?: string;
  /** Access log file and format (access.log, access.format): common, combined, php-fpm, json or a % template. */
  accessLog?: string | null;
  accessFormat?: string;
  /** The error log file (error_log): the master's log and the workers' output. Default: stderr. */
  errorLog?: string | null;
  /** Where the master logs instead (shared with its caller, which opened the error log already); reopenLogs() reopens it. */
  logSink?: LogSink;
  logLevel?: LogLevel;
  /** Run the workers as this user and group (user, group); needs a master running as root. */
  user?: string;
  group?: string;
  /** The workers' environment. Default: the master's. */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds between worker heartbeats. Default 1000. */
  heartbeatInterval?: number;
  /** How long a new worker may take to load the app and accept. Default 60 s. */
  startTimeout?: number;
  /** Node options for the worker processes (`--max-old-space-size=512`, `--cpu-prof`), before the pool's own. Default none. */
  workerExecArgv?: readonly string[];
}

export interface ResolvedPoolOptions {
  setup: WorkerSetupSpec;
  listen: ListenAddress[];
  pm: PoolMode;
  workers: number;
  startWorkers: number;
  minSpareWorkers: number;
  maxSpareWorkers: number;
  workerIdleTimeout: number;
  workerConcurrency: number;
  workerMaxRequests: number;
  workerMaxMemory: number;
  requestTimeout: number;
  slowlogTimeout: number;
  slowlog: string | null;
  emergencyRestartThreshold: number;
  emergencyRestartInterval: number;
  closeTimeout: number;
  socketMode: number;
  socketOwner: string | undefined;
  socketGroup: string | undefined;
  listenBacklog: number;
  server: WorkerServerOptions;
  statusPath: string | null;
  pingPath: string | null;
  pingResponse: string;
  poolName: string;
  accessLog: string | null;
  accessFormat: string;
  errorLog: string | null;
  logLevel: LogLevel;
  user: string | undefined;
  group: string | undefined;
  env: NodeJS.ProcessEnv;
  heartbeatInterval: number;
  startTimeout: number;
  workerExecArgv: string[];
}

function invalid(message: string): NodefpmError {
  return new NodefpmError('NODEFPM_INVALID_OPTION', message);
}

/** An option as both its users know it: `maxSpareWorkers (--max-spare-workers)`. */
function named(key: string): string {
  return `${key} (--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)})`;
}

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw invalid(`pool option ${named(name)} must be an integer >= ${min}, got ${String(value)}`);
  return value;
}

function path(name: string, value: string | null | undefined): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (!value.startsWith('/')) throw invalid(`pool option ${named(name)} must be a path starting with /, got ${JSON.stringify(value)}`);
  return value;
}

function defaultPoolName(setup: WorkerSetupSpec): string {
  const app = (setup.options as { app?: unknown } | undefined)?.app;
  if (typeof app !== 'string' || app === '') return 'www';
  return basename(app, extname(app));
}

/** Applies the defaults and checks every option; throws NODEFPM_INVALID_OPTION naming the bad one. */
export function resolvePoolOptions(options: PoolOptions): ResolvedPoolOptions {
  if (options.setup === undefined || typeof options.setup.module !== 'string') throw invalid('pool option setup.module is required: the module workers run');
  const listen = options.listen.map((address) => (typeof address === 'string' ? parseListenAddress(address) : address));
  if (listen.length === 0) throw invalid('pool option listen needs at least one address');
  const pm = options.pm ?? 'static';
  if (!POOL_MODES.includes(pm)) throw invalid(`pool option pm must be one of ${POOL_MODES.join(', ')}, got ${JSON.stringify(pm)}`);
  const workers = count('workers', options.workers, availableParallelism(), 1);
  // php-fpm's usual 1 and 3, but never more than the pool may hold (a two-CPU machine's default --workers is 2).
  const minSpareWorkers = count('minSpareWorkers', options.minSpareWorkers, 1, 0);
  const maxSpareWorkers = count('maxSpareWorkers', options.maxSpareWorkers, Math.max(minSpareWorkers, Math.min(3, workers)), 1);
  if (pm === 'dynamic') {
    if (minSpareWorkers > maxSpareWorkers) throw invalid(`pool option ${named('minSpareWorkers')}, ${minSpareWorkers}, must not exceed ${named('maxSpareWorkers')}, ${maxSpareWorkers}`);
    if (maxSpareWorkers > workers) throw invalid(`pool option ${named('maxSpareWorkers')}, ${maxSpareWorkers}, must not exceed ${named('workers')}, ${workers}, the most workers the pool may run`);
  }
  const startDefault = Math.min(workers, Math.max(1, minSpareWorkers + Math.floor((maxSpareWorkers - minSpareWorkers) / 2)));
  const startWorkers = count('startWorkers', options.startWorkers, startDefault, 1);
  if (pm === 'dynamic' && startWorkers > workers) throw invalid(`pool option ${named('startWorkers')}, ${startWorkers}, must not exceed ${named('workers')}, ${workers}`);
  const statusPath = path('statusPath', options.statusPath);
  const pingPath = path('pingPath', options.pingPath);
  if (statusPath !== null && statusPath === pingPath) throw invalid(`the status path and the ping path must differ, both are ${statusPath}`);
  const accessFormat = options.accessFormat ?? 'common';
  accessFormatter(accessFormat);
  const duration = (name: string, value: number | undefined, fallback: number): number => count(name, value, fallback, 0);
  return {
    setup: options.setup,
    listen,
    pm,
    workers,
    startWorkers,
    minSpareWorkers,
    maxSpareWorkers,
    workerIdleTimeout: duration('workerIdleTimeout', options.workerIdleTimeout, 10_000),
    workerConcurrency: count('workerConcurrency', options.workerConcurrency, 100, 1),
    workerMaxRequests: count('workerMaxRequests', options.workerMaxRequests, 0, 0),
    workerMaxMemory: count('workerMaxMemory', options.workerMaxMemory, 0, 0),
    requestTimeout: duration('requestTimeout', options.requestTimeout, 0),
    slowlogTimeout: duration('slowlogTimeout', options.slowlogTimeout, 0),
    slowlog: options.slowlog ?? null,
    emergencyRestartThreshold: count('emergencyRestartThreshold', options.emergencyRestartThreshold, 0, 0),
    emergencyRestartInterval: duration('emergencyRestartInterval', options.emergencyRestartInterval, 60_000),
    closeTimeout: duration('closeTimeout', options.closeTimeout, 30_000),
    socketMode: options.socketMode ?? 0o660,
    socketOwner: options.socketOwner,
    socketGroup: options.socketGroup,
    listenBacklog: count('listenBacklog', options.listenBacklog, 511, 1),
    server: options.server ?? {},
    statusPath,
    pingPath,
    pingResponse: options.pingResponse ?? 'pong',
    poolName: options.poolName ?? defaultPoolName(options.setup),
    accessLog: options.accessLog ?? null,
    accessFormat,
    errorLog: options.errorLog ?? null,
    logLevel: options.logLevel ?? 'info',
    user: options.user,
    group: options.group,
    env: options.env ?? process.env,
    heartbeatInterval: count('heartbeatInterval', options.heartbeatInterval, 1000, 10),
    startTimeout: count('startTimeout', options.startTimeout, 60_000, 100),
    workerExecArgv: [...(options.workerExecArgv ?? [])],
  };
}
