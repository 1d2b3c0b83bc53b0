// Runs Debian's php-fpm 8.2 in the foreground from a config in a fresh temp folder (a static pool of 2 on a Unix socket there), for the gateway interop tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const PHP_FPM_BINARY = '/usr/sbin/php-fpm8.2';
export const PHP_FPM_PACKAGE = 'php8.2-fpm';

export interface PhpFpm {
  /** The temp folder: config, pid file, log, socket, and the document root under www/. */
  readonly dir: string;
  /** The document root the PHP scripts were written to. */
  readonly documentRoot: string;
  /** The pool's socket, as a FastCGI address: unix:/tmp/.../php-fpm.sock. */
  readonly address: string;
  readonly pid: number;
  /** php-fpm's own output (its log goes to stderr with -O) and the log file, for assertion messages. */
  describe(): string;
  /** SIGTERM to the master by pid, SIGKILL to its process group if it lingers, then the folder is removed. Idempotent. */
  stop(): Promise<void>;
}

/** The config: what the FastCGI interop needs and nothing else (no system paths, no service). */
function config(dir: string, children: number): string {
  return `; php-fpm for the nodefpm gateway interop test; run as: php-fpm8.2 -n -F -O [-R] -y ${dir}/php-fpm.conf -p ${dir}
[global]
pid = ${dir}/php-fpm.pid
error_log = ${dir}/php-fpm.log
log_level = notice
daemonize = no

[www]
listen = ${dir}/php-fpm.sock
listen.mode = 0600
pm = static
pm.max_children = ${children}
; The environment of the test runner is none of the scripts' business.
clear_env = yes
; Workers' stdout/stderr lines go to the log rather than /dev/null.
catch_workers_output = yes
decorate_workers_output = no
; error_log() and PHP errors: no error_log file, so FPM sends them on FCGI_STDERR (fastcgi.logging) too.
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
php_admin_value[error_reporting] = E_ALL
php_admin_value[post_max_size] = 64M
php_admin_value[memory_limit] = 256M
`;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const running = new Set<() => void>();
let hooked = false;

/** Kills what is still running if the test process exits early (a failed hook, Ctrl-C). */
function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  const cleanup = (): void => {
    for (const kill of running) kill();
  };
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.kill(process.pid, signal);
    });
  }
}

/**
 * Starts php-fpm with `scripts` (file name -> content, under the document root) and resolves once
 * its socket accepts connections. `-n`: no php.ini, so the run does not depend on the machine's;
 * `-R` when running as root (php-fpm refuses to run a pool as root otherwise).
 */
export async function startPhpFpm(scripts: Record<string, string>, options: { children?: number; startTimeout?: number } = {}): Promise<PhpFpm> {
  if (!existsSync(PHP_FPM_BINARY)) {
    throw new Error(`${PHP_FPM_BINARY} is missing; it comes from the Debian package "${PHP_FPM_PACKAGE}", which scripts/interop-deps.sh installs`);
  }
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'nodefpm-php-fpm-'));
  const documentRoot = join(dir, 'www');
  mkdirSync(documentRoot);
  for (const [name, content] of Object.entries(scripts)) {
    mkdirSync(dirname(join(documentRoot, name)), { recursive: true });
    writeFileSync(join(documentRoot, name), content);
  }
  writeFileSync(join(dir, 'php-fpm.conf'), config(dir, options.children ?? 2));
  const args = ['-n', '-F', '-O', '-y', join(dir, 'php-fpm.conf'), '-p', dir];
  if (process.getuid?.() === 0) args.push('-R');
  const child: ChildProcess = spawn(PHP_FPM_BINARY, args, { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > 500_000) output = output.slice(-250_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
      resolve();
    });
  });
  child.once('error', (error) => collect(Buffer.from(`[spawn error] ${error.message}\n`)));
  const pid = child.pid;
  const killGroup = (): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  };
  const killNow = (): void => {
    killGroup();
    rmSync(dir, { recursive: true, force: true });
  };
  running.add(killNow);
  const describe = (): string => {
    const log = existsSync(join(dir, 'php-fpm.log')) ? readFileSync(join(dir, 'php-fpm.log'), 'utf8') : '';
    return `php-fpm (pid ${pid ?? '?'}, ${exited ?? 'running'}, folder ${dir})\n--- output ---\n${output.trim()}\n--- php-fpm.log ---\n${log.trim()}`;
  };
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exited === null && pid !== undefined) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // Gone already.
        }
        await Promise.race([exit, sleep(10_000)]);
      }
      // Its children share its process group: none may outlive the test.
      killGroup();
      running.delete(killNow);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const socketPath = join(dir, 'php-fpm.sock');
  const deadline = Date.now() + (options.startTimeout ?? 30_000);
  for (;;) {
    if (exited !== null || pid === undefined) {
      const report = describe();
      await stop();
      throw new Error(`php-fpm exited during start-up\n${report}`);
    }
    if (existsSync(socketPath) && (await canConnect(socketPath))) break;
    if (Date.now() > deadline) {
      const report = describe();
      await stop();
      throw new Error(`php-fpm did not accept connections on ${socketPath} in time\n${report}`);
    }
    await sleep(50);
  }
  return { dir, documentRoot, address: `unix:${socketPath}`, pid, describe, stop };
}
