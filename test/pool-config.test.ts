// The config file: JSON and php-fpm-style ini, the command line over it, its errors, and SIGHUP re-reading it.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, TIMEOUT, eventually, request, startMaster, statusJson, tempDir } from './fixtures/pool-harness.js';

const APP_PATH = join(FIXTURES, 'pool-app.mjs');

test('a JSON config file, relative paths resolved against it, the command line overriding it; SIGHUP re-reads it', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'pool.json');
  const write = (pingResponse: string): void =>
    writeFileSync(
      config,
      JSON.stringify({ app: APP_PATH, listen: './cfg.sock', workers: 3, pingPath: '/ping', pingResponse, statusPath: '/status', errorLog: 'error.log', maxBodyBytes: '1M' }),
    );
  write('from the file');
  const master = startMaster(t, ['--config', config, '--workers', '1']);
  const address = `unix:${join(dir, 'cfg.sock')}`;
  await eventually(() => existsSync(join(dir, 'error.log')) && readFileSync(join(dir, 'error.log'), 'utf8').includes('with a static pool of 1 worker,'), 'the start in the error log');
  assert.equal((await request(address, '/ping')).body, 'from the file\n', 'the file sets the ping');
  const status = await statusJson(address);
  assert.equal(status['total processes'], 1, '--workers 1 on the command line overrides "workers": 3');
  assert.equal(master.stderr, '', 'with errorLog set, nothing goes to stderr');

  write('after the reload');
  master.signal('SIGHUP');
  await eventually(() => readFileSync(join(dir, 'error.log'), 'utf8').includes('SIGHUP: reloaded (generation 1)'), 'the reload');
  assert.equal((await request(address, '/ping')).body, 'after the reload\n', 'the reload read the file again');
  const serving = (await statusJson(address)).processes.filter((process) => process.state !== 'Draining');
  assert.equal(serving.length, 1, 'the command line still wins (the old worker may still be draining)');

  writeFileSync(config, '{ "workers": "many" }');
  master.signal('SIGHUP');
  await eventually(() => /SIGHUP: not reloading: .*pool\.json: workers: expected a whole number, got "many"/.test(readFileSync(join(dir, 'error.log'), 'utf8')), 'the refusal');
  assert.equal((await request(address, '/ping')).body, 'after the reload\n', 'a broken file leaves the pool as it was');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});

test("a php-fpm pool file (ini) with php-fpm's directive names and units", { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'ini.sock');
  const config = join(dir, 'www.conf');
  writeFileSync(
    config,
    [
      '; brought over from php-fpm',
      '[global]',
      'emergency_restart_threshold = 10',
      'emergency_restart_interval = 1m',
      '',
      '[www]',
      `app = ${APP_PATH}`,
      `listen = ${socket}`,
      'listen.mode = 0666',
      'pm = dynamic',
      'pm.max_children = 3',
      'pm.start_servers = 2',
      'pm.min_spare_servers = 1',
      'pm.max_spare_servers = 2',
      'pm.status_path = /status',
      'ping.path = /ping',
      'request_slowlog_timeout = 5',
      'php_admin_value[memory_limit] = 128M',
      'catch_workers_output = yes',
    ].join('\n'),
  );
  const master = startMaster(t, ['--config', config]);
  await master.waitForWorkers(2);
  await master.waitFor(/ignored the php-fpm directive php_admin_value\[memory_limit\]: it has no meaning for nodefpm/);
  const status = await statusJson(`unix:${socket}`);
  assert.equal(status.pool, 'www', 'the section names the pool');
  assert.equal(status['process manager'], 'dynamic');
  assert.equal(status['total processes'], 2, 'pm.start_servers');
  assert.equal((await request(`unix:${socket}`, '/ping')).body, 'pong\n');
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});

test('config and command-line mistakes: exit 2 naming the file, the key or the option', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const unknown = join(dir, 'unknown.json');
  writeFileSync(unknown, JSON.stringify({ app: APP_PATH, listen: join(dir, 'x.sock'), workres: 2 }));
  const badIni = join(dir, 'bad.ini');
  writeFileSync(badIni, `app = ${APP_PATH}\nlisten = ${join(dir, 'y.sock')}\nworkers two\n`);
  const twoPools = join(dir, 'two.conf');
  writeFileSync(twoPools, '[a]\nworkers = 1\n[b]\nworkers = 2\n');
  const cases: Array<[string[], RegExp]> = [
    [['--config', unknown], /unknown\.json: unknown option "workres" \(did you mean --workers\?\)/],
    [['--config', badIni], /bad\.ini: line 3: expected key = value, got "workers two"/],
    [['--config', twoPools], /two\.conf: line 3: a second pool \[b\] after \[a\]: one nodefpm runs one pool/],
    [['--config', join(dir, 'missing.json')], /missing\.json: no such file/],
    [[APP_PATH, '--listen', join(dir, 'z.sock'), '--status-path', '/status'], /--status-path needs a process manager: add --workers N/],
    [[APP_PATH, '--listen', join(dir, 'z.sock'), '--workers', '2', '--pm', 'none'], /--workers 2 needs a process manager, but --pm is none/],
    [[APP_PATH, '--listen', join(dir, 'z.sock'), '--pm', 'dynamic', '--workers', '0'], /--workers: must be at least 1 with --pm dynamic/],
    [[APP_PATH, '--listen', join(dir, 'z.sock'), '--workers', '2', '--status-path', 'status'], /--status-path: expected a path starting with \//],
    [[APP_PATH, '--listen', join(dir, 'z.sock'), '--workers', '2', '--access-format', '%Z'], /--access-format "%Z": unknown placeholder %Z/],
  ];
  const runs = cases.map(([args]) => startMaster(t, args));
  for (const [index, [args, message]] of cases.entries()) {
    const run = runs[index]!;
    const exit = await run.exited;
    assert.equal(exit.code, 2, `${args.join(' ')}: exit 2\n${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
  }
});

test('an app module that fails to load stops the master before any worker starts', { timeout: TIMEOUT }, async (t) => {
  const master = startMaster(t, ['test/fixtures/cli-throws.mjs', '--listen', join(tempDir(t), 'never.sock'), '--workers', '2']);
  assert.deepEqual(await master.exited, { code: 1, signal: null });
  assert.match(master.stderr, /cli-throws\.mjs: Error: database URL is not configured code=NODEFPM_APP_LOAD/);
  assert.doesNotMatch(master.stderr, /worker \d+ starting/, 'no worker was forked');
});
