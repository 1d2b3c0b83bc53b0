// Unit tests of Exchange's output observer: what a process manager learns of a request's output, and when.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordParser, RecordType, Role } from '../protocol/index.js';
import { Exchange, type ExchangeHost, type ExchangeOutputObserver } from './exchange.js';

/** A connection stand-in that keeps what the exchange writes and flushes when asked. */
function fakeHost(): ExchangeHost & { written: Buffer[]; ended: number } {
  const host = {
    written: [] as Buffer[],
    ended: 0,
    outputBlocked: false,
    writeOut: (buffer: Buffer) => void host.written.push(buffer),
    writeOutBatch: (buffers: Buffer[]) => void host.written.push(...buffers),
    scheduleFlush: (exchange: Exchange) => queueMicrotask(() => exchange.flushPending()),
    exchangeEnded: () => void host.ended++,
    inputHasRoom: () => {},
  };
  return host;
}

function recordingObserver(): ExchangeOutputObserver & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    headQueued: (head) => void events.push(`head ${head.split('\r\n')[0]}`),
    outputBegan: () => void events.push('output'),
  };
}

function stdoutOf(written: Buffer[]): string {
  let text = '';
  const parser = new RecordParser({
    onRecord: (type, _id, content) => {
      if (type === RecordType.Stdout) text += content.toString('latin1');
    },
  });
  for (const buffer of written) parser.push(buffer);
  return text;
}

test('the output observer hears of each head queued and, once, of the first output', () => {
  const host = fakeHost();
  const exchange = new Exchange(host, 1, Role.Responder, true, 65536, false);
  const observer = recordingObserver();
  exchange.outputObserver = observer;
  exchange.writeHead('Status: 500 Internal Server Error\r\n\r\n');
  // A head not yet sent may be replaced: the observer gets the one that counts last.
  exchange.writeHead('Status: 404 Not Found\r\n\r\n');
  exchange.write('missing');
  exchange.end();
  assert.deepEqual(observer.events, ['head Status: 500 Internal Server Error', 'output', 'head Status: 404 Not Found']);
  assert.equal(stdoutOf(host.written), 'Status: 404 Not Found\r\n\r\nmissing', 'the observer changes nothing in the output');
});

test('body bytes, FCGI_STDERR or the end alone each count as the first output', () => {
  const cases: Array<[string, (exchange: Exchange) => void]> = [
    ['write', (exchange) => exchange.write('x')],
    ['writeStderr', (exchange) => exchange.writeStderr('oops')],
    ['end', (exchange) => exchange.end(1)],
  ];
  for (const [name, produce] of cases) {
    const exchange = new Exchange(fakeHost(), 1, Role.Responder, true, 65536, false);
    const observer = recordingObserver();
    exchange.outputObserver = observer;
    produce(exchange);
    exchange.end();
    assert.deepEqual(observer.events, ['output'], `${name}: told once, with no head`);
  }
});

test('an exchange without an observer writes the same bytes', () => {
  const watched = fakeHost();
  const plain = fakeHost();
  for (const [host, observer] of [
    [watched, recordingObserver()],
    [plain, null],
  ] as const) {
    const exchange = new Exchange(host, 3, Role.Responder, true, 65536, false);
    exchange.outputObserver = observer;
    exchange.writeHead('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n');
    exchange.write('hello');
    exchange.end();
  }
  assert.deepEqual(Buffer.concat(watched.written), Buffer.concat(plain.written));
  assert.equal(plain.ended, 1);
});
