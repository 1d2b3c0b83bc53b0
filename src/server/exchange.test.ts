// Unit tests of Exchange's output: the observer a process manager watches it through, and endWith()'s single write.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordParser, RecordType, Role } from '../protocol/index.js';
import { Exchange, type ExchangeHost, type ExchangeOutputObserver } from './exchange.js';

/** A connection stand-in that keeps what the exchange writes and flushes when asked. */
function fakeHost(): ExchangeHost & { written: Buffer[]; ended: number; flushesScheduled: number } {
  const host = {
    written: [] as Buffer[],
    ended: 0,
    flushesScheduled: 0,
    outputBlocked: false,
    writeOut: (buffer: Buffer) => void host.written.push(buffer),
    writeOutBatch: (buffers: Buffer[]) => void host.written.push(...buffers),
    scheduleFlush: (exchange: Exchange) => {
      host.flushesScheduled++;
      queueMicrotask(() => exchange.flushPending());
    },
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
  return recordsOf(written)
    .filter(([type]) => type === RecordType.Stdout)
    .map(([, content]) => content)
    .join('');
}

/** Every record written, as [type, content as Latin-1]. */
function recordsOf(written: Buffer[]): Array<[number, string]> {
  const records: Array<[number, string]> = [];
  const parser = new RecordParser({ onRecord: (type, _id, content) => void records.push([type, content.toString('latin1')]) });
  for (const buffer of written) parser.push(buffer);
  return records;
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

test('endWith() sends the head, the last chunk and the end records in one write, scheduling no flush', () => {
  const host = fakeHost();
  const exchange = new Exchange(host, 2, Role.Responder, true, 65536, false);
  exchange.endWith('Status: 200 OK\r\nContent-Length: 5\r\n\r\n', 'hello', 0);
  assert.equal(host.written.length, 1, 'one socket write');
  assert.equal(host.flushesScheduled, 0, 'no flush queued for bytes the end sends anyway');
  assert.equal(host.ended, 1);
  assert.deepEqual(
    recordsOf(host.written).map(([type, content]) => [type, content.length > 0 ? content : '']),
    [
      [RecordType.Stdout, 'Status: 200 OK\r\nContent-Length: 5\r\n\r\nhello'],
      [RecordType.Stdout, ''],
      [RecordType.EndRequest, '\0\0\0\0\0\0\0\0'],
    ],
  );
  // Writes that are not followed by the end still get their flush.
  const open = fakeHost();
  new Exchange(open, 3, Role.Responder, true, 65536, false).write('partial');
  assert.equal(open.flushesScheduled, 1);
});

test('endWith() without a head or a chunk, and with the application status', () => {
  const host = fakeHost();
  const exchange = new Exchange(host, 4, Role.Responder, true, 65536, false);
  exchange.writeHead('Status: 204 No Content\r\n\r\n');
  exchange.endWith(null, null, 3);
  assert.equal(stdoutOf(host.written), 'Status: 204 No Content\r\n\r\n');
  const endRequest = recordsOf(host.written).find(([type]) => type === RecordType.EndRequest);
  assert.equal(endRequest?.[1].charCodeAt(3), 3, 'appStatus in END_REQUEST');
});

test('endWith() is seen by the output observer as the head, the output and the end it sends', () => {
  const host = fakeHost();
  const exchange = new Exchange(host, 5, Role.Responder, true, 65536, false);
  const observer = recordingObserver();
  exchange.outputObserver = observer;
  exchange.endWith('Status: 404 Not Found\r\n\r\n', 'missing');
  assert.deepEqual(observer.events, ['head Status: 404 Not Found', 'output']);
});

test("endWith() in the Filter role waits for the end of STDIN like end() does", () => {
  const host = fakeHost();
  const exchange = new Exchange(host, 6, Role.Filter, true, 65536, true);
  exchange.endWith('Status: 200 OK\r\n\r\n', 'filtered');
  assert.equal(host.written.length, 0, 'nothing leaves before the end of STDIN (section 6.4)');
  assert.equal(host.ended, 0);
  exchange.stdinComplete();
  assert.equal(stdoutOf(host.written), 'Status: 200 OK\r\n\r\nfiltered');
  assert.equal(host.ended, 1);
});
