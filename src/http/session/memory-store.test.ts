// MemoryStore on fake time: get/set/destroy/touch, expiry on read and by the sweep, the entry bound, copies not references.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { isNodefpmError } from '../../errors.js';
import { MemoryStore } from './memory-store.js';
import { newSessionId } from './store.js';

const HOUR = 60 * 60 * 1000;
let stores: MemoryStore[] = [];

function store(options?: ConstructorParameters<typeof MemoryStore>[0]): MemoryStore {
  const made = new MemoryStore(options);
  stores.push(made);
  return made;
}

beforeEach(() => {
  mock.timers.enable({ apis: ['Date', 'setInterval'], now: 1_000_000 });
});

afterEach(() => {
  for (const made of stores) made.close();
  stores = [];
  mock.timers.reset();
});

test('set then get returns an equal copy; destroy removes; unknown ids are null', async () => {
  const memory = store();
  const id = newSessionId();
  const data = { user: 'ada', roles: ['admin'], nested: { n: 1 } };
  await memory.set(id, data, HOUR);
  const got = await memory.get(id);
  assert.deepEqual(got, data);
  assert.notEqual(got, data, 'get() returns a copy, not the object given to set()');
  data.nested.n = 2;
  assert.deepEqual((await memory.get(id))?.nested, { n: 1 }, 'changing the object after set() does not change the stored session');
  assert.equal(await memory.get(newSessionId()), null);
  await memory.destroy(id);
  assert.equal(await memory.get(id), null);
  await memory.destroy(id); // no error for a missing id
});

test('an entry expires ttl after its save; get() of an expired entry removes it', async () => {
  const memory = store({ sweepInterval: 0 });
  const id = newSessionId();
  await memory.set(id, { a: 1 }, HOUR);
  mock.timers.tick(HOUR - 1);
  assert.deepEqual(await memory.get(id), { a: 1 }, 'alive 1 ms before expiry');
  mock.timers.tick(1);
  assert.equal(memory.size, 1, 'still held until read (no sweep)');
  assert.equal(await memory.get(id), null, 'expired at ttl');
  assert.equal(memory.size, 0, 'the read removed it');
});

test('touch() moves the expiry without changing data; it does not revive an expired entry', async () => {
  const memory = store({ sweepInterval: 0 });
  const id = newSessionId();
  await memory.set(id, { a: 1 }, HOUR);
  mock.timers.tick(HOUR - 10);
  await memory.touch(id, HOUR);
  mock.timers.tick(HOUR - 10);
  assert.deepEqual(await memory.get(id), { a: 1 }, 'alive: touched with an hour left 10 ms before expiry');
  mock.timers.tick(10);
  assert.equal(await memory.get(id), null, 'expired an hour after the touch');
  const gone = newSessionId();
  await memory.set(gone, { b: 1 }, 1000);
  mock.timers.tick(1000);
  await memory.touch(gone, HOUR);
  assert.equal(await memory.get(gone), null, 'touch of an expired entry does not bring it back');
  await memory.touch(newSessionId(), HOUR); // a missing id: nothing to do, no error
});

test('the sweep timer removes expired entries', async () => {
  const memory = store({ sweepInterval: 60_000 });
  const short = newSessionId();
  const long = newSessionId();
  await memory.set(short, { s: 1 }, 30_000);
  await memory.set(long, { l: 1 }, HOUR);
  assert.equal(memory.size, 2);
  mock.timers.tick(60_000);
  assert.equal(memory.size, 1, 'the sweep after 60 s removed the 30 s entry');
  assert.deepEqual(await memory.get(long), { l: 1 });
  assert.equal(memory.sweep(), 0, 'nothing more to sweep');
});

test('maxEntries: saving one more drops the one saved (or touched) longest ago', async () => {
  const memory = store({ maxEntries: 3, sweepInterval: 0 });
  const ids = [newSessionId(), newSessionId(), newSessionId(), newSessionId()];
  for (const id of ids.slice(0, 3)) await memory.set(id, { id }, HOUR);
  await memory.touch(ids[0]!, HOUR); // now ids[1] is the oldest
  await memory.set(ids[3]!, { id: ids[3] }, HOUR);
  assert.equal(memory.size, 3);
  assert.equal(await memory.get(ids[1]!), null, 'the least recently saved entry was dropped');
  for (const id of [ids[0]!, ids[2]!, ids[3]!]) assert.deepEqual(await memory.get(id), { id }, `kept ${id}`);
});

test('ids that are not session ids, bad TTLs and non-object data are refused with stable codes', async () => {
  const memory = store();
  for (const bad of ['', 'short', '../../etc/passwd', 'a'.repeat(129), `${'a'.repeat(30)}/x`]) {
    await assert.rejects(memory.get(bad), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'), `id ${JSON.stringify(bad)}`);
  }
  await assert.rejects(memory.set(newSessionId(), {}, 0), (error) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
  await assert.rejects(memory.set(newSessionId(), {}, 1.5), (error) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
  await assert.rejects(memory.set(newSessionId(), [] as never, HOUR), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'));
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  await assert.rejects(memory.set(newSessionId(), cyclic, HOUR), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'));
  assert.throws(() => new MemoryStore({ maxEntries: 0 }), (error) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
});

test('newSessionId: 32 base64url characters (192 bits), all different', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = newSessionId();
    assert.match(id, /^[A-Za-z0-9_-]{32}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 1000);
});

test("the stores' timers are unref'd: a process holding a MemoryStore and a FileSessionStore exits by itself", async () => {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'nodefpm-unref-'));
  const script = [
    `const { MemoryStore } = await import(${JSON.stringify(new URL('./memory-store.ts', import.meta.url).href)});`,
    `const { FileSessionStore } = await import(${JSON.stringify(new URL('./file-store.ts', import.meta.url).href)});`,
    'new MemoryStore({ sweepInterval: 10 });',
    `new FileSessionStore({ dir: ${JSON.stringify(join(dir, 's'))}, collectInterval: 10 });`,
  ].join('\n');
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running after 30 s');
      }, 30_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode ?? -1);
      });
    });
    assert.equal(code, 0, `the child should exit on its own with 0; stderr: ${stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
