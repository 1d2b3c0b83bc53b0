// Unit tests of the validator's exchange view on an in-memory exchange: it forwards everything, and each mode handles a violation as documented.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodefpmError } from '../../errors.js';
import { silentLogger } from '../../log.js';
import { encodePairs, ParamsBlock, RecordParser, RecordType } from '../../protocol/index.js';
import { Exchange, type ExchangeHost, type ExchangeListener } from '../../server/exchange.js';
import { InputStream } from '../../server/input-stream.js';
import { monitorOf, validateExchangeHandler, ValidationError, type ValidateOptions } from './exchange.js';

const params = {
  REQUEST_METHOD: 'POST',
  REQUEST_URI: '/x',
  SCRIPT_NAME: '/x',
  QUERY_STRING: '',
  SERVER_PROTOCOL: 'HTTP/1.1',
  SERVER_NAME: 'localhost',
  SERVER_PORT: '80',
  CONTENT_LENGTH: '3',
};

/** An exchange on no socket whose output records are parsed as they are written. */
function memoryExchange(values: Record<string, string> = params): { exchange: Exchange; stdout: () => string; stderr: () => string; ended: () => boolean } {
  let stdout = '';
  let stderr = '';
  let ended = false;
  const parser = new RecordParser({
    onRecord: (type, _id, content) => {
      if (type === RecordType.Stdout) stdout += content.toString('latin1');
      else if (type === RecordType.Stderr) stderr += content.toString();
      else if (type === RecordType.EndRequest) ended = true;
    },
  });
  const host: ExchangeHost = {
    outputBlocked: false,
    writeOut: (buffer) => void parser.push(buffer),
    writeOutBatch: (buffers) => {
      for (const buffer of buffers) parser.push(buffer);
    },
    scheduleFlush: (exchange) => exchange.flushPending(),
    exchangeEnded() {},
    inputHasRoom() {},
  };
  const exchange = new Exchange(host, 7, 1, true, 1024, false);
  exchange.setParams(new ParamsBlock(encodePairs(values)));
  return { exchange, stdout: () => stdout, stderr: () => stderr, ended: () => ended };
}

/** Runs `app` on a validated memory exchange; returns the exchange's output and the handler. */
function run(app: (exchange: Exchange) => void, options: ValidateOptions = {}, values?: Record<string, string>) {
  const memory = memoryExchange(values);
  const handler = validateExchangeHandler(app, { logger: silentLogger, ...options });
  handler(memory.exchange);
  return { ...memory, handler };
}

