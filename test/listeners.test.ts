// Listeners on real sockets: Unix socket modes and stale/live/foreign files, TCP over IPv4 and IPv6, fd 0 and systemd sockets handed over by a launcher, and the client allow-list.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createServer, isNodefpmError, type CreateServerOptions, type FcgiServer, type ListenAddress } from '../src/index.js';
import { captureLogger, type CaptureLogger } from './helpers/log-capture.js';
import { RawPeer, requestParams, splitCgi, type PeerAddress } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const appFixture = join(root, 'test', 'fixtures', 'listen-app.ts');
const launcher = join(root, 'test', 'fixtures', 'listen-launcher.py');

/** Node cannot hand a child a listening socket (spawn shares streams and fds, and a net.Server is neither): a small Python launcher does, as spawn-fcgi would. */
const hasPython = spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0;
/** The launcher that hands a listening socket over (as spawn-fcgi and systemd do) is a python3 script: required. */
function requirePython(): void {
  assert.ok(hasPython, 'python3 is required to hand a listening socket to a child process (as spawn-fcgi does); install it');
}

/** Whether ::1 can really be bound here (a container may run without IPv6). */
const hasIPv6 = await new Promise<boolean>((resolve) => {
  const probe = net.createServer();
  probe.once('error', () => resolve(false));
  probe.listen({ host: '::1', port: 0 }, () => probe.close(() => resolve(true)));
});
function requireIPv6(): void {
  assert.ok(hasIPv6, 'these tests need IPv6 on loopback (::1); enable it on this machine');
}

/** One temporary folder for every socket and file of this file's tests (each test uses its own names in it). */
const scratch = tempDir('nodefpm-listeners-');
after(() => scratch.remove());

// ---- helpers ----

interface Started {
  server: FcgiServer;
  logs: CaptureLogger;
  bound: ListenAddress;
}

/** A native server answering "ok <url>" that does not read FCGI_WEB_SERVER_ADDRS unless told to. */
async function start(address: string, options: CreateServerOptions = {}, listenOptions: { socketMode?: number } = {}): Promise<Started> {
  const logs = captureLogger();
  const server = createServer(
    (req, res) => {
      res.end(`ok ${req.url}`);
    },
    { logger: logs, useWebServerAddrs: false, ...options },
  );
  try {
    const bound = await server.listen(address, listenOptions);
    return { server, logs, bound };
  } catch (error) {
    await server.close({ timeout: 1000 });
    throw error;
  }
}

function peerAddress(bound: ListenAddress): PeerAddress {
  if (bound.kind === 'unix') return { path: bound.path };
  if (bound.kind === 'tcp') return { host: bound.host === '::' ? '::1' : bound.host === '0.0.0.0' ? '127.0.0.1' : bound.host, port: bound.port };
  throw new Error(`cannot connect to ${bound.kind}`);
}

/** One GET over a fresh connection; returns the response body. */
async function get(address: PeerAddress, uri = '/'): Promise<string> {
  const peer = await RawPeer.connect(address);
  try {
    peer.sendRequest(1, requestParams('GET', uri));
    const response = await peer.waitForEnd(1, 20_000);
    return splitCgi(response.stdout).body.toString();
  } finally {
    peer.close();
  }
}

/** Connects and sends a request; resolves once the server has closed the connection, with what came back. */
async function refusedConnection(address: PeerAddress): Promise<{ records: number }> {
  let peer: RawPeer;
  try {
    peer = await RawPeer.connect(address);
  } catch (error) {
    // Closed so fast that the connect itself saw the reset.
    if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') return { records: 0 };
    throw error;
  }
  try {
    peer.sendRequest(1, requestParams());
    await peer.waitForClose(20_000);
    assert.equal(peer.closed, true, 'the server closed the connection');
    return { records: peer.records.length };
  } finally {
    peer.close();
  }
}

