// Unit tests of the Node-listener adapter on an Exchange with a scripted host: what reaches the connection, when, and in how many writes.

import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { NodefpmError } from '../../errors.js';
import { silentLogger } from '../../log.js';
import { ParamsBlock, RecordParser, RecordType, decodeEndRequest, encodePairs } from '../../protocol/index.js';
import { Exchange, ExchangeState, type ExchangeHost } from '../../server/exchange.js';
import type { InputStream } from '../../server/input-stream.js';
import { nodeExchangeHandler, type NodeRequestListener } from './handler.js';

/** A connection stand-in: records every write and every end, and blocks output on demand. */
class Host implements ExchangeHost {
  outputBlocked = false;
  writes: Buffer[] = [];
  ended: Exchange[] = [];
  #flushes: Exchange[] = [];

  writeOut(buffer: Buffer): void {
    this.writes.push(Buffer.from(buffer));
  }

  writeOutBatch(buffers: Buffer[]): void {
    this.writes.push(Buffer.concat(buffers));
  }

  scheduleFlush(exchange: Exchange): void {
    if (this.#flushes.push(exchange) === 1) {
      process.nextTick(() => {
        for (const queued of this.#flushes.splice(0)) queued.flushPending();
      });
    }
  }

  exchangeEnded(exchange: Exchange): void {
    this.ended.push(exchange);
  }

  inputHasRoom(_stream: InputStream): void {}

  /** Records in everything written so far. */
  records(): Array<{ type: number; content: Buffer }> {
    const records: Array<{ type: number; content: Buffer }> = [];
    const parser = new RecordParser({ onRecord: (type, _id, content) => records.push({ type, content: Buffer.from(content) }) });
    for (const write of this.writes) parser.push(write);
    return records;
  }

  stdout(): string {
    return Buffer.concat(this.records().filter((record) => record.type === RecordType.Stdout).map((record) => record.content)).toString('latin1');
  }
}

function run(listener: NodeRequestListener, params: Record<string, string> = {}): { host: Host; exchange: Exchange } {
  const host = new Host();
  const exchange = new Exchange(host, 1, 1, true, 64 * 1024, false);
  exchange.setParams(new ParamsBlock(encodePairs({ REQUEST_METHOD: 'GET', REQUEST_URI: '/', SERVER_PROTOCOL: 'HTTP/1.1', HTTP_HOST: 'h', ...params })));
  exchange.state = ExchangeState.Running;
  nodeExchangeHandler(listener, {}, silentLogger)(exchange);
  return { host, exchange };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('output to the connection', () => {
  test('a response ended at once leaves in one write: head, body, terminators and END_REQUEST together', () => {
    const { host, exchange } = run((_req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.end('Hello World!');
    });
    assert.equal(host.writes.length, 1, 'one write to the connection');
    assert.deepEqual(host.ended, [exchange]);
    const records = host.records();
    assert.deepEqual(records.map((record) => record.type), [RecordType.Stdout, RecordType.Stdout, RecordType.EndRequest]);
    assert.match(records[0]!.content.toString('latin1'), /^Status: 200 OK\r\nContent-Type: text\/plain\r\nDate: .*\r\nContent-Length: 12\r\n\r\nHello World!$/);
    assert.equal(decodeEndRequest(records[2]!.content).appStatus, 0);
  });

  test('writes in one tick are sent together at its end; end() later adds END_REQUEST', async () => {
    let response: ServerResponse | undefined;
    const { host } = run((_req, res) => {
      response = res;
      res.write('a');
      res.write('b');
    });
    assert.equal(host.writes.length, 0, 'nothing before the end of the tick');
    await tick();
    assert.equal(host.writes.length, 1);
    response!.end();
    assert.equal(host.writes.length, 2);
    assert.match(host.stdout(), /\r\n\r\nab$/);
    assert.equal(host.records().at(-1)!.type, RecordType.EndRequest);
  });

  test('res.write follows the connection\'s backpressure, and drain follows exchange.drained()', async () => {
    let response: ServerResponse | undefined;
    const { host, exchange } = run((_req, res) => {
      response = res;
    });
    const res = response!;
    assert.equal(res.write('x'), true);
    host.outputBlocked = true;
    assert.equal(res.write('y'), false);
    assert.equal(res.writableNeedDrain, true);
    let drains = 0;
    res.on('drain', () => drains++);
    host.outputBlocked = false;
    exchange.drained();
    assert.equal(drains, 1);
    assert.equal(res.writableNeedDrain, false);
    exchange.drained();
    assert.equal(drains, 1, 'one drain per wait');
    res.end();
    await tick();
    assert.match(host.stdout(), /xy$/);
  });
});

describe('aborts', () => {
  test('an abort ends nothing while the connection is still inside abort(); the request is closed just after', async () => {
    const events: string[] = [];
    const { host, exchange } = run((req, res) => {
      req.on('aborted', () => events.push('req:aborted'));
      req.on('close', () => events.push('req:close'));
      res.on('close', () => events.push('res:close'));
    });
    exchange.abort(new NodefpmError('NODEFPM_REQUEST_ABORTED', 'test abort'));
    assert.deepEqual(host.ended, [], 'the connection finishes its own bookkeeping first');
    await tick();
    await tick();
    assert.deepEqual(host.ended, [exchange]);
    assert.deepEqual(events.sort(), ['req:aborted', 'req:close', 'res:close']);
    assert.deepEqual(host.records().map((record) => record.type), [RecordType.Stdout, RecordType.EndRequest], 'only the terminators after an abort');
  });

  test('a response ended after the abort writes nothing more', async () => {
    let response: ServerResponse | undefined;
    const { host, exchange } = run((_req, res) => {
      response = res;
    });
    exchange.abort(new NodefpmError('NODEFPM_REQUEST_ABORTED', 'test abort'));
    response!.end('too late');
    await tick();
    assert.equal(host.stdout(), '');
    assert.equal(host.ended.length, 1);
  });
});

describe('the request body', () => {
  test('the body is pushed as the request asks for it; complete once FCGI_STDIN ended', async () => {
    let request: IncomingMessage | undefined;
    const { exchange } = run((req) => {
      request = req;
    }, { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '6' });
    const req = request!;
    assert.equal(req.complete, false);
    const chunks: string[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
    const ended = new Promise<void>((resolve) => req.on('end', resolve));
    exchange.stdin.push(Buffer.from('abc'));
    await tick();
    exchange.stdin.push(Buffer.from('def'));
    exchange.stdin.end();
    await ended;
    assert.deepEqual(chunks, ['abc', 'def']);
    assert.equal(req.complete, true);
  });

  test('a request nobody read ends and closes once the response has (regression: a GET whose STDIN had ended never closed, as Koa\'s apps showed)', async () => {
    for (const params of [{}, { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' }] as Array<Record<string, string>>) {
      const events: string[] = [];
      const { exchange } = run((req, res) => {
        req.on('end', () => events.push('end'));
        req.on('close', () => events.push('close'));
        // Like Koa answering a GET: the request stream is never touched. Node's http dumps it after the response.
        setImmediate(() => res.end('ok'));
      }, params);
      if (params.CONTENT_LENGTH !== undefined) exchange.stdin.push(Buffer.from('abc'));
      exchange.stdin.end();
      for (let i = 0; i < 5 && !events.includes('close'); i++) await tick();
      assert.deepEqual(events, ['end', 'close'], `${JSON.stringify(params)}: 'end' then 'close'`);
    }
  });
});
