// Tests for the config file: JSON and ini, key spellings, php-fpm directives and units, relative paths, the command line on top.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { loadCommand, readConfigFile } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'nodefpm-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function fails(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isNodefpmError(error, 'NODEFPM_INVALID_OPTION'), `NODEFPM_INVALID_OPTION, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

test('JSON: keys as the table names them or as flags, typed or text values, app and file paths relative to the file', () => {
  const path = file(
    'a.json',
    JSON.stringify({ app: 'app.js', workers: 4, 'max-body-bytes': '1M', listen: ['./a.sock', '127.0.0.1:9000'], accessLog: 'logs/access.log', multiplex: false }),
  );
  const config = readConfigFile(path, '/elsewhere');
  assert.equal(config.app, join(dir, 'app.js'));
  assert.equal(config.values.get('workers'), 4);
  assert.equal(config.values.get('maxBodyBytes'), 1024 * 1024);
  assert.deepEqual(config.values.get('listen'), [
    { kind: 'unix', path: join(dir, 'a.sock') },
    { kind: 'tcp', host: '127.0.0.1', port: 9000 },
  ]);
  assert.equal(config.values.get('accessLog'), join(dir, 'logs/access.log'));
  assert.equal(config.values.get('multiplex'), false);
});

test("ini: php-fpm's pool file, its directive names, bare seconds, log levels and section name", () => {
  const path = file(
    'www.conf',
    [
      '; comment',
      '# another',
      '[global]',
      'error_log = /var/log/nodefpm.log',
      'log_level = notice',
      'emergency_restart_interval = 60',
      '[www]',
      'listen = /run/www.sock',
      'listen.owner = www-data',
      'listen.mode = 0660',
      'pm = ondemand',
      'pm.max_children = 12',
      'pm.process_idle_timeout = 10s',
      'request_terminate_timeout = 30',
      'access.format = "%R - %u %t \\"%m %r\\" %s"',
      'env[HOSTNAME] = $HOSTNAME',
      'app = app.mjs',
    ].join('\n'),
  );
  const config = readConfigFile(path, '/');
  assert.equal(config.values.get('poolName'), 'www');
  assert.equal(config.values.get('errorLog'), '/var/log/nodefpm.log');
  assert.equal(config.values.get('logLevel'), 'info', 'notice is info');
  assert.equal(config.values.get('emergencyRestartInterval'), 60_000, 'php-fpm times without a unit are seconds');
  assert.equal(config.values.get('requestTimeout'), 30_000);
  assert.equal(config.values.get('workerIdleTimeout'), 10_000);
  assert.equal(config.values.get('workers'), 12);
  assert.equal(config.values.get('pm'), 'ondemand');
  assert.equal(config.values.get('socketOwner'), 'www-data');
  assert.equal(config.values.get('socketMode'), 0o660);
  assert.equal(config.values.get('accessFormat'), '%R - %u %t \\"%m %r\\" %s');
  assert.deepEqual(config.ignored, ['env[HOSTNAME]']);
  assert.equal(config.app, join(dir, 'app.mjs'));
});

test('the command line overrides the file; a list on the command line replaces the file’s', () => {
  const path = file('b.json', JSON.stringify({ app: 'from-file.js', workers: 3, listen: '/run/file.sock', pingPath: '/ping' }));
  const command = loadCommand(['--config', path, '--workers', '1', '--listen', '/run/argv.sock'], '/');
  assert.equal(command.app, join(dir, 'from-file.js'));
  assert.deepEqual(command.settings.pool, { pm: 'static', workers: 1, pingPath: '/ping' });
  assert.deepEqual(command.settings.listen, [{ kind: 'unix', path: '/run/argv.sock' }]);
  assert.equal(loadCommand(['other.js', '--config', path], '/').app, 'other.js', 'an app module on the command line wins');
  // A pool option in the file and the pool on the command line go together.
  const split = file('c.json', JSON.stringify({ statusPath: '/status' }));
  assert.deepEqual(loadCommand(['app.js', '--config', split, '--workers', '2'], '/').settings.pool, { pm: 'static', workers: 2, statusPath: '/status' });
});

test('mistakes name the file, the line or key, and what was expected', () => {
  fails(() => readConfigFile(file('bad.json', '{ "workers": '), '/'), /bad\.json: not valid JSON/);
  fails(() => readConfigFile(file('array.json', '[1]'), '/'), /array\.json: expected a JSON object of options/);
  fails(() => readConfigFile(file('typo.json', '{ "idleTimeot": "5s" }'), '/'), /typo\.json: unknown option "idleTimeot" \(did you mean --idle-timeout\?\)/);
  fails(() => readConfigFile(file('value.json', '{ "workers": -1 }'), '/'), /value\.json: workers: must be at least 0, got -1/);
  fails(() => readConfigFile(file('list.json', '{ "workers": [1, 2] }'), '/'), /list\.json: workers takes one value, got a list/);
  fails(() => readConfigFile(file('help.json', '{ "help": true }'), '/'), /help\.json: help belongs on the command line/);
  fails(() => readConfigFile(file('line.ini', 'workers = 2\nnonsense\n'), '/'), /line\.ini: line 2: expected key = value/);
  fails(() => readConfigFile(join(dir, 'absent.ini'), '/'), /absent\.ini: no such file/);
});
