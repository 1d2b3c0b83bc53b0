// Runs a real web server (nginx now; Apache, lighttpd, h2o later) in the foreground from a config written into a fresh temp folder, for interop tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a config template gets to fill in. */
export interface WebServerContext {
  /** The server's own temp folder: config, pid file, logs and temp paths all go in here. */
  readonly dir: string;
  /** The loopback address the server must listen on for HTTP. */
  readonly host: '127.0.0.1';
  /** A port that was free a moment ago. */
  readonly port: number;
  /** True when the tests run as root (web servers then need to be told to stay root, e.g. nginx's `user root;`). */
  readonly isRoot: boolean;
  /** An absolute path inside `dir`. */
  path(name: string): string;
}

/** What a config template produces: the files to write and how to run the server in the foreground. */
export interface WebServerLaunch {
  /** Files to write, by path relative to the folder (folders are created). */
  files: Record<string, string>;
  /** Arguments after the binary; the server must stay in the foreground. */
  args: string[];
  /** Extra environment (on top of this process's). */
  env?: NodeJS.ProcessEnv;
  /** Log files (relative to the folder or absolute) shown in assertion messages; the error log first. */
  logs: string[];
  /**
   * A file the server writes once its listening sockets are bound (nginx's pid file), relative to the
   * folder or absolute: start-up waits for it as well as for a connection, so a port some other
   * process grabbed in the meantime is not mistaken for ours.
   */
  readyFile?: string;
}

/** One kind of web server: where its binary is and how to configure one instance. */
export interface WebServerKind {
  /** Short name for messages and the folder prefix ("nginx"). */
  name: string;
  /** Absolute path of the binary. */
  binary: string;
  /** The Debian package that provides it (named in the error when it is missing). */
  debianPackage: string;
  /** The config template: called once per start attempt with a fresh folder and port. */
  configure(context: WebServerContext): WebServerLaunch;
  /** Output meaning the port was taken between our probe and the server's bind: retried on another port. */
  addressInUse?: RegExp;
}

export interface StartOptions {
  /** How long the server may take to accept connections. Default 30 s. */
  startTimeout?: number;
  /** How long after SIGTERM before SIGKILL. Default 10 s. */
  stopTimeout?: number;
}

/** A running web server. */
export interface WebServer {
  readonly kind: WebServerKind;
  readonly dir: string;
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly pid: number;
  /** True once the process exited. */
  readonly exited: boolean;
  /** The contents of the first log file (the error log), "" when it does not exist yet. */
  errorLog(): string;
  /** The server's stdout/stderr and the tail of every log file, for assertion messages. */
  describe(maxLines?: number): string;
  /** SIGTERM by pid, SIGKILL (to its process group) after stopTimeout, then removes the folder. Idempotent. */
  stop(): Promise<void>;
}

const running = new Set<RunningServer>();
let exitHookInstalled = false;

/** Name of the file in each server folder that says which test process owns it and which pid the server has. */
const OWNER_FILE = 'harness-owner.json';

/**
 * Last resort when the test process exits with servers still running (a failed hook, Ctrl-C, the
 * runner's SIGTERM): kill them and remove their folders. A signal is re-raised after the cleanup.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const cleanup = (): void => {
    for (const server of running) server.killNow();
  };
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanup();
      process.kill(process.pid, signal);
    });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what an earlier test process that died without cleaning up (SIGKILL) left behind: folders
 * of this kind whose owner process is gone, after killing the server started there if it is still
 * running (checked by its command line naming that folder, so a reused pid is not hit).
 */