function expectCode(code: string, pattern?: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isNodefpmError(error), `expected a NodefpmError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  };
}

/** The environment of a child process: this one's, without anything that would change how it listens. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['NODE_TEST_CONTEXT', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'FCGI_WEB_SERVER_ADDRS']) delete env[name];
  return { ...env, ...extra };
}

type ChildEvent = { event: string } & Record<string, unknown>;

/** A child process that reports JSON lines on stdout (test/fixtures/listen-app.ts, possibly through the launcher). */
class Child {
  readonly process: ChildProcess;
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<void>;
  #stderr = '';
  #listeners = new Set<() => void>();

  constructor(command: string, args: string[], options: { stdin?: 'ignore' | net.Socket; env?: NodeJS.ProcessEnv } = {}) {
    this.process = spawn(command, args, { cwd: root, env: options.env ?? childEnv(), stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.process.once('close', () => resolve()));
    this.process.once('exit', () => this.#notify());
    this.process.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.#stderr += text;
    });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as ChildEvent);
      } catch {
        this.events.push({ event: 'text', line });
      }
      this.#notify();
    });
  }

  /** The app under the launcher: the launcher execs it, so the pid is the same. */
  static app(args: string[], options: { stdin?: 'ignore' | net.Socket; env?: NodeJS.ProcessEnv } = {}): Child {
    return new Child(process.execPath, ['--import', 'tsx', appFixture, ...args], options);
  }

  static launched(launch: string[], args: string[], env?: NodeJS.ProcessEnv): Child {
    return new Child('python3', [launcher, ...launch, '--', process.execPath, '--import', 'tsx', appFixture, ...args], { env: env ?? childEnv() });
  }

  /** Resolves with the first event matching `predicate` (rejects on timeout or exit, with the child's stderr). */
  next(predicate: (event: ChildEvent) => boolean, what: string, ms = 30_000): Promise<ChildEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(predicate);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.process.exitCode !== null || this.process.signalCode !== null) {
          done();
          reject(new Error(`child exited (${this.process.exitCode ?? this.process.signalCode}) before ${what}; events ${JSON.stringify(this.events)}; stderr ${this.#stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; events ${JSON.stringify(this.events)}; stderr ${this.#stderr}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Kills the child by its pid (if still running) and waits for it to be gone. */
  async stop(): Promise<void> {
    const pid = this.process.pid;
    if (pid !== undefined && this.process.exitCode === null && this.process.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await this.exited;
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}

/** A plain Node process listening on a Unix socket path, for tests that need someone else's socket. */
function foreignListener(path: string, backlog = 511): Child {
  const code = `require('net').createServer().listen({ path: process.argv[1], backlog: ${backlog} }, () => console.log(JSON.stringify({ event: 'listening' })))`;
  return new Child(process.execPath, ['-e', code, path]);
}

// ---- Unix sockets ----

test('a Unix socket is created with mode 0660 by default and serves requests', async () => {
  const path = join(scratch.path, 'app.sock');
  const { server, bound } = await start(`unix:${path}`);
  try {
    assert.deepEqual(bound, { kind: 'unix', path });
    assert.equal(lstatSync(path).isSocket(), true);
    assert.equal(statSync(path).mode & 0o777, 0o660);
    assert.equal(await get({ path }, '/unix'), 'ok /unix');
  } finally {
    await server.close({ timeout: 1000 });
  }
  assert.equal(existsSync(path), false, 'closing the server removes its socket file');
});

test('socketMode sets the socket file permissions', async () => {
  for (const mode of [0o600, 0o666]) {
    const path = join(scratch.path, `mode-${mode.toString(8)}.sock`);
    const { server } = await start(path, {}, { socketMode: mode });
    try {
      assert.equal(statSync(path).mode & 0o777, mode, `mode ${mode.toString(8)}`);
      assert.equal(await get({ path }), 'ok /');
    } finally {
      await server.close({ timeout: 1000 });
    }
  }
});

test('a stale socket file, left by a process that was killed, is replaced', async () => {
  const path = join(scratch.path, 'stale.sock');
  const dead = foreignListener(path);
  try {
    await dead.next((event) => event.event === 'listening', 'the other process to listen');
  } finally {
    await dead.stop();
  }
  assert.equal(lstatSync(path).isSocket(), true, 'SIGKILL leaves the socket file behind');
  const { server } = await start(`unix:${path}`);
  try {
    assert.equal(await get({ path }, '/after-stale'), 'ok /after-stale');
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test('a live socket is not replaced: NODEFPM_ADDRESS_IN_USE, and its owner keeps serving', async () => {
  const path = join(scratch.path, 'live.sock');
  const owner = await start(`unix:${path}`);
  try {
    await assert.rejects(start(`unix:${path}`), expectCode('NODEFPM_ADDRESS_IN_USE', /live\.sock is in use: a process is listening on it/));
    assert.equal(await get({ path }, '/owner'), 'ok /owner');
  } finally {
    await owner.server.close({ timeout: 1000 });
  }
});

test('a live socket whose connection queue is full is not mistaken for a stale one', async () => {
  const path = join(scratch.path, 'busy.sock');
  // A listener that is stopped cannot accept: its queue (backlog 1) fills and connects get EAGAIN.
  const busy = foreignListener(path, 1);
  const waiting: net.Socket[] = [];
  try {
    await busy.next((event) => event.event === 'listening', 'the other process to listen');
    process.kill(busy.process.pid!, 'SIGSTOP');
    let full = false;
    for (let i = 0; i < 64 && !full; i++) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = net.connect({ path });
        waiting.push(socket);
        socket.once('connect', () => resolve('connected'));
        socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      if (outcome === 'EAGAIN') full = true;
      else assert.equal(outcome, 'connected');
    }
    assert.ok(full, 'the queue of the stopped listener filled up');
    await assert.rejects(start(`unix:${path}`), expectCode('NODEFPM_ADDRESS_IN_USE', /busy\.sock is in use: a process is listening on it \(its connection queue is full\)/));
    assert.equal(lstatSync(path).isSocket(), true, 'the busy socket file is still there');
  } finally {
    for (const socket of waiting) socket.destroy();
    await busy.stop();
  }
});

test('a regular file or a folder at the socket path is not replaced', async () => {
  const file = join(scratch.path, 'not-a-socket');
  writeFileSync(file, 'precious');
  await assert.rejects(start(`unix:${file}`), expectCode('NODEFPM_ADDRESS_IN_USE', /not-a-socket exists and is not a socket; not replacing it/));
  assert.equal(readFileSync(file, 'utf8'), 'precious');
  const folder = join(scratch.path, 'folder');
  mkdirSync(folder);
  await assert.rejects(start(folder), expectCode('NODEFPM_ADDRESS_IN_USE', /folder exists and is not a socket/));
  assert.equal(statSync(folder).isDirectory(), true);
});

test('a socket path in a folder that does not exist: NODEFPM_INVALID_ADDRESS naming the address', async () => {
  await assert.rejects(
    start(`unix:${join(scratch.path, 'missing', 'app.sock')}`),
    expectCode('NODEFPM_INVALID_ADDRESS', /cannot listen on unix:.*missing\/app\.sock/),
  );
});

// ---- TCP ----

test('TCP on 127.0.0.1 port 0 binds a real port and serves', async () => {
  const { server, bound } = await start('127.0.0.1:0');
  try {
    assert.equal(bound.kind, 'tcp');
    assert.ok(bound.kind === 'tcp' && bound.port > 0, `a real port was bound: ${JSON.stringify(bound)}`);
    assert.deepEqual(server.addresses, [bound]);
    assert.equal(await get(peerAddress(bound), '/v4'), 'ok /v4');
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test(`TCP on [::1] port 0 binds a real port and serves`, async () => {
  requireIPv6();
  const { server, bound } = await start('[::1]:0');
  try {
    assert.ok(bound.kind === 'tcp' && bound.host === '::1' && bound.port > 0, `bound ${JSON.stringify(bound)}`);
    assert.equal(await get(peerAddress(bound), '/v6'), 'ok /v6');
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test('a TCP port already in use: NODEFPM_ADDRESS_IN_USE', async () => {
  const first = await start('127.0.0.1:0');
  try {
    const port = first.bound.kind === 'tcp' ? first.bound.port : 0;
    await assert.rejects(start(`127.0.0.1:${port}`), expectCode('NODEFPM_ADDRESS_IN_USE', new RegExp(`127\\.0\\.0\\.1:${port} is in use`)));
    assert.equal(await get(peerAddress(first.bound)), 'ok /');
  } finally {
    await first.server.close({ timeout: 1000 });
  }
});

// ---- inherited listeners: fd 0 (spawn-fcgi, web servers) and systemd ----

test(`a listening Unix socket on fd 0, as spawn-fcgi hands it over, is served with listen('fd:0')`, async () => {
  requirePython();
  const path = join(scratch.path, 'spawned.sock');
  const child = Child.launched(['--unix', path], ['fd:0']);
  try {
    const bound = await child.next((event) => event.event === 'bound', 'the launcher to bind');
    assert.equal(bound.address, `unix:${path}`);
    const listening = await child.next((event) => event.event === 'listening' || event.event === 'error', 'the app to listen');
    assert.deepEqual(listening, { event: 'listening', address: 'fd:0' });
    const answer = JSON.parse(await get({ path }, '/from-fd0')) as { pid: number; url: string };
    assert.deepEqual(answer, { pid: child.process.pid, url: '/from-fd0' });
  } finally {
    await child.stop();
  }
});

test(`a listening TCP socket on fd 0 is detected by inheritedListenAddress() and served`, async () => {
  requirePython();
  const child = Child.launched(['--tcp', '127.0.0.1'], ['inherited']);
  try {
    const bound = await child.next((event) => event.event === 'bound', 'the launcher to bind');
    const listening = await child.next((event) => event.event !== 'bound' && event.event !== 'log', 'the app to listen');
    assert.deepEqual(listening, { event: 'listening', address: 'fd:0' });
    const port = Number(String(bound.address).split(':')[1]);
    const answer = JSON.parse(await get({ host: '127.0.0.1', port }, '/tcp-fd0')) as { pid: number; url: string };
    assert.deepEqual(answer, { pid: child.process.pid, url: '/tcp-fd0' });
  } finally {
    await child.stop();
  }
});

test('fd 0 that is a connected socket: NODEFPM_NO_LISTENER, from inheritedListenAddress() and from fd:0', async () => {
  const acceptor = net.createServer((socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve) => acceptor.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const connected = net.connect((acceptor.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => connected.once('connect', resolve));
  const child = Child.app(['inherited', 'fd:0'], { stdin: connected });
  try {
    await child.next((event) => event.event === 'ready', 'the app to try both');
    const outcomes = child.events.filter((event) => event.event === 'error' || event.event === 'listening' || event.event === 'none');
    assert.equal(outcomes.length, 2, JSON.stringify(outcomes));
    for (const outcome of outcomes) {
      assert.equal(outcome.event, 'error', JSON.stringify(outcome));
      assert.equal(outcome.code, 'NODEFPM_NO_LISTENER');
      assert.match(String(outcome.message), /^fd 0 is not a listening socket$/);
    }
  } finally {
    await child.stop();
    connected.destroy();
    await new Promise((resolve) => acceptor.close(resolve));
  }
});

test('fd 0 that is /dev/null: nothing inherited, and fd:0 or systemd say NODEFPM_NO_LISTENER', async () => {
  const child = Child.app(['inherited', 'fd:0', 'systemd'], { stdin: 'ignore' });
  try {
    await child.next((event) => event.event === 'ready', 'the app to try each');
    const outcomes = child.events.filter((event) => ['error', 'listening', 'none'].includes(event.event));
    assert.deepEqual(outcomes, [
      { event: 'none' },
      { event: 'error', code: 'NODEFPM_NO_LISTENER', message: 'fd 0 is not a listening socket' },
      { event: 'error', code: 'NODEFPM_NO_LISTENER', message: 'systemd passed no sockets (LISTEN_FDS is unset or LISTEN_PID is another process)' },
    ]);
  } finally {
    await child.stop();
  }
});

test(`systemd socket activation: fd 3 with LISTEN_FDS/LISTEN_PID is found by inheritedListenAddress() and served`, async () => {
  requirePython();
  const path = join(scratch.path, 'activated.sock');
  const child = Child.launched(['--unix', path, '--fd', '3', '--systemd', 'web'], ['inherited']);
  try {
    const listening = await child.next((event) => event.event === 'listening' || event.event === 'error', 'the app to listen');
    assert.deepEqual(listening, { event: 'listening', address: 'systemd' });
    const answer = JSON.parse(await get({ path }, '/activated')) as { pid: number; url: string };
    assert.deepEqual(answer, { pid: child.process.pid, url: '/activated' });
  } finally {
    await child.stop();
  }
});

test(`systemd sockets chosen by name (LISTEN_FDNAMES): an unknown name is NODEFPM_NO_LISTENER, the right one is served`, async () => {
  requirePython();
  const path = join(scratch.path, 'named.sock');
  const child = Child.launched(['--unix', path, '--fd', '3', '--systemd', 'web'], ['systemd:admin', 'systemd:web']);
  try {
    await child.next((event) => event.event === 'ready', 'the app to try both');
    const outcomes = child.events.filter((event) => event.event === 'error' || event.event === 'listening');
    assert.deepEqual(outcomes, [
      { event: 'error', code: 'NODEFPM_NO_LISTENER', message: 'systemd passed no socket named admin (LISTEN_FDNAMES=web)' },
      { event: 'listening', address: 'systemd:web' },
    ]);
    assert.equal(JSON.parse(await get({ path }, '/named')).url, '/named');
  } finally {
    await child.stop();
  }
});

// ---- the allow-list: allowedClients and FCGI_WEB_SERVER_ADDRS (section 3.2) ----

test('allowedClients lists 127.0.0.1: a TCP connection from 127.0.0.1 is served', async () => {
  const { server, bound, logs } = await start('127.0.0.1:0', { allowedClients: ['127.0.0.1'] });
  try {
    assert.equal(await get(peerAddress(bound), '/allowed'), 'ok /allowed');
    assert.equal(logs.find('NODEFPM_CLIENT_NOT_ALLOWED').length, 0);
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test('allowedClients lists only 10.1.2.3: a connection from 127.0.0.1 is closed at once, unanswered, and the log says why', async () => {
  const { server, bound, logs } = await start('127.0.0.1:0', { allowedClients: ['10.1.2.3'] });
  try {
    const { records } = await refusedConnection(peerAddress(bound));
    assert.equal(records, 0, 'nothing was answered');
    const entry = await logs.waitFor('NODEFPM_CLIENT_NOT_ALLOWED', 10_000);
    assert.equal(entry.level, 'warn');
    assert.match(entry.message, /^refused connection from 127\.0\.0\.1: not in FCGI_WEB_SERVER_ADDRS \/ allowedClients$/);
    assert.equal(server.stats.connectionsRefused, 1);
    assert.equal(server.stats.connectionsAccepted, 0);
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test('with an allow-list, a Unix socket connection is refused (it has no address to be on the list)', async () => {
  const { server, bound, logs } = await start(`unix:${join(scratch.path, 'listed.sock')}`, { allowedClients: ['127.0.0.1'] });
  try {
    const { records } = await refusedConnection(peerAddress(bound));
    assert.equal(records, 0);
    const entry = await logs.waitFor('NODEFPM_CLIENT_NOT_ALLOWED', 10_000);
    assert.match(entry.message, /refused connection from a Unix socket/);
  } finally {
    await server.close({ timeout: 1000 });
  }
});

test(`on a dual-stack listener, 127.0.0.1 arrives as ::ffff:127.0.0.1 and still matches; ::1 matches ::1`, async () => {
  requireIPv6();
  const { server, bound, logs } = await start('[::]:0', { allowedClients: ['127.0.0.1', '::1'] });
  try {
    const port = bound.kind === 'tcp' ? bound.port : 0;
    assert.equal(await get({ host: '127.0.0.1', port }, '/mapped'), 'ok /mapped');
    assert.equal(await get({ host: '::1', port }, '/v6'), 'ok /v6');
    assert.equal(logs.find('NODEFPM_CLIENT_NOT_ALLOWED').length, 0);
  } finally {
    await server.close({ timeout: 1000 });
  }
  const v6only = await start('[::]:0', { allowedClients: ['::1'] });
  try {
    const port = v6only.bound.kind === 'tcp' ? v6only.bound.port : 0;
    await refusedConnection({ host: '127.0.0.1', port });
    const entry = await v6only.logs.waitFor('NODEFPM_CLIENT_NOT_ALLOWED', 10_000);
    assert.match(entry.message, /refused connection from ::ffff:127\.0\.0\.1/);
  } finally {
    await v6only.server.close({ timeout: 1000 });
  }
});

test('FCGI_WEB_SERVER_ADDRS in the environment of a real process: a listed TCP peer is served, a Unix socket peer is refused', async () => {
  const path = join(scratch.path, 'env.sock');
  const child = Child.app(['127.0.0.1:0', `unix:${path}`], { env: childEnv({ FCGI_WEB_SERVER_ADDRS: ' 10.9.8.7, 127.0.0.1 ' }) });
  try {
    await child.next((event) => event.event === 'ready', 'the app to listen');
    const listening = child.events.filter((event) => event.event === 'listening').map((event) => String(event.address));
    assert.equal(listening.length, 2, JSON.stringify(child.events));
    const port = Number(listening[0]!.split(':')[1]);
    assert.equal(JSON.parse(await get({ host: '127.0.0.1', port }, '/listed')).url, '/listed');
    const { records } = await refusedConnection({ path });
    assert.equal(records, 0);
    const logged = await child.next((event) => event.event === 'log' && event.code === 'NODEFPM_CLIENT_NOT_ALLOWED', 'the refusal to be logged');
    assert.match(String(logged.message), /refused connection from a Unix socket/);
  } finally {
    await child.stop();
  }
});
