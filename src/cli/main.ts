// The nodefpm command: reads argv and the config file, loads the app, serves it in one process or a pool, and handles the signals.

import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { NodefpmError, isNodefpmError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { createPool, LogFile, type Pool, type PoolOptions } from '../pool/index.js';
import { formatListenAddress, stdinIsSocket, systemdSockets, type ListenAddress } from '../server/listen.js';
import { FcgiServer } from '../server/server.js';
import { groupId, userId } from '../pool/users.js';
import { chown } from 'node:fs/promises';
import { describeKind, servedHandlerFor } from './adapters.js';
import { loadApp, type LoadedApp } from './app.js';
import { loadCommand, type Command } from './config.js';
import { startFronts, stopFronts, type RunningFront } from './fronts.js';
import { checkFrontOptions, wantsHttpFront } from './http-front.js';
import { helpText, USAGE, type Settings } from './options.js';
import { appSetup } from './worker-setup.js';

/** Exit statuses (docs/cli.md and --help list them from EXIT_CODES in options.ts). */
export const ExitCode = { Ok: 0, Failure: 1, Usage: 2 } as const;

/** What the command touches outside itself, so tests can run it in process. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Ends the process at once (a second signal). */
  exit(code: number): void;
  /** Subscribes to `signals` (default SIGTERM and SIGINT); returns the unsubscribe function. */
  onSignal(listener: (signal: NodeJS.Signals) => void, signals?: readonly NodeJS.Signals[]): () => void;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function processIo(): CommandIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    exit: (code) => process.exit(code),
    onSignal(listener, signals = STOP_SIGNALS) {
      for (const signal of signals) process.on(signal, listener);
      return () => {
        for (const signal of signals) process.off(signal, listener);
      };
    },
  };
}

/** Codes that mean the command line (or the way nodefpm was started) is wrong, not the app or the machine. */
const USAGE_CODES = new Set(['NODEFPM_USAGE', 'NODEFPM_INVALID_OPTION', 'NODEFPM_NO_LISTENER']);

/** Node's timers hold at most 2^31-1 ms: "no time limit" for a graceful stop (SIGQUIT). */
const NO_LIMIT = 2_147_483_647;

const LISTEN_HINT = [
  'Pass --listen ADDR, one of:',
  '  --listen unix:/run/app.sock     a Unix socket (also /run/app.sock)',
  '  --listen 127.0.0.1:9000         TCP: HOST:PORT or [IPv6]:PORT',
  '  --listen fd:N                   a listening socket inherited on file descriptor N',
  '  --listen systemd[:NAME]         a socket from systemd socket activation (LISTEN_FDS)',
  'or let a launcher hand nodefpm a listening socket on fd 0, as web servers do:',
  '  spawn-fcgi -n -s /run/app.sock -- nodefpm app.js',
].join('\n');

/** nodefpm's version, from the package.json of the checkout or install the running bin belongs to. */
export function packageVersion(): string {
  try {
    let dir = dirname(realpathSync(process.argv[1] ?? ''));
    for (;;) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'nodefpm' && typeof pkg.version === 'string') return pkg.version;
      } catch {
        // No package.json here: keep walking up.
      }
      const parent = dirname(dir);
      if (parent === dir) return 'unknown';
      dir = parent;
    }
  } catch {
    return 'unknown';
  }
}

/** The addresses to listen on when --listen is absent: every socket systemd passed, else fd 0 when it is a socket. */
function inheritedAddresses(env: NodeJS.ProcessEnv): Array<{ address: ListenAddress; label: string }> {
  const systemd = systemdSockets(env);
  if (systemd.length > 0) return systemd.map(({ fd, name }) => ({ address: { kind: 'fd', fd }, label: `systemd socket ${name}` }));
  if (stdinIsSocket()) return [{ address: { kind: 'fd', fd: 0 }, label: 'the socket on fd 0' }];
  return [];
}

function requests(count: number): string {
  return `${count} request${count === 1 ? '' : 's'}`;
}

function exitCodeFor(error: unknown): number {
  return isNodefpmError(error) && USAGE_CODES.has(error.code) ? ExitCode.Usage : ExitCode.Failure;
}