function reapStale(kind: WebServerKind): void {
  const prefix = `nodefpm-${kind.name}-`;
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((name) => name.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(tmpdir(), name);
    let owner: { owner: number; server: number };
    try {
      owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as { owner: number; server: number };
    } catch {
      continue; // Not ours, or still being set up.
    }
    if (isAlive(owner.owner)) continue;
    try {
      // A live leader must be the server started in this folder; with the leader gone, members left in
      // its process group can only be its workers (a pid is not reused while it names a group).
      const leaderIsOurs = isAlive(owner.server) ? readFileSync(`/proc/${owner.server}/cmdline`, 'utf8').includes(dir) : true;
      if (leaderIsOurs) process.kill(-owner.server, 'SIGKILL');
    } catch {
      // Gone already.
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve());
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not read the probe port');
  return address.port;
}

/** Resolves when a TCP connection to host:port succeeds, false when it is refused or times out. */
function canConnect(host: string, port: number, timeout = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function tail(text: string, maxLines: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.length <= maxLines ? lines.join('\n') : [`... (${lines.length - maxLines} earlier lines)`, ...lines.slice(-maxLines)].join('\n');
}

class RunningServer implements WebServer {
  readonly kind: WebServerKind;
  readonly dir: string;
  readonly port: number;
  readonly origin: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #logs: string[];
  readonly #exit: Promise<void>;
  readonly #stopTimeout: number;
  #output = '';
  #exitStatus: string | null = null;
  #stopping: Promise<void> | null = null;

  constructor(kind: WebServerKind, dir: string, port: number, child: ChildProcess, logs: string[], stopTimeout: number) {
    this.kind = kind;
    this.dir = dir;
    this.port = port;
    this.origin = `http://127.0.0.1:${port}`;
    if (child.pid === undefined) throw new Error(`${kind.name} did not start (no pid)`);
    this.pid = child.pid;
    this.#child = child;
    this.#logs = logs.map((name) => (isAbsolute(name) ? name : join(dir, name)));
    this.#stopTimeout = stopTimeout;
    const collect = (chunk: Buffer): void => {
      this.#output += chunk.toString('utf8');
      if (this.#output.length > 1_000_000) this.#output = this.#output.slice(-500_000);
    };
    child.on('error', (error) => collect(Buffer.from(`[harness] process error: ${error.message}\n`)));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exitStatus = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
        resolve();
      });
    });
  }

  get exited(): boolean {
    return this.#exitStatus !== null;
  }

  get exitStatus(): string | null {
    return this.#exitStatus;
  }

  get output(): string {
    return this.#output;
  }

  errorLog(): string {
    const first = this.#logs[0];
    return first !== undefined && existsSync(first) ? readFileSync(first, 'utf8') : '';
  }

  describe(maxLines = 40): string {
    const parts = [`${this.kind.name} (pid ${this.pid}, ${this.#exitStatus === null ? 'running' : `exited with ${this.#exitStatus}`}, folder ${this.dir})`];
    if (this.#output.trim() !== '') parts.push(`--- stdout/stderr ---\n${tail(this.#output, maxLines)}`);
    for (const log of this.#logs) {
      if (!existsSync(log)) continue;
      const text = readFileSync(log, 'utf8');
      if (text.trim() !== '') parts.push(`--- ${log} ---\n${tail(text, maxLines)}`);
    }
    return parts.join('\n');
  }

  /** Waits up to `ms` for the process to exit; true when it did. */
  async #waitExit(ms: number): Promise<boolean> {
    if (this.exited) return true;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const result = await Promise.race([this.#exit.then(() => true as const), expired]);
    clearTimeout(timer);
    return result;
  }

  /** SIGKILL to the process group we created (the server and any workers it forked); ignores "no such process". */
  #killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // Nothing left in the group.
    }
  }

  stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    this.#stopping = (async () => {
      try {
        if (!this.exited) {
          try {
            this.#child.kill('SIGTERM');
          } catch {
            // Already gone.
          }
          if (!(await this.#waitExit(this.#stopTimeout))) {
            this.#killGroup();
            await this.#waitExit(this.#stopTimeout);
          }
        }
        // Workers the server forked share its process group: none may outlive it.
        this.#killGroup();
      } finally {
        running.delete(this);
        rmSync(this.dir, { recursive: true, force: true });
      }
    })();
    return this.#stopping;
  }

  /** Synchronous cleanup for process exit. */
  killNow(): void {
    this.#killGroup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts `kind` in the foreground from its config template in a fresh temp folder, listening on a free
 * loopback port, and resolves once it accepts TCP connections. Fails with the server's output and logs
 * when the binary is missing, the process exits, or it does not accept in time. Retries on another
 * port when the template's addressInUse pattern shows the port was taken meanwhile.
 */
export async function startWebServer(kind: WebServerKind, options: StartOptions = {}): Promise<WebServer> {
  if (!existsSync(kind.binary)) {
    throw new Error(
      `${kind.name}: ${kind.binary} is missing; it comes from the Debian package "${kind.debianPackage}", which ` +
        'scripts/interop-deps.sh installs (npm run test:interop runs it first, as root)',
    );
  }
  installExitHook();
  reapStale(kind);
  const startTimeout = options.startTimeout ?? 30_000;
  const stopTimeout = options.stopTimeout ?? 10_000;
  const isRoot = process.getuid?.() === 0;
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), `nodefpm-${kind.name}-`));
    const port = await freePort();
    const context: WebServerContext = { dir, host: '127.0.0.1', port, isRoot, path: (name) => join(dir, name) };
    let launch: WebServerLaunch;
    try {
      launch = kind.configure(context);
      for (const [name, text] of Object.entries(launch.files)) {
        const file = join(dir, name);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
      }
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const child = spawn(kind.binary, launch.args, {
      cwd: dir,
      env: { ...process.env, ...launch.env },
      // Its own process group, so workers it forks can be killed with it.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${kind.name}: could not run ${kind.binary}: ${error.message}`);
    }
    const server = new RunningServer(kind, dir, port, child, launch.logs, stopTimeout);
    running.add(server);
    writeFileSync(join(dir, OWNER_FILE), JSON.stringify({ owner: process.pid, server: child.pid }));

    const deadline = Date.now() + startTimeout;
    const readyFile = launch.readyFile === undefined ? null : isAbsolute(launch.readyFile) ? launch.readyFile : join(dir, launch.readyFile);
    let failure: string | null = null;
    for (;;) {
      if (server.exited) {
        failure = `exited during start-up with ${String(server.exitStatus)}`;
        break;
      }
      if ((readyFile === null || existsSync(readyFile)) && (await canConnect('127.0.0.1', port)) && !server.exited) break;
      if (Date.now() > deadline) {
        failure = `did not accept connections on 127.0.0.1:${port} within ${startTimeout} ms`;
        break;
      }
      await sleep(50);
    }
    if (failure === null) return server;

    const report = server.describe(80);
    const portTaken = kind.addressInUse?.test(`${server.output}\n${server.errorLog()}`) === true;
    await server.stop();
    if (portTaken && attempt < 5) continue;
    throw new Error(`${kind.name} ${failure}\n${report}`);
  }
}
