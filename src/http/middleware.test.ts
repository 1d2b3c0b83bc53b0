// compose(): the order middleware run in, short-circuiting, and arguments that are not middleware.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import type { Handler } from './handler.js';
import { compose, type Middleware } from './middleware.js';
import type { Request } from './request.js';
import type { Response } from './response.js';

// The middleware here never touch req or res, so stand-ins do.
const req = {} as Request;
const res = {} as Response;

function tracing(name: string, log: string[]): Middleware {
  return (next) => async (rq, rs) => {
    log.push(`${name} in`);
    await next(rq, rs);
    log.push(`${name} out`);
  };
}

test('compose(a, b, c)(handler) runs a, then b, then c, then the handler, and unwinds in reverse', async () => {
  const log: string[] = [];
  const handler: Handler = () => {
    log.push('handler');
  };
  await compose(tracing('a', log), tracing('b', log), tracing('c', log))(handler)(req, res);
  assert.deepEqual(log, ['a in', 'b in', 'c in', 'handler', 'c out', 'b out', 'a out']);
});

test('a middleware may answer without calling next; compose() of nothing is the handler itself', async () => {
  const log: string[] = [];
  const stop: Middleware = () => () => {
    log.push('stopped');
  };
  const handler: Handler = () => {
    log.push('handler');
  };
  await compose(tracing('a', log), stop, tracing('never', log))(handler)(req, res);
  assert.deepEqual(log, ['a in', 'stopped', 'a out']);
  assert.equal(compose()(handler), handler);
});

test('an argument that is not a function is refused with NODEFPM_INVALID_OPTION', () => {
  assert.throws(() => compose(tracing('a', []), 42 as unknown as Middleware), (error) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
});
