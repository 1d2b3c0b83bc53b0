// The nodefpm command: parses argv, loads the app, listens, stops gracefully on SIGTERM/SIGINT; the exit status says how it ended.

import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NodefpmError, isNodefpmError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { formatListenAddress, stdinIsSocket, systemdSockets, type ListenAddress } from '../server/listen.js';
import { FcgiServer } from '../server/server.js';
import { describeKind, exchangeHandlerFor } from './adapters.js';
import { loadApp } from './app.js';
import { helpText, parseCommandLine, USAGE, type CommandLine } from './options.js';

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
  /** Subscribes to the stop signals; returns the unsubscribe function. */
  onSignal(listener: (signal: NodeJS.Signals) => void): () => void;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function processIo(): CommandIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    exit: (code) => process.exit(code),
    onSignal(listener) {
      for (const signal of STOP_SIGNALS) process.on(signal, listener);
      return () => {
        for (const signal of STOP_SIGNALS) process.off(signal, listener);
      };
    },
  };
}

/** Codes that mean the command line (or the way nodefpm was started) is wrong, not the app or the machine. */
const USAGE_CODES = new Set(['NODEFPM_USAGE', 'NODEFPM_INVALID_OPTION', 'NODEFPM_NO_LISTENER']);

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

function reportStartFailure(error: unknown, logger: Logger, debug: boolean): void {
  if (!isNodefpmError(error)) {
    logger.error(`failed: ${error instanceof Error ? error.message : String(error)}`);
    if (debug && error instanceof Error) logger.debug(error.stack ?? '');
    return;
  }
  logger.error(error.message, { code: error.code });
  // The stack helps only someone debugging nodefpm or the app: shown at --log-level debug.
  const cause = error.cause;
  if (debug) logger.debug(`stack: ${cause instanceof Error ? (cause.stack ?? cause.message) : (error.stack ?? '')}`);
}

/**
 * Runs the command; resolves to the exit status once the server has stopped (or at once on --help,
 * --version, or an error before serving). Never rejects.
 */
export async function main(argv: readonly string[], io: CommandIo = processIo()): Promise<number> {
  let command: CommandLine;
  try {
    command = parseCommandLine(argv);
    if (!command.help && !command.version && command.app === undefined) {
      throw new NodefpmError('NODEFPM_USAGE', 'no app module given');
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
  const logger = createLogger({ level: settings.logLevel, write: io.stderr });
  const debug = settings.logLevel === 'debug';

  const targets = settings.listen.length > 0 ? settings.listen.map((address) => ({ address, label: formatListenAddress(address) })) : inheritedAddresses(io.env);
  if (targets.length === 0) {
    io.stderr(
      'nodefpm: nothing to listen on: no --listen was given, fd 0 is not a socket (no web server or spawn-fcgi started ' +
        `nodefpm) and systemd passed no sockets (LISTEN_FDS).\n${LISTEN_HINT}\n`,
    );
    return ExitCode.Usage;
  }

  let server: FcgiServer;
  let description: string;
  try {
    const app = await loadApp(command.app!, { cwd: io.cwd, ...(settings.api === undefined ? {} : { api: settings.api }) });
    const handler = exchangeHandlerFor(app.kind, app.handler, { options: settings.handler, logger }, app.path);
    server = new FcgiServer(handler, { ...settings.server, logger });
    description = `${app.path} as ${describeKind(app.kind)} (kind from ${app.reason})`;
  } catch (error) {
    reportStartFailure(error, logger, debug);
    return isNodefpmError(error) && USAGE_CODES.has(error.code) ? ExitCode.Usage : ExitCode.Failure;
  }

  let stopping = false;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  const unsubscribe = io.onSignal((signal) => {
    if (stopping) {
      logger.warn(`${signal} again during the graceful stop: exiting at once with ${requests(server.activeRequests)} in progress`);
      io.exit(ExitCode.Failure);
      return;
    }
    stopping = true;
    logger.info(
      `${signal}: stopping gracefully: no new connections; waiting up to ${settings.closeTimeout} ms for ` +
        `${requests(server.activeRequests)} in progress`,
    );
    server.close({ timeout: settings.closeTimeout }).then(
      () => {
        logger.info('stopped');
        resolveStopped(ExitCode.Ok);
      },
      (error: unknown) => {
        logger.error('graceful stop failed', { error });
        resolveStopped(ExitCode.Failure);
      },
    );
  });

  try {
    for (const target of targets) {
      try {
        await server.listen(target.address, { socketMode: settings.socketMode });
      } catch (error) {
        if (isNodefpmError(error, 'NODEFPM_NO_LISTENER')) {
          throw new NodefpmError('NODEFPM_NO_LISTENER', `cannot serve ${target.label}: ${error.message}`, { cause: error });
        }
        throw error;
      }
    }
  } catch (error) {
    // A stop signal during start-up closed the server under listen(): that is a stop, not a failure.
    if (stopping) return stopped.finally(unsubscribe);
    unsubscribe();
    reportStartFailure(error, logger, debug);
    if (isNodefpmError(error, 'NODEFPM_NO_LISTENER')) io.stderr(`${LISTEN_HINT}\n`);
    await server.close({ timeout: 0 });
    return isNodefpmError(error) && USAGE_CODES.has(error.code) ? ExitCode.Usage : ExitCode.Failure;
  }
  // The sockets are ours now; children the app starts must not take them for theirs (sd_listen_fds does the same).
  if (targets.some((target) => target.address.kind === 'systemd' || target.label.startsWith('systemd'))) {
    delete io.env.LISTEN_FDS;
    delete io.env.LISTEN_PID;
    delete io.env.LISTEN_FDNAMES;
  }
  logger.info(`nodefpm ${packageVersion()} serving ${description}, pid ${process.pid}; SIGTERM or SIGINT stops it gracefully`);
  const code = await stopped;
  unsubscribe();
  return code;
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
