// Tests for the pool's options: defaults (php-fpm's, bounded by the pool's size) and the combinations refused.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { resolvePoolOptions } from './options.js';

const setup = { module: '/srv/setup.js', options: { app: '/srv/www/shop.mjs' } };

test('defaults: static, one worker per CPU, php-fpm spare bounds within --workers, the pool named after the app', () => {
  const options = resolvePoolOptions({ setup, listen: ['/run/a.sock'] });
  assert.equal(options.pm, 'static');
  assert.equal(options.workers, availableParallelism());
  assert.equal(options.poolName, 'shop');
  assert.deepEqual(options.listen, [{ kind: 'unix', path: '/run/a.sock' }]);
  assert.equal(options.closeTimeout, 30_000);
  assert.equal(options.workerConcurrency, 100);
  const dynamic = resolvePoolOptions({ setup, listen: ['/run/a.sock'], pm: 'dynamic', workers: 2 });
  assert.deepEqual([dynamic.minSpareWorkers, dynamic.maxSpareWorkers, dynamic.startWorkers], [1, 2, 1], 'max spare 3 is capped at 2 workers');
  const large = resolvePoolOptions({ setup, listen: ['/run/a.sock'], pm: 'dynamic', workers: 20 });
  assert.deepEqual([large.minSpareWorkers, large.maxSpareWorkers, large.startWorkers], [1, 3, 2], "php-fpm's defaults: start = min + (max - min) / 2");
});

test('impossible combinations are NODEFPM_INVALID_OPTION naming the options both ways', () => {
  const refuse = (options: Parameters<typeof resolvePoolOptions>[0], message: RegExp): void => {
    assert.throws(() => resolvePoolOptions(options), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION') && message.test(error.message), String(message));
  };
  refuse({ setup, listen: [] }, /listen needs at least one address/);
  refuse({ setup, listen: ['/a'], pm: 'dynamic', workers: 4, maxSpareWorkers: 5 }, /maxSpareWorkers \(--max-spare-workers\), 5, must not exceed workers \(--workers\), 4/);
  refuse({ setup, listen: ['/a'], pm: 'dynamic', workers: 8, minSpareWorkers: 4, maxSpareWorkers: 2 }, /minSpareWorkers \(--min-spare-workers\), 4, must not exceed/);
  refuse({ setup, listen: ['/a'], pm: 'dynamic', workers: 2, startWorkers: 3 }, /startWorkers \(--start-workers\), 3, must not exceed/);
  refuse({ setup, listen: ['/a'], workers: 0 }, /workers \(--workers\) must be an integer >= 1, got 0/);
  refuse({ setup, listen: ['/a'], statusPath: '/s', pingPath: '/s' }, /the status path and the ping path must differ/);
  refuse({ setup, listen: ['/a'], statusPath: 'status' }, /statusPath \(--status-path\) must be a path starting with \//);
  refuse({ setup, listen: ['/a'], accessFormat: '%Z' }, /unknown placeholder %Z/);
});
