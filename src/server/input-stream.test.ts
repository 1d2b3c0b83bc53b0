// InputStream: push/read/readSync/onReadable, the high-water mark and inputHasRoom, end, fail, discard, one reader at a time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputStream, type InputSource } from './input-stream.js';

/** The connection's side, reduced to what InputStream calls: counts inputHasRoom calls. */
class Source implements InputSource {
  roomCalls = 0;
  inputHasRoom(): void {
    this.roomCalls++;
  }
}

function stream(highWaterMark = 1024): { input: InputStream; source: Source } {
  const source = new Source();
  return { input: new InputStream(source, highWaterMark), source };
}

const b = (text: string): Buffer => Buffer.from(text);

/** Settles within a few event-loop turns, or reports it is still pending. */
async function settled<T>(promise: Promise<T>): Promise<{ state: 'resolved'; value: T } | { state: 'rejected'; error: unknown } | { state: 'pending' }> {
  let outcome: { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown } | { state: 'pending' } = { state: 'pending' };
  promise.then(
    (value) => {
      outcome = { state: 'resolved', value };
    },
    (error: unknown) => {
      outcome = { state: 'rejected', error };
    },
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return outcome;
}

test('chunks pushed come out in order through read(), then null at the end', async () => {
  const { input } = stream();
  assert.equal(input.push(b('one')), true);
  assert.equal(input.push(b('two')), true);
  input.end();
  assert.equal((await input.read())?.toString(), 'one');
  assert.equal((await input.read())?.toString(), 'two');
  assert.equal(await input.read(), null);
  assert.equal(await input.read(), null, 'reading past the end keeps returning null');
  assert.equal(input.bytesReceived, 6);
  assert.equal(input.finished, true);
});

test('a read waiting on an empty stream is resolved by the next push, and by end()', async () => {
  const { input } = stream();
  const first = input.read();
  assert.equal((await settled(first)).state, 'pending', 'nothing was pushed yet');
  input.push(b('late'));
  assert.equal((await first)?.toString(), 'late');
  assert.equal(input.bytesBuffered, 0, 'a chunk handed straight to a waiting reader is never queued');
  const second = input.read();
  input.end();
  assert.equal(await second, null);
});

test('readSync gives undefined when nothing is there, chunks when there are, and null at the end', () => {
  const { input } = stream();
  assert.equal(input.readSync(), undefined);
  input.push(b('x'));
  assert.equal(input.readSync()?.toString(), 'x');
  assert.equal(input.readSync(), undefined);
  input.end();
  assert.equal(input.readSync(), null);
});

test('onReadable is called when a chunk is queued, at the end, and on failure', () => {
  const { input } = stream();
  const calls: string[] = [];
  input.onReadable = () => calls.push(`buffered=${input.bytesBuffered} ended=${String(input.ended)} error=${String(input.error !== null)}`);
  input.push(b('abc'));
  input.end();
  assert.deepEqual(calls, ['buffered=3 ended=false error=false', 'buffered=3 ended=true error=false']);

  const other = stream().input;
  let failures = 0;
  other.onReadable = () => {
    if (other.error !== null) failures++;
  };
  other.fail(new Error('gone'));
  assert.equal(failures, 1);
});

test('push returns false at the high-water mark, and inputHasRoom is called once the reader brings it under', async () => {
  const { input, source } = stream(10);
  assert.equal(input.push(b('123456')), true, '6 of 10 bytes: room left');
  assert.equal(input.full, false);
  assert.equal(input.push(b('789012')), false, '12 of 10 bytes: over the mark');
  assert.equal(input.full, true);
  assert.equal(input.push(b('3')), false, 'still over the mark');
  assert.equal(source.roomCalls, 0);
  assert.equal((await input.read())?.toString(), '123456');
  assert.equal(input.bytesBuffered, 7);
  assert.equal(input.full, false, 'under the mark again');
  assert.equal(source.roomCalls, 1, 'the source hears once that there is room');
  assert.equal(input.readSync()?.toString(), '789012');
  assert.equal(source.roomCalls, 1, 'no second call while the stream was never full again');
});

test('end() with chunks still queued lets the reader take them before null', async () => {
  const { input } = stream();
  input.push(b('a'));
  input.end();
  assert.equal(input.ended, true);
  assert.equal(input.finished, false, 'a chunk is still queued');
  assert.equal((await input.read())?.toString(), 'a');
  assert.equal(input.finished, true);
  assert.equal(input.push(b('after')), true, 'pushes after the end are ignored');
  assert.equal(await input.read(), null);
  assert.equal(input.bytesReceived, 1);
});

test('fail() rejects the waiting read and every later read, drops queued chunks and frees a full stream', async () => {
  const { input, source } = stream(4);
  const error = new Error('connection lost');
  const { input: waiting } = stream();
  const pending = waiting.read();
  waiting.fail(error);
  await assert.rejects(pending, (thrown) => thrown === error);
  await assert.rejects(waiting.read(), (thrown) => thrown === error);

  assert.equal(input.push(b('12345')), false);
  input.fail(error);
  assert.equal(input.bytesBuffered, 0, 'queued chunks are dropped');
  assert.equal(source.roomCalls, 1, 'a full stream that fails tells its source there is room');
  assert.throws(() => input.readSync(), (thrown) => thrown === error);
  await assert.rejects(input.read(), (thrown) => thrown === error);
  assert.equal(input.finished, true);
  assert.equal(input.push(b('more')), true, 'pushes after a failure are ignored');
  assert.equal(input.bytesReceived, 5);
});

test('fail() after the reader took everything up to the end changes nothing', async () => {
  const { input } = stream();
  input.push(b('all'));
  input.end();
  assert.equal((await input.read())?.toString(), 'all');
  input.fail(new Error('too late'));
  assert.equal(input.error, null);
  assert.equal(await input.read(), null);
});

test('the first failure wins', async () => {
  const { input } = stream();
  const first = new Error('first');
  input.fail(first);
  input.fail(new Error('second'));
  await assert.rejects(input.read(), (thrown) => thrown === first);
});

test('discard() drops queued and later chunks, keeps counting bytes, and frees a full stream', async () => {
  const { input, source } = stream(4);
  assert.equal(input.push(b('123456')), false);
  input.discard();
  assert.equal(input.discarded, true);
  assert.equal(input.bytesBuffered, 0);
  assert.equal(source.roomCalls, 1);
  assert.equal(input.push(b('more bytes than the mark')), true, 'a discarding stream never asks the connection to stop');
  assert.equal(input.bytesBuffered, 0);
  assert.equal(input.bytesReceived, 6 + 24);
  const pending = input.read();
  assert.equal((await settled(pending)).state, 'pending', 'a read waits for the end: the discarded bytes never arrive');
  input.end();
  assert.equal(await pending, null);
});

test('a second next() while one is waiting is rejected; the first still gets the chunk', async () => {
  const { input } = stream();
  const first = input.next();
  await assert.rejects(input.next(), /a read is already waiting/);
  input.push(b('only'));
  const result = await first;
  assert.equal(result.done, false);
  assert.equal(result.value?.toString(), 'only');
});

test('async iteration yields every chunk; a second iterator is refused', async () => {
  const { input } = stream();
  input.push(b('a'));
  input.push(b('b'));
  input.end();
  const seen: string[] = [];
  for await (const chunk of input) seen.push(chunk.toString());
  assert.deepEqual(seen, ['a', 'b']);
  assert.throws(() => input[Symbol.asyncIterator](), /already being iterated/);
});

test('breaking out of for-await discards the rest', async () => {
  const { input, source } = stream(4);
  input.push(b('first'));
  assert.equal(input.push(b('second')), false);
  for await (const chunk of input) {
    assert.equal(chunk.toString(), 'first');
    break;
  }
  assert.equal(input.discarded, true);
  assert.equal(input.bytesBuffered, 0);
  assert.ok(source.roomCalls >= 1, 'the source is told there is room after the rest is dropped');
});

test('consume(): queued chunks first, then each push lent at once; keepsChunks is false while consuming; end resolves', async () => {
  const { input, source } = stream(4);
  assert.equal(input.keepsChunks, true);
  input.push(b('abc'));
  input.push(b('defg'));
  assert.equal(input.full, true);
  const seen: string[] = [];
  const done = input.consume((chunk) => seen.push(chunk.toString()));
  assert.deepEqual(seen, ['abc', 'defg'], 'the queue is handed over at once');
  assert.equal(source.roomCalls, 1, 'emptying the queue tells the source it has room');
  assert.equal(input.keepsChunks, false, 'chunks are lent, not kept, while a consumer is attached');
  assert.equal(input.push(b('hij')), true);
  assert.deepEqual(seen, ['abc', 'defg', 'hij'], 'a push reaches the consumer synchronously');
  assert.equal(input.bytesBuffered, 0);
  assert.deepEqual(await settled(done), { state: 'pending' });
  input.end();
  assert.deepEqual(await settled(done), { state: 'resolved', value: undefined });
  assert.equal(input.bytesReceived, 10);
});

test('consume(): the stream failing rejects it; a consumer that throws rejects it and the rest is dropped', async () => {
  const { input } = stream();
  const failed = input.consume(() => {});
  const reason = new Error('lost');
  input.fail(reason);
  assert.deepEqual(await settled(failed), { state: 'rejected', error: reason });
  assert.deepEqual(await settled(input.consume(() => {})), { state: 'rejected', error: reason }, 'consuming a failed stream rejects at once');

  const second = stream().input;
  const oops = new Error('consumer bug');
  let calls = 0;
  const thrown = second.consume(() => {
    calls++;
    throw oops;
  });
  second.push(b('one'));
  second.push(b('two'));
  assert.equal(calls, 1, 'nothing more is lent after the throw');
  assert.equal(second.discarded, true);
  assert.equal(second.keepsChunks, false, 'the rest is dropped, not kept');
  assert.deepEqual(await settled(thrown), { state: 'rejected', error: oops });
});

test('consume(): one reader at a time, and an ended stream resolves after its queue is lent', async () => {
  const { input } = stream();
  const waiting = input.read();
  await assert.rejects(input.consume(() => {}), /already being read/);
  input.push(b('x'));
  assert.equal((await waiting)?.toString(), 'x');
  const first = input.consume(() => {});
  await assert.rejects(input.consume(() => {}), /already being read/);
  input.end();
  await first;

  const ended = stream().input;
  ended.push(b('last'));
  ended.end();
  const seen: string[] = [];
  await ended.consume((chunk) => seen.push(chunk.toString()));
  assert.deepEqual(seen, ['last']);
});
