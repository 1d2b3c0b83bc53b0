// FileSessionStore on real files: modes, atomic writes, expiry by mtime (read, touch, collect), traversal refused, shared by two stores.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, mock, test } from 'node:test';
import { tempDir } from '../../../test/helpers/servers.js';
import { captureLogger } from '../../../test/helpers/log-capture.js';
import { isNodefpmError } from '../../errors.js';
import { FileSessionStore } from './file-store.js';
import { newSessionId } from './store.js';

const HOUR = 60 * 60 * 1000;
const root = tempDir('nodefpm-file-store-');
let stores: FileSessionStore[] = [];
let counter = 0;

function store(options: ConstructorParameters<typeof FileSessionStore>[0] = {}): FileSessionStore {
  const made = new FileSessionStore({ dir: join(root.path, `s${counter++}`), collectInterval: 0, logger: captureLogger(), ...options });
  stores.push(made);
  return made;
}

beforeEach(() => {
  // Fake Date only: file times are real, but set from (and compared with) the fake clock.
  mock.timers.enable({ apis: ['Date'], now: Date.UTC(2030, 0, 1) });
});

afterEach(() => {
  for (const made of stores) made.close();
  stores = [];
  mock.timers.reset();
});

after(() => root.remove());

test('the folder is created 0700, each session a 0600 file named prefix + id holding JSON', async () => {
  const files = store();
  assert.equal(statSync(files.dir).mode & 0o777, 0o700, 'folder mode');
  const id = newSessionId();
  await files.set(id, { user: 'ada', n: [1, 2] }, HOUR);
  const path = join(files.dir, `sess-${id}`);
  assert.equal(statSync(path).mode & 0o777, 0o600, 'file mode');
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { user: 'ada', n: [1, 2] });
  assert.equal(statSync(path).mtimeMs, Date.now() + HOUR, 'the mtime is the expiry');
  assert.deepEqual(await files.get(id), { user: 'ada', n: [1, 2] });
  assert.deepEqual(readdirSync(files.dir), [`sess-${id}`], 'no temp file left behind');
  await files.destroy(id);
  assert.equal(existsSync(path), false);
  assert.equal(await files.get(id), null);
  await files.destroy(id); // no error for a missing file
});

test('a save replaces the file atomically (rename): readers see old or new data, never a mix', async () => {
  const files = store();
  const id = newSessionId();
  const big = (tag: string): Record<string, unknown> => ({ tag, blob: tag.repeat(200_000) });
  await files.set(id, big('a'), HOUR);
  const reads: Array<Promise<unknown>> = [];
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < 20; i++) {
    writes.push(files.set(id, big(i % 2 === 0 ? 'b' : 'c'), HOUR));
    reads.push(files.get(id));
  }
  await Promise.all(writes);
  for (const read of await Promise.all(reads)) {
    const data = read as { tag: string; blob: string };
    assert.ok(data !== null, 'the session never disappears while being rewritten');
    assert.equal(data.blob, data.tag.repeat(200_000), `read ${data.tag}: whole, of one version`);
  }
  assert.deepEqual(readdirSync(files.dir), [`sess-${id}`], 'no temp files left behind');
});

test('expiry: a read at or after the mtime answers null and removes the file', async () => {
  const files = store();
  const id = newSessionId();
  await files.set(id, { a: 1 }, HOUR);
  mock.timers.tick(HOUR - 1);
  assert.deepEqual(await files.get(id), { a: 1 }, 'alive 1 ms before expiry');
  mock.timers.tick(1);
  assert.equal(await files.get(id), null, 'expired');
  assert.equal(existsSync(join(files.dir, `sess-${id}`)), false, 'the read removed the expired file');
});

test('touch() moves the mtime (no rewrite); it does not revive an expired file; a missing one is no error', async () => {
  const files = store();
  const id = newSessionId();
  await files.set(id, { a: 1 }, HOUR);
  const path = join(files.dir, `sess-${id}`);
  const inode = statSync(path).ino;
  mock.timers.tick(HOUR / 2);
  await files.touch(id, HOUR);
  assert.equal(statSync(path).mtimeMs, Date.now() + HOUR, 'new expiry');
  assert.equal(statSync(path).ino, inode, 'same file: touched, not rewritten');
  mock.timers.tick(HOUR - 1);
  assert.deepEqual(await files.get(id), { a: 1 });
  mock.timers.tick(1);
  await files.touch(id, HOUR);
  assert.equal(existsSync(path), false, 'touching an expired file removes it instead of renewing it');
  await files.touch(newSessionId(), HOUR);
});

