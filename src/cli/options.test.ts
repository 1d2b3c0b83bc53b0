// Tests for the command's option table and parser: defaults, every value form, bad values, --help and docs/cli.md from the table.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isNodefpmError, type ErrorCode } from '../errors.js';
import { parseListenAddress } from '../server/listen.js';
import { defaultLimits, resolveOptions, type Limits } from '../server/options.js';
import {
  OPTIONS,
  coerceOption,
  defaultOf,
  displayFlag,
  flagOf,
  formatValue,
  helpText,
  optionSpec,
  optionsMarkdown,
  parseCommandLine,
  synopsisOf,
  type OptionSpec,
} from './options.js';

function throwsCode(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isNodefpmError(error, code), `expected ${code}, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

function spec(key: string): OptionSpec {
  const found = optionSpec(key);
  assert.ok(found !== undefined, `the table has an option ${key}`);
  return found;
}

test('with only an app module every setting has its default and the server options are left to the server', () => {
  const command = parseCommandLine(['app.js']);
  assert.equal(command.app, 'app.js');
  assert.equal(command.help, false);
  assert.equal(command.version, false);
  assert.deepEqual(command.settings, {
    api: undefined,
    validate: false,
    listen: [],
    socketMode: 0o660,
    socketOwner: undefined,
    socketGroup: undefined,
    listenBacklog: 511,
    logLevel: 'info',
    errorLog: undefined,
    closeTimeout: 30_000,
    server: {},
    handler: {},
    pool: null,
  });
});

test('every Limits field of the server has a flag, and the flag sets that field', () => {
  for (const key of Object.keys(defaultLimits) as Array<keyof Limits>) {
    const option = spec(key);
    assert.equal(option.scope, 'limits', `${key} is a limit`);
    assert.equal(option.default, defaultLimits[key], `the table shows the server's default for ${key}`);
    const value = key.endsWith('Timeout') ? 1234 : 32768;
    const command = parseCommandLine(['app.js', `--${flagOf(option)}`, String(value)]);
    assert.deepEqual(command.settings.server, { [key]: value }, `--${flagOf(option)} sets ${key}`);
  }
  assert.ok(optionSpec('maxBodyBytes') !== undefined && flagOf(spec('maxBodyBytes')) === 'max-body-bytes', 'flags are kebab-case');
  assert.equal(flagOf(spec('idleTimeout')), 'idle-timeout');
});

test("the table's bounds are the server's: the least value passes both, one less fails both", () => {
  for (const option of OPTIONS.filter((o) => o.scope === 'limits')) {
    const key = option.key as keyof Limits;
    const min = option.min!;
    assert.equal(typeof min, 'number', `${key} has a minimum`);
    assert.doesNotThrow(() => resolveOptions({ [key]: min }, {}), `the server takes ${key}=${min}`);
    assert.doesNotThrow(() => parseCommandLine(['a.js', `--${flagOf(option)}=${min}`]), `the parser takes --${flagOf(option)}=${min}`);
    if (min > 0) {
      assert.throws(() => resolveOptions({ [key]: min - 1 }, {}), `the server refuses ${key}=${min - 1}`);
      throwsCode(() => parseCommandLine(['a.js', `--${flagOf(option)}=${min - 1}`]), 'NODEFPM_INVALID_OPTION', new RegExp(`--${flagOf(option)}`));
    }
    if (option.max !== undefined) {
      assert.doesNotThrow(() => resolveOptions({ [key]: option.max }, {}), `the server takes ${key}=${option.max}`);
      assert.throws(() => resolveOptions({ [key]: option.max! + 1 }, {}), `the server refuses ${key}=${option.max! + 1}`);
      throwsCode(() => parseCommandLine(['a.js', `--${flagOf(option)}=${option.max! + 1}`]), 'NODEFPM_INVALID_OPTION', /at most/);
    }
  }
});