/** What every way of serving needs: the command, where to listen, the log. */
interface Context {
  command: Command;
  settings: Settings;
  targets: Array<{ address: ListenAddress; label: string }>;
  logger: Logger;
  /** The error log file, when --error-log names one (stderr otherwise). */
  sink: LogFile | null;
  io: CommandIo;
  argv: readonly string[];
  debug: boolean;
}

function reportStartFailure(error: unknown, context: Pick<Context, 'logger' | 'debug' | 'sink' | 'io'>): void {
  const { logger, debug } = context;
  const message = error instanceof Error ? error.message : String(error);
  if (!isNodefpmError(error)) {
    logger.error(`failed: ${message}`);
    if (debug && error instanceof Error) logger.debug(error.stack ?? '');
  } else {
    logger.error(error.message, { code: error.code });
    // The stack helps only someone debugging nodefpm or the app: shown at --log-level debug.
    const cause = error.cause;
    if (debug) logger.debug(`stack: ${cause instanceof Error ? (cause.stack ?? cause.message) : (error.stack ?? '')}`);
  }
  // With the log in a file, whoever started nodefpm still sees why it did not start.
  if (context.sink !== null) context.io.stderr(`nodefpm: ${message} (see ${context.sink.path})\n`);
}

/** Loads the app module once here, before any worker or listener, so a module that cannot load stops nodefpm at once with one clear line. */
async function loadAndCheck(context: Context): Promise<{ app: LoadedApp; handler: ReturnType<typeof servedHandlerFor> }> {
  const { command, settings, logger, io } = context;
  const app = await loadApp(command.app!, { cwd: io.cwd, ...(settings.api === undefined ? {} : { api: settings.api }) });
  const handler = servedHandlerFor(app.kind, app.handler, { options: settings.handler, logger }, app.path, settings.validate);
  if (settings.validate) logger.warn('every request is validated (--validate): a development tool, it costs time on each request');
  return { app, handler };
}

/**
 * Runs the command; resolves to the exit status once the server or pool has stopped (or at once on
 * --help, --version, or an error before serving). Never rejects.
 */
export async function main(argv: readonly string[], io: CommandIo = processIo()): Promise<number> {
  let command: Command;
  try {
    command = loadCommand(argv, io.cwd);
    if (!command.help && !command.version) {
      checkFrontOptions(command.values, command.app);
      // --upstream serves another FastCGI server's app over --http: the one way to run without a module.
      if (command.app === undefined && command.values.get('upstream') === undefined) throw new NodefpmError('NODEFPM_USAGE', 'no app module given');
    }
  } catch (error) {
    io.stderr(`nodefpm: ${error instanceof Error ? error.message : String(error)}\nUsage: ${USAGE}\nRun 'nodefpm --help' for every option.\n`);
    return ExitCode.Usage;
  }
  if (command.help) {
    io.stdout(helpText());
    return ExitCode.Ok;
  }
  if (command.version) {
    io.stdout(`nodefpm ${packageVersion()}\n`);
    return ExitCode.Ok;
  }
  const settings = command.settings;
  let sink: LogFile | null = null;
  if (settings.errorLog !== undefined) {
    try {
      sink = new LogFile(resolve(io.cwd, settings.errorLog));
    } catch (error) {
      io.stderr(`nodefpm: --error-log: cannot open ${settings.errorLog}: ${(error as Error).message}\n`);
      return ExitCode.Failure;
    }
  }
  const logger = createLogger({ level: settings.logLevel, write: sink === null ? io.stderr : (line) => sink.write(line) });
  for (const directive of command.config?.ignored ?? []) {
    logger.warn(`${command.config!.path}: ignored the php-fpm directive ${directive}: it has no meaning for nodefpm (see docs/pool.md)`);
  }

  if (command.app === undefined) {
    try {
      return await runFrontsOnly({ command, settings, targets: [], logger, sink, io, argv, debug: settings.logLevel === 'debug' });
    } finally {
      sink?.close();
    }
  }
  const targets = settings.listen.length > 0 ? settings.listen.map((address) => ({ address, label: formatListenAddress(address) })) : inheritedAddresses(io.env);
  // --http alone: the app needs a FastCGI listener only the front talks to, so one nobody else can reach.
  let privateDir: string | null = null;
  if (targets.length === 0 && wantsHttpFront(command.values)) {
    privateDir = mkdtempSync(join(tmpdir(), 'nodefpm-'));
    targets.push({ address: { kind: 'unix', path: join(privateDir, 'fastcgi.sock') }, label: 'a private Unix socket for the HTTP front' });
  }
  if (targets.length === 0) {
    io.stderr(
      'nodefpm: nothing to listen on: no --listen was given, fd 0 is not a socket (no web server or spawn-fcgi started ' +
        `nodefpm) and systemd passed no sockets (LISTEN_FDS).\n${LISTEN_HINT}\n`,
    );
    sink?.close();
    return ExitCode.Usage;
  }
  const context: Context = { command, settings, targets, logger, sink, io, argv, debug: settings.logLevel === 'debug' };
  try {
    return settings.pool === null ? await runSingle(context) : await runPool(context);
  } finally {
    sink?.close();
    if (privateDir !== null) rmSync(privateDir, { recursive: true, force: true });
  }
}

