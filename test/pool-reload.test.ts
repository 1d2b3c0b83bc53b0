// Reloads under continuous load: SIGHUP and SIGUSR2 bring in the new code with zero failed requests, kept and new connections alike; broken new code keeps the old workers.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, TIMEOUT, eventually, startLoad, startMaster, tempDir, type LoadResult } from './fixtures/pool-harness.js';

function writeApp(path: string, version: string): void {
  const source = readFileSync(join(FIXTURES, 'pool-app.mjs'), 'utf8');
  writeFileSync(path, source.replace("const VERSION = 'v1';", `const VERSION = '${version}';`));
}

function describe(result: LoadResult): string {
  return `${result.ok} ok, ${result.failed} failed: ${JSON.stringify(result.failures.slice(0, 5))}`;
}

test('SIGHUP and SIGUSR2 reload under continuous load: new code, old workers drained, zero failed requests', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const app = join(dir, 'app.mjs');
  writeApp(app, 'v1');
  const socket = join(dir, 'reload.sock');
  const address = `unix:${socket}`;
  const master = startMaster(t, [app, '--listen', address, '--workers', '2']);
  const first = await master.waitForWorkers(2);

  const kept = startLoad(t, address, { connections: 4, keepConn: true, uri: '/' });
  const fresh = startLoad(t, address, { connections: 4, keepConn: false, uri: '/' });
  await eventually(() => kept.ok > 50 && fresh.ok > 50, 'load to flow');

  writeApp(app, 'v2');
  let from = master.stderr.length;
  master.signal('SIGHUP');
  await master.waitFor(/SIGHUP: reloaded \(generation 1\)/, { from });
  for (const pid of first) await master.waitFor(new RegExp(`worker ${pid} \\(slot \\d\\) exited \\(code 0\\)`));
  const afterFirst = kept.ok + fresh.ok;
  await eventually(() => kept.ok + fresh.ok > afterFirst + 100, 'load to go on after the first reload');

  writeApp(app, 'v3');
  from = master.stderr.length;
  master.signal('SIGUSR2');
  await master.waitFor(/SIGUSR2: reloaded \(generation 2\)/, { from });
  const afterSecond = kept.ok + fresh.ok;
  await eventually(() => kept.ok + fresh.ok > afterSecond + 100, 'load to go on after the second reload');

  const keptResult = await kept.stop();
  const freshResult = await fresh.stop();
  assert.equal(keptResult.failed, 0, `kept-alive connections: ${describe(keptResult)}`);
  assert.equal(freshResult.failed, 0, `a connection per request: ${describe(freshResult)}`);
  const versions = new Set([...keptResult.bodies, ...freshResult.bodies].map((body) => body.split(' ')[0]));
  assert.deepEqual([...versions].sort(), ['v1', 'v2', 'v3'], 'every generation served');
  assert.match(keptResult.bodies.at(-1)!, /^v3 /, 'the last answers come from the newest code');
  assert.match(freshResult.bodies.at(-1)!, /^v3 /);
  assert.equal(master.workers().length, 2, 'still two workers');
  assert.equal(master.everReady().length, 6, 'two per generation');

  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});

test('a reload whose new code fails to load keeps the old workers serving, with no failed request', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  const app = join(dir, 'app.mjs');
  writeApp(app, 'v1');
  const address = `unix:${join(dir, 'broken.sock')}`;
  const master = startMaster(t, [app, '--listen', address, '--workers', '2']);
  const workers = await master.waitForWorkers(2);
  const load = startLoad(t, address, { connections: 3, keepConn: false, uri: '/' });
  await eventually(() => load.ok > 30, 'load to flow');

  writeFileSync(app, "export const api = 'native';\nexport default (req, res) => { res.end('never'; };\n");
  master.signal('SIGHUP');
  await master.waitFor(/SIGHUP failed: .*SyntaxError.*; the workers of generation 0 go on serving code=NODEFPM_RELOAD_FAILED/);
  const before = load.ok;
  await eventually(() => load.ok > before + 50, 'load to go on');
  const result = await load.stop();
  assert.equal(result.failed, 0, describe(result));
  assert.ok(result.bodies.every((body) => body.startsWith('v1 ')), 'only the old code answered');
  assert.deepEqual(master.workers().sort(), workers.sort(), 'the same two workers serve');

  // Fixed code reloads fine afterwards.
  writeApp(app, 'v2');
  master.signal('SIGHUP');
  await master.waitFor(/SIGHUP: reloaded \(generation 1\)/);
  master.signal('SIGTERM');
  assert.deepEqual(await master.exited, { code: 0, signal: null });
});