test('values are read in every documented form, as --flag value and --flag=value', () => {
  const cases: Array<[string[], (settings: ReturnType<typeof parseCommandLine>['settings']) => unknown, unknown]> = [
    [['--max-body-bytes', '1048576'], (s) => s.server.maxBodyBytes, 1048576],
    [['--max-body-bytes=64k'], (s) => s.server.maxBodyBytes, 65536],
    [['--max-body-bytes=64KiB'], (s) => s.server.maxBodyBytes, 65536],
    [['--max-body-bytes', '10M'], (s) => s.server.maxBodyBytes, 10 * 1024 * 1024],
    [['--max-body-bytes', '2G'], (s) => s.server.maxBodyBytes, 2 * 1024 ** 3],
    [['--max-params-bytes', '512b'], (s) => s.server.maxParamsBytes, 512],
    [['--idle-timeout', '0'], (s) => s.server.idleTimeout, 0],
    [['--idle-timeout', '5s'], (s) => s.server.idleTimeout, 5000],
    [['--params-timeout=250ms'], (s) => s.server.paramsTimeout, 250],
    [['--body-timeout', '0'], (s) => s.server.bodyTimeout, 0],
    [['--close-timeout', '2m'], (s) => s.closeTimeout, 120_000],
    [['--close-timeout', '1h'], (s) => s.closeTimeout, 3_600_000],
    [['--max-connections', '10'], (s) => s.server.maxConnections, 10],
    [['--socket-mode', '600'], (s) => s.socketMode, 0o600],
    [['--socket-mode', '0666'], (s) => s.socketMode, 0o666],
    [['--socket-mode=0o640'], (s) => s.socketMode, 0o640],
    [['--no-multiplex'], (s) => s.server.multiplex, false],
    [['--multiplex'], (s) => s.server.multiplex, true],
    [['--multiplex=false'], (s) => s.server.multiplex, false],
    [['--no-tune-malloc'], (s) => s.server.tuneMalloc, false],
    [['--development'], (s) => s.handler.development, true],
    [['--no-development'], (s) => s.handler.development, false],
    [['--no-reserve-framework-fields'], (s) => s.handler.reserveFrameworkFields, false],
    [['--validate'], (s) => s.validate, true],
    [['--body-limit', '1M'], (s) => s.handler.bodyLimit, 1024 * 1024],
    [['--line-limit', '4k'], (s) => s.handler.lineLimit, 4096],
    [['--log-level', 'debug'], (s) => s.logLevel, 'debug'],
    [['--api', 'fetch'], (s) => s.api, 'fetch'],
    [['--api=native'], (s) => s.api, 'native'],
    [['--allowed-clients', '127.0.0.1, ::1', '--allowed-clients=10.0.0.1'], (s) => s.server.allowedClients, ['127.0.0.1', '::1', '10.0.0.1']],
  ];
  for (const [args, read, expected] of cases) {
    const command = parseCommandLine(['app.js', ...args]);
    assert.deepEqual(read(command.settings), expected, args.join(' '));
    assert.equal(command.app, 'app.js', `${args.join(' ')} leaves the app module alone`);
  }
  // Options may come before the app module too.
  assert.equal(parseCommandLine(['--log-level', 'warn', 'app.js']).app, 'app.js');
});

test('--listen takes every form the server accepts, and may be repeated', () => {
  const forms = ['unix:/run/app.sock', '/run/app.sock', './app.sock', '127.0.0.1:9000', 'localhost:0', '[::1]:9000', 'fd:0', 'fd:3', 'systemd', 'systemd:web'];
  for (const form of forms) {
    assert.deepEqual(parseCommandLine(['app.js', '--listen', form]).settings.listen, [parseListenAddress(form)], form);
  }
  const twice = parseCommandLine(['app.js', '--listen', 'unix:/tmp/a.sock', '--listen=127.0.0.1:9000']);
  assert.deepEqual(twice.settings.listen, [
    { kind: 'unix', path: '/tmp/a.sock' },
    { kind: 'tcp', host: '127.0.0.1', port: 9000 },
  ]);
});

test('a bad value is NODEFPM_INVALID_OPTION naming the option and what it expects', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--max-body-bytes', 'lots'], /--max-body-bytes: expected a size in bytes/],
    [['--max-body-bytes', '1.5M'], /--max-body-bytes: expected a size/],
    [['--max-body-bytes', '-1'], /--max-body-bytes/],
    [['--max-connections', '0'], /--max-connections: must be at least 1, got 0/],
    [['--max-connections', '10k'], /--max-connections: expected a whole number/],
    [['--idle-timeout', 'soon'], /--idle-timeout: expected a time/],
    [['--idle-timeout', '30d'], /--idle-timeout/],
    [['--output-high-water-mark', '1k'], /--output-high-water-mark: must be at least 16k/],
    [['--close-timeout', '1000h'], /--close-timeout: must be at most/],
    [['--socket-mode', '888'], /--socket-mode: expected octal/],
    [['--socket-mode', '1777'], /--socket-mode: must be at most 0777/],
    [['--api', 'express'], /--api: expected one of native, node, fetch, got "express"/],
    [['--log-level', 'loud'], /--log-level: expected one of error, warn, info, debug/],
    [['--listen', 'nowhere'], /--listen: listen address "nowhere": no port given \(a relative socket path needs the unix: prefix or \.\/\); accepted forms: unix:/],
    [['--listen', '127.0.0.1:99999'], /--listen: .*port "99999"/],
    [['--listen', '[nothost]:80'], /--listen: .*not an IPv6 address/],
    [['--allowed-clients', 'example.com'], /--allowed-clients: "example.com" is not an IPv4 or IPv6 address/],
    [['--allowed-clients', ','], /--allowed-clients: expected a comma-separated list/],
    [['--development=maybe'], /--development: expected true or false/],
  ];
  for (const [args, message] of cases) throwsCode(() => parseCommandLine(['app.js', ...args]), 'NODEFPM_INVALID_OPTION', message);
});