/** Sets the owner and group of the Unix sockets the command created (--socket-owner, --socket-group). */
async function ownSockets(settings: Settings, addresses: readonly ListenAddress[]): Promise<void> {
  if (settings.socketOwner === undefined && settings.socketGroup === undefined) return;
  const uid = settings.socketOwner === undefined ? -1 : userId(settings.socketOwner, '--socket-owner');
  const gid = settings.socketGroup === undefined ? -1 : groupId(settings.socketGroup, '--socket-group');
  for (const address of addresses) {
    if (address.kind !== 'unix') continue;
    try {
      await chown(address.path, uid, gid);
    } catch (error) {
      throw new NodefpmError('NODEFPM_INVALID_ADDRESS', `cannot set the owner of unix:${address.path}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** The graceful stop of either way of serving: the fronts first, then the FastCGI side; resolves to the exit status. */
async function stopGracefully(fronts: readonly RunningFront[], stopServing: () => Promise<void>, logger: Logger): Promise<number> {
  try {
    await stopFronts(fronts);
    await stopServing();
    logger.info('stopped');
    return ExitCode.Ok;
  } catch (error) {
    logger.error('graceful stop failed', { error });
    return ExitCode.Failure;
  }
}

/** One process: the server of this process serves the app (no master, no workers). */
async function runSingle(context: Context): Promise<number> {
  const { settings, targets, logger, io } = context;
  let server: FcgiServer;
  let description: string;
  try {
    const { app, handler } = await loadAndCheck(context);
    server = new FcgiServer(handler, { ...settings.server, logger });
    description = `${app.path} as ${describeKind(app.kind)} (kind from ${app.reason})`;
  } catch (error) {
    reportStartFailure(error, context);
    return exitCodeFor(error);
  }

  let stopping = false;
  let fronts: RunningFront[] = [];
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  const stop = (signal: NodeJS.Signals, timeout: number): void => {
    if (stopping) {
      logger.warn(`${signal} again during the graceful stop: exiting at once with ${requests(server.activeRequests)} in progress`);
      io.exit(ExitCode.Failure);
      return;
    }
    stopping = true;
    logger.info(
      timeout === NO_LIMIT
        ? `${signal}: stopping gracefully: no new connections; waiting for ${requests(server.activeRequests)} in progress, with no time limit`
        : `${signal}: stopping gracefully: no new connections; waiting up to ${settings.closeTimeout} ms for ` +
            `${requests(server.activeRequests)} in progress`,
    );
    void stopGracefully(fronts, () => server.close({ timeout }), logger).then(resolveStopped);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGQUIT'];
  // SIGUSR1 is Node's "start the inspector" signal: taken over only when there is a log file to reopen.
  if (context.sink !== null) signals.push('SIGUSR1');
  const unsubscribe = io.onSignal((signal) => {
    if (signal === 'SIGUSR1') {
      context.sink?.reopen();
      logger.info('SIGUSR1: log file reopened');
      return;
    }
    stop(signal, signal === 'SIGQUIT' ? NO_LIMIT : settings.closeTimeout);
  }, signals);

  const bound: ListenAddress[] = [];
  try {
    for (const target of targets) {
      try {
        bound.push(await server.listen(target.address, { socketMode: settings.socketMode, backlog: settings.listenBacklog }));
      } catch (error) {
        if (isNodefpmError(error, 'NODEFPM_NO_LISTENER')) {
          throw new NodefpmError('NODEFPM_NO_LISTENER', `cannot serve ${target.label}: ${error.message}`, { cause: error });
        }
        throw error;
      }
    }
    await ownSockets(settings, bound);
    fronts = await startFronts({ settings, values: context.command.values, logger, cwd: io.cwd, fastcgi: bound });
  } catch (error) {
    // A stop signal during start-up closed the server under listen(): that is a stop, not a failure.
    if (stopping) return stopped.finally(unsubscribe);
    unsubscribe();
    reportStartFailure(error, context);
    if (isNodefpmError(error, 'NODEFPM_NO_LISTENER')) io.stderr(`${LISTEN_HINT}\n`);
    await server.close({ timeout: 0 });
    return exitCodeFor(error);
  }
  hideSystemdSockets(targets, io.env);
  logger.info(`nodefpm ${packageVersion()} serving ${description}, pid ${process.pid}; SIGTERM or SIGINT stops it gracefully`);
  const code = await stopped;
  unsubscribe();
  return code;
}

/** The sockets are ours now; children the app starts must not take them for theirs (sd_listen_fds does the same). */
function hideSystemdSockets(targets: Context['targets'], env: NodeJS.ProcessEnv): void {
  if (targets.some((target) => target.address.kind === 'systemd' || target.label.startsWith('systemd'))) {
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
  }
}

/** The pool's options from the command's settings. */
export function poolOptionsFrom(settings: Settings, listen: readonly ListenAddress[], app: LoadedApp, env: NodeJS.ProcessEnv): PoolOptions {
  const { server } = settings;
  return {
    ...settings.pool!,
    setup: appSetup({ app: app.path, api: app.kind, handler: settings.handler, validate: settings.validate }),
    listen,
    server: {
      ...server,
      ...(server.roles === undefined ? {} : { roles: [...server.roles] }),
      ...(server.allowedClients === undefined ? {} : { allowedClients: [...server.allowedClients] }),
      logger: undefined,
    } as PoolOptions['server'],
    closeTimeout: settings.closeTimeout,
    socketMode: settings.socketMode,
    socketOwner: settings.socketOwner,
    socketGroup: settings.socketGroup,
    listenBacklog: settings.listenBacklog,
    logLevel: settings.logLevel,
    env,
  };
}

function describePool(pool: Pool): string {
  const o = pool.options;
  if (o.pm === 'static') return `a static pool of ${o.workers} worker${o.workers === 1 ? '' : 's'}`;
  if (o.pm === 'dynamic') return `a dynamic pool of ${o.startWorkers} to ${o.workers} workers (spare capacity ${o.minSpareWorkers}-${o.maxSpareWorkers})`;
  return `an ondemand pool of up to ${o.workers} workers (none until the first connection)`;
}

/** A master and its workers: the pool serves, this process manages it. */
async function runPool(context: Context): Promise<number> {
  const { settings, targets, logger, io, argv } = context;
  let app: LoadedApp;
  let description: string;
  let pool: Pool;
  try {
    ({ app } = await loadAndCheck(context));
    description = `${app.path} as ${describeKind(app.kind)} (kind from ${app.reason})`;
    pool = createPool({
      ...poolOptionsFrom(
        settings,
        targets.map((target) => target.address),
        app,
        io.env,
      ),
      ...(context.sink === null ? {} : { logSink: context.sink }),
      ...(settings.errorLog === undefined ? {} : { errorLog: resolve(io.cwd, settings.errorLog) }),
    });
  } catch (error) {
    reportStartFailure(error, context);
    return exitCodeFor(error);
  }

  let started = false;
  let stopping = false;
  let fronts: RunningFront[] = [];
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping || !started) {
      logger.warn(`${signal}${stopping ? ' again during the graceful stop' : ' during start-up'}: killing the workers and exiting at once`);
      stopping = true;
      void pool.kill().then(() => resolveStopped(ExitCode.Failure));
      return;
    }
    stopping = true;
    const unbounded = signal === 'SIGQUIT';
    logger.info(
      unbounded
        ? `${signal}: stopping gracefully: no new connections; waiting for the requests in progress, with no time limit`
        : `${signal}: stopping gracefully: no new connections; waiting up to ${settings.closeTimeout} ms for the requests in progress`,
    );
    void stopGracefully(fronts, () => pool.stop({ timeout: unbounded ? null : settings.closeTimeout }), logger).then(resolveStopped);
  };
  const reload = (signal: NodeJS.Signals): void => {
    if (!started || stopping) return;
    let changes: Partial<PoolOptions> | undefined;
    if (context.command.config !== null) {
      // The config file may have changed: read it again, with the same command line over it.
      try {
        const next = loadCommand(argv, io.cwd);
        if (next.settings.pool === null) throw new NodefpmError('NODEFPM_USAGE', 'the new configuration has no process manager');
        changes = poolOptionsFrom(next.settings, pool.options.listen, app, io.env);
      } catch (error) {
        logger.error(`${signal}: not reloading: ${(error as Error).message}`);
        return;
      }
    }
    logger.info(`${signal}: reloading: new workers start with the app imported afresh, then the old ones drain`);
    pool.reload({ reason: signal, ...(changes === undefined ? {} : { changes }) }).then(
      () => logger.info(`${signal}: reloaded (generation ${pool.generation})`),
      // The pool logged why; the old workers go on.
      () => {},
    );
  };
  const unsubscribe = io.onSignal(
    (signal) => {
      if (signal === 'SIGHUP' || signal === 'SIGUSR2') reload(signal);
      else if (signal === 'SIGUSR1') pool.reopenLogs();
      else stop(signal);
    },
    ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2', 'SIGUSR1'],
  );

  try {
    await pool.start();
    started = true;
    fronts = await startFronts({ settings, values: context.command.values, logger, cwd: io.cwd, fastcgi: pool.addresses });
  } catch (error) {
    if (stopping) return stopped.finally(unsubscribe);
    unsubscribe();
    reportStartFailure(error, context);
    if (isNodefpmError(error, 'NODEFPM_NO_LISTENER')) io.stderr(`${LISTEN_HINT}\n`);
    await pool.kill();
    return exitCodeFor(error);
  }
  hideSystemdSockets(targets, io.env);
  logger.info(
    `nodefpm ${packageVersion()} serving ${description} with ${describePool(pool)}, master pid ${process.pid}; ` +
      'SIGTERM or SIGINT stops it gracefully, SIGHUP reloads',
  );
  const code = await stopped;
  unsubscribe();
  return code;
}

/** No app in this process: the HTTP front forwards to --upstream (PHP-FPM, another nodefpm), until a stop signal. */
async function runFrontsOnly(context: Context): Promise<number> {
  const { settings, logger, io } = context;
  let fronts: RunningFront[];
  try {
    fronts = await startFronts({ settings, values: context.command.values, logger, cwd: io.cwd, fastcgi: [] });
  } catch (error) {
    reportStartFailure(error, context);
    return exitCodeFor(error);
  }
  logger.info(`nodefpm ${packageVersion()} forwarding HTTP to FastCGI at ${String(context.command.values.get('upstream'))}, pid ${process.pid}; SIGTERM or SIGINT stops it`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const unsubscribe = io.onSignal((received) => {
      unsubscribe();
      resolve(received);
    });
  });
  logger.info(`${signal}: stopping gracefully: waiting up to ${settings.closeTimeout} ms for the requests in progress`);
  return stopGracefully(fronts, () => Promise.resolve(), logger);
}

/** The entry bin/nodefpm calls: runs main and ends the process with its status (the app may hold timers or sockets open). */
export function run(argv: readonly string[] = process.argv.slice(2)): void {
  main(argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`nodefpm: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(ExitCode.Failure);
    },
  );
}