test('the view the app gets forwards every member of the exchange and is instanceof Exchange', () => {
  let seen: Exchange | null = null;
  const { exchange } = run((view) => {
    seen = view;
  });
  const view = seen! as Exchange;
  assert.notEqual(view, exchange, 'the app gets a view, not the real exchange');
  assert.ok(view instanceof Exchange, 'instanceof Exchange');
  assert.equal(view.id, 7);
  assert.equal(view.role, 1);
  assert.equal(view.keepConn, true);
  assert.equal(view.declaredLength, 3);
  assert.equal(view.param('REQUEST_URI'), '/x');
  assert.equal(view.params.SERVER_NAME, 'localhost');
  assert.equal(view.aborted, false);
  assert.equal(view.signal, exchange.signal);
  assert.equal(view.stdoutBytes, 0);
  assert.equal(view.needsDrain, false);
  assert.ok(view.stdin instanceof InputStream, 'stdin view instanceof InputStream');
  assert.equal(view.data, null);
  assert.ok(monitorOf(view) !== undefined, 'the monitor is found from the view');
  // Every member of the class is reachable through the view without a private-field error.
  for (const name of Object.getOwnPropertyNames(Exchange.prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(Exchange.prototype, name)!;
    if (descriptor.get !== undefined) assert.doesNotThrow(() => (view as unknown as Record<string, unknown>)[name], name);
  }
});

test('a listener set on the view hears drain and abort from the real exchange', () => {
  const events: string[] = [];
  let view: Exchange | null = null;
  const { exchange } = run((v) => {
    view = v;
    const listener: ExchangeListener = { exchangeDrained: () => events.push('drain'), exchangeAborted: (reason) => events.push(reason.code) };
    v.listener = listener;
  });
  assert.notEqual(view!.listener, null);
  exchange.abort(new NodefpmError('NODEFPM_REQUEST_ABORTED', 'test'));
  assert.deepEqual(events, ['NODEFPM_REQUEST_ABORTED']);
});

test('a correct app passes unchanged', () => {
  const { stdout, ended, handler } = run(
    (view) => {
      view.stdin.push(Buffer.from('abc'));
      view.stdin.end();
      assert.equal(view.stdin.readSync()!.toString(), 'abc');
      view.writeHead('Status: 200 OK\r\nContent-Length: 2\r\n\r\n');
      view.write('ok');
      view.end();
    },
    { mode: 'collect' },
  );
  assert.deepEqual(handler.violations, []);
  assert.equal(stdout(), 'Status: 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.equal(ended(), true);
});

test("mode 'collect' records a violation and changes nothing", () => {
  const { stdout, handler } = run(
    (view) => {
      view.writeHead('Status: 200 OK\r\n\r\n');
      view.writeHead('Status: 201 Created\r\n\r\n');
      view.end();
    },
    { mode: 'collect' },
  );
  assert.deepEqual(
    handler.violations.map((v) => v.code),
    ['NODEFPM_VALIDATE_HEAD_TWICE'],
  );
  const violation = handler.violations[0]!;
  assert.ok(violation instanceof ValidationError && violation instanceof NodefpmError, 'a ValidationError, a NodefpmError');
  assert.equal(violation.side, 'app');
  assert.equal(violation.requestId, 7);
  assert.equal(violation.request, 'POST /x');
  assert.equal(violation.status, 500);
  // Passed on as the app wrote it (this memory host flushes each write at once, so both heads show).
  assert.equal(stdout(), 'Status: 200 OK\r\n\r\nStatus: 201 Created\r\n\r\n');
});

test("mode 'throw' throws from the call that broke the rule, which then does nothing", () => {
  let thrown: unknown;
  const { stdout } = run(
    (view) => {
      view.writeHead('Status: 200 OK\r\n\r\n');
      try {
        view.writeHead('Status: 201 Created\r\n\r\n');
      } catch (error) {
        thrown = error;
      }
      view.end();
    },
    { mode: 'throw' },
  );
  assert.ok(thrown instanceof ValidationError && thrown.code === 'NODEFPM_VALIDATE_HEAD_TWICE', 'HEAD_TWICE thrown');
  assert.equal(stdout(), 'Status: 200 OK\r\n\r\n');
});

test("mode 'report' answers 500 with the reason when nothing was sent, and drops the app's later output", () => {
  const reported: string[] = [];
  const { stdout, stderr, ended } = run(
    (view) => {
      view.write('body before head');
      view.writeHead('Status: 200 OK\r\n\r\n');
      view.end();
    },
    { onViolation: (violation) => reported.push(violation.code) },
  );
  assert.deepEqual(reported, ['NODEFPM_VALIDATE_NO_HEAD']);
  assert.match(stdout(), /^Status: 500 Internal Server Error\r\n/);
  assert.match(stdout(), /NODEFPM_VALIDATE_NO_HEAD/);
  assert.match(stderr(), /nodefpm validate: NODEFPM_VALIDATE_NO_HEAD/);
  assert.equal(ended(), true);
});

test("mode 'report' lets output through once the head is out, and reports in FCGI_STDERR", () => {
  const { stdout, stderr } = run((view) => {
    view.writeHead('Status: 200 OK\r\nContent-Length: 5\r\n\r\n');
    view.write('too long');
    view.end();
  });
  assert.equal(stdout(), 'Status: 200 OK\r\nContent-Length: 5\r\n\r\ntoo long');
  assert.match(stderr(), /NODEFPM_VALIDATE_CONTENT_LENGTH/);
});

test('server-side findings come before the app runs; in report mode the app does not run', () => {
  let ran = false;
  const { stdout } = run(
    () => {
      ran = true;
    },
    {},
    { ...params, REQUEST_METHOD: '' },
  );
  assert.equal(ran, false);
  assert.match(stdout(), /NODEFPM_VALIDATE_PARAM_MISSING/);
});

test('reading the body after end() is NODEFPM_VALIDATE_READ_AFTER_END; ignore skips a code', () => {
  const app = (view: Exchange): void => {
    view.writeHead('Status: 204 No Content\r\n\r\n');
    view.end();
    view.stdin.readSync();
  };
  assert.deepEqual(
    run(app, { mode: 'collect' }).handler.violations.map((v) => v.code),
    ['NODEFPM_VALIDATE_READ_AFTER_END'],
  );
  assert.deepEqual(run(app, { mode: 'collect', ignore: ['NODEFPM_VALIDATE_READ_AFTER_END'] }).handler.violations, []);
});

test('an unknown mode is NODEFPM_INVALID_OPTION', () => {
  assert.throws(
    () => validateExchangeHandler(() => {}, { mode: 'loud' as never }),
    (error: unknown) => error instanceof NodefpmError && error.code === 'NODEFPM_INVALID_OPTION',
  );
});