test('an unparseable command line is NODEFPM_USAGE: unknown options (with a suggestion), missing values, two modules', () => {
  const cases: Array<[string[], RegExp]> = [
    [['app.js', '--max-body-byte', '1'], /unknown option --max-body-byte \(did you mean --max-body-bytes\?\)/],
    [['app.js', '--lisen', 'x:1'], /unknown option --lisen \(did you mean --listen\?\)/],
    [['app.js', '--frobnicate'], /^unknown option --frobnicate$/],
    [['app.js', '--no-listen'], /unknown option --no-listen/],
    [['app.js', '-x'], /unknown option -x/],
    [['app.js', '--listen'], /--listen needs a value: ADDR/],
    [['app.js', '--listen', '--api', 'native'], /--listen needs a value/],
    [['app.js', '--api'], /--api needs a value: native\|node\|fetch/],
    [['app.js', '--no-multiplex=true'], /--no-multiplex takes no value/],
    [['one.js', 'two.js'], /one app module expected, got 2/],
  ];
  for (const [args, message] of cases) throwsCode(() => parseCommandLine(args), 'NODEFPM_USAGE', message);
});

test('-- ends the options; -h and -v are --help and --version', () => {
  assert.equal(parseCommandLine(['--', '--odd-name.js']).app, '--odd-name.js');
  assert.equal(parseCommandLine(['-h']).help, true);
  assert.equal(parseCommandLine(['--help']).help, true);
  assert.equal(parseCommandLine(['-v']).version, true);
  assert.equal(parseCommandLine(['--version']).app, undefined);
});

test('coerceOption also takes typed values, as a config file will give them', () => {
  assert.equal(coerceOption(spec('maxBodyBytes'), 4096, 'maxBodyBytes in nodefpm.json'), 4096);
  assert.equal(coerceOption(spec('maxBodyBytes'), '4k'), 4096);
  assert.equal(coerceOption(spec('multiplex'), false), false);
  assert.equal(coerceOption(spec('socketMode'), 0o600), 0o600);
  assert.deepEqual(coerceOption(spec('allowedClients'), ['127.0.0.1', '::1']), ['127.0.0.1', '::1']);
  assert.deepEqual(coerceOption(spec('listen'), ['unix:/a.sock', '127.0.0.1:1']), [parseListenAddress('unix:/a.sock'), parseListenAddress('127.0.0.1:1')]);
  throwsCode(() => coerceOption(spec('maxBodyBytes'), 1.5, 'maxBodyBytes in nodefpm.json'), 'NODEFPM_INVALID_OPTION', /^maxBodyBytes in nodefpm.json: expected/);
  throwsCode(() => coerceOption(spec('maxBodyBytes'), { size: 1 }), 'NODEFPM_INVALID_OPTION', /expected a number or text/);
});

test('every default is shown in a form the parser reads back to the same value', () => {
  for (const option of OPTIONS) {
    if (option.default === undefined) continue;
    const shown = formatValue(option, option.default);
    const read = option.type === 'boolean' ? coerceOption(option, option.default) : coerceOption(option, shown);
    assert.deepEqual(read, option.default, `${option.key}: default shown as ${shown}`);
  }
});