test('collect() removes expired session files and stale temp files, and nothing else', async () => {
  const files = store();
  const live = newSessionId();
  const dead = newSessionId();
  await files.set(live, { live: true }, 2 * HOUR);
  await files.set(dead, { dead: true }, HOUR);
  const foreign = join(files.dir, 'README');
  writeFileSync(foreign, 'not a session');
  utimesSync(foreign, 0, 0); // ancient, but not ours to collect
  const staleTemp = join(files.dir, `.sess-${newSessionId()}.abcdef.tmp`);
  writeFileSync(staleTemp, '{}');
  mock.timers.tick(HOUR);
  // A temp file's age is its real ctime, years before the fake clock's 2030: it counts as a crash's leftover.
  assert.equal(await files.collect(), 2, 'the expired session and the stale temp file');
  assert.deepEqual(readdirSync(files.dir).sort(), ['README', `sess-${live}`]);
  assert.deepEqual(await files.get(live), { live: true });
});

test('collect() leaves a temp file that is being written (younger than ten minutes)', async () => {
  mock.timers.reset(); // real time: the temp file's ctime is now
  const files = store();
  const fresh = join(files.dir, `.sess-${newSessionId()}.abcdef.tmp`);
  writeFileSync(fresh, '{}');
  utimesSync(fresh, 0, 0); // its mtime would say "expired"; for a temp file only the ctime counts
  assert.equal(await files.collect(), 0);
  assert.equal(existsSync(fresh), true);
});

test('collection runs on its own schedule (collectInterval) with an unref\'d timer', async (t) => {
  mock.timers.reset();
  const files = store({ collectInterval: 50 });
  const id = newSessionId();
  await files.set(id, { a: 1 }, 1000);
  // The timer is real here; the file expires after a real second and the next collection removes it.
  const path = join(files.dir, `sess-${id}`);
  const deadline = Date.now() + 10_000;
  while (existsSync(path) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(existsSync(path), false, 'the scheduled collection removed the expired file');
  t.diagnostic('collected on schedule');
});

test('ids are checked before they become file names: no traversal, no separators', async () => {
  const files = store();
  for (const bad of ['../../../etc/passwd', '..', `${'a'.repeat(30)}/../x`, `${'a'.repeat(30)}\u0000`, 'a'.repeat(21), '.'.repeat(30)]) {
    await assert.rejects(files.get(bad), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'), `get ${JSON.stringify(bad)}`);
    await assert.rejects(files.set(bad, {}, HOUR), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'), `set ${JSON.stringify(bad)}`);
    await assert.rejects(files.destroy(bad), (error) => isNodefpmError(error, 'NODEFPM_SESSION_STORE'), `destroy ${JSON.stringify(bad)}`);
  }
  assert.deepEqual(readdirSync(files.dir), [], 'nothing was written');
});

test('a damaged file is a missing session (and is removed), not an error', async () => {
  const files = store();
  const id = newSessionId();
  await files.set(id, { a: 1 }, HOUR);
  const path = join(files.dir, `sess-${id}`);
  const expiry = statSync(path).mtime;
  writeFileSync(path, '{"a": tru');
  utimesSync(path, expiry, expiry);
  assert.equal(await files.get(id), null);
  assert.equal(existsSync(path), false);
});

test('two stores on one folder (two worker processes) see each other\'s sessions', async () => {
  const dir = join(root.path, 'shared');
  const a = store({ dir });
  const b = store({ dir });
  const id = newSessionId();
  await a.set(id, { by: 'a' }, HOUR);
  assert.deepEqual(await b.get(id), { by: 'a' });
  await b.set(id, { by: 'b' }, HOUR);
  assert.deepEqual(await a.get(id), { by: 'b' });
  await b.destroy(id);
  assert.equal(await a.get(id), null);
});

test('options: a bad prefix, a path that is a file or a symlink, are refused at construction', () => {
  const invalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_INVALID_OPTION');
  assert.throws(() => new FileSessionStore({ dir: join(root.path, 'p'), prefix: '../x' }), invalid);
  assert.throws(() => new FileSessionStore({ dir: join(root.path, 'p'), prefix: '.hidden' }), invalid);
  const file = join(root.path, 'a-file');
  writeFileSync(file, '');
  assert.throws(() => new FileSessionStore({ dir: file }), invalid);
  const target = join(root.path, 'target');
  mkdirSync(target);
  const link = join(root.path, 'link');
  symlinkSync(target, link);
  assert.throws(() => new FileSessionStore({ dir: link }), invalid);
});

test('the default folder is in the temp folder, ours and 0700; one open to others is refused', (t) => {
  const existed = existsSync(join(tmpdir(), `nodefpm-sessions-${process.getuid?.() ?? 'user'}`));
  const files = new FileSessionStore({ collectInterval: 0 });
  // Remove the folder afterwards only if this test made it (it may hold a developer's sessions).
  if (!existed) t.after(() => rmSync(files.dir, { recursive: true, force: true }));
  stores.push(files);
  assert.match(files.dir, /nodefpm-sessions-/);
  const mode = statSync(files.dir).mode & 0o777;
  assert.equal(mode & 0o077, 0, `default folder mode ${mode.toString(8)} is closed to others`);
  chmodSync(files.dir, 0o755);
  try {
    assert.throws(() => new FileSessionStore({ collectInterval: 0 }), (error) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
  } finally {
    chmodSync(files.dir, 0o700);
  }
});