test('--help explains every option of the table with its default, the exit statuses and the signals', () => {
  const help = helpText();
  assert.match(help, /^Usage: nodefpm <app-module> \[--api native\|node\|fetch\] \[--listen ADDR\] \[options\]/);
  const flat = help.replace(/\s+/g, ' ');
  for (const option of OPTIONS) {
    assert.ok(help.includes(`  ${synopsisOf(option)}\n`), `--help lists ${synopsisOf(option)}`);
    assert.ok(flat.includes(option.description), `--help explains ${displayFlag(option)}`);
    const fallback = defaultOf(option);
    if (fallback !== undefined) assert.ok(flat.includes(`Default: ${fallback}.`), `--help states the default of ${displayFlag(option)}`);
  }
  assert.ok(help.includes('--no-multiplex'), 'a boolean that is on by default is shown by its --no- form');
  for (const code of ['0', '1', '2']) assert.match(help, new RegExp(`^  ${code}  `, 'm'), `--help explains exit status ${code}`);
  assert.match(flat, /SIGTERM or SIGINT: stop accepting connections/);
  for (const line of help.split('\n')) assert.ok(line.length <= 100, `--help lines fit in 100 columns: ${line}`);
});

test('docs/cli.md carries the options table generated from OPTIONS', () => {
  const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
  const match = /<!-- options:start[^>]*-->\n([\s\S]*?)<!-- options:end -->/.exec(doc);
  assert.ok(match !== null, 'docs/cli.md has the <!-- options:start --> and <!-- options:end --> markers');
  assert.equal(
    match[1],
    optionsMarkdown(),
    'docs/cli.md is out of date: paste the output of `npx tsx -e "import(\'./src/cli/options.ts\').then((m) => process.stdout.write(m.optionsMarkdown()))"` between its markers',
  );
});

test('the process manager: --workers N means static, --pm chooses, none or --workers 0 is one process', () => {
  assert.equal(parseCommandLine(['app.js']).settings.pool, null);
  assert.equal(parseCommandLine(['app.js', '--workers', '0']).settings.pool, null, '--workers 0: no pool');
  assert.deepEqual(parseCommandLine(['app.js', '--workers', '4']).settings.pool, { pm: 'static', workers: 4 });
  assert.deepEqual(parseCommandLine(['app.js', '--pm', 'ondemand']).settings.pool, { pm: 'ondemand' });
  assert.deepEqual(parseCommandLine(['app.js', '--pm', 'none']).settings.pool, null);
  const dynamic = parseCommandLine([
    'app.js',
    '--pm=dynamic',
    '--workers=8',
    '--min-spare-workers=2',
    '--max-spare-workers=4',
    '--worker-max-requests=500',
    '--worker-max-memory=512M',
    '--request-timeout=30s',
    '--slowlog-timeout=5s',
    '--status-path=/status',
    '--ping-path=/ping',
    '--access-format=json',
  ]).settings.pool;
  assert.deepEqual(dynamic, {
    pm: 'dynamic',
    workers: 8,
    minSpareWorkers: 2,
    maxSpareWorkers: 4,
    workerMaxRequests: 500,
    workerMaxMemory: 512 * 1024 * 1024,
    requestTimeout: 30_000,
    slowlogTimeout: 5_000,
    statusPath: '/status',
    pingPath: '/ping',
    accessFormat: 'json',
  });
  // Options of the listener and the log apply with or without a pool.
  const single = parseCommandLine(['app.js', '--socket-owner', 'www-data', '--socket-group', 'www-data', '--listen-backlog', '64', '--error-log', 'e.log']).settings;
  assert.deepEqual([single.socketOwner, single.socketGroup, single.listenBacklog, single.errorLog], ['www-data', 'www-data', 64, 'e.log']);
});

test('a pool option without a pool, or --pm and --workers at odds, is NODEFPM_USAGE or NODEFPM_INVALID_OPTION saying what to add', () => {
  throwsCode(() => parseCommandLine(['app.js', '--status-path', '/status']), 'NODEFPM_USAGE', /--status-path needs a process manager: add --workers N/);
  throwsCode(() => parseCommandLine(['app.js', '--worker-max-requests', '10']), 'NODEFPM_USAGE', /--worker-max-requests needs a process manager/);
  throwsCode(() => parseCommandLine(['app.js', '--pm', 'none', '--workers', '3']), 'NODEFPM_USAGE', /--workers 3 needs a process manager, but --pm is none/);
  throwsCode(() => parseCommandLine(['app.js', '--pm', 'static', '--workers', '0']), 'NODEFPM_INVALID_OPTION', /--workers: must be at least 1 with --pm static/);
  throwsCode(() => parseCommandLine(['app.js', '--workers', '2', '--ping-path', 'ping']), 'NODEFPM_INVALID_OPTION', /--ping-path: expected a path starting with \//);
  throwsCode(() => parseCommandLine(['app.js', '--pm', 'sometimes']), 'NODEFPM_INVALID_OPTION', /--pm: expected one of none, static, dynamic, ondemand/);
});
