// The memory bound of issue 2: a 1 GiB upload and a 1 GiB download each grow the server's RSS (a child process) by under 64 MiB.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { FcgiClient } from '../src/client/index.js';
import type { ChildMessage, MemoryFigures, ParentMessage } from './fixtures/memory-server.js';
import { patternBlock, patternChunks, patternHash } from './fixtures/memory-pattern.js';
import { requestParams } from './helpers/raw-peer.js';
import { tempDir } from './helpers/servers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BOUND = 64 * MiB;
const fixture = fileURLToPath(new URL('./fixtures/memory-server.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

/** The child's answers, in order; `next(type)` waits for the next one of that type. */
function messages(child: ChildProcess): { next<T extends ChildMessage['type']>(type: T, timeout?: number): Promise<Extract<ChildMessage, { type: T }>> } {
  const queue: ChildMessage[] = [];
  const waiters: Array<() => void> = [];
  child.on('message', (message: ChildMessage) => {
    queue.push(message);
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`the server process exited (code ${code}, signal ${signal})`)));
  });
  exited.catch(() => {});
  return {
    async next(type, timeout = 60_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const index = queue.findIndex((m) => m.type === type);
        if (index >= 0) return queue.splice(index, 1)[0] as never;
        if (Date.now() > deadline) throw new Error(`no ${type} message from the server process within ${timeout} ms`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
      }
    },
  };
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

interface ServerProcess {
  address: string;
  ask(message: ParentMessage, reply: 'marked' | 'figures'): Promise<MemoryFigures>;
  stop(): Promise<void>;
}

/** Starts the fixture server in a child process of its own and waits until it listens. */
async function startServerProcess(): Promise<ServerProcess> {
  const dir = tempDir('nodefpm-memory-');
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fixture, `unix:${join(dir.path, 'app.sock')}`], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
    dir.remove();
  };
  const inbox = messages(child);
  try {
    const { address } = await inbox.next('ready');
    return {
      address,
      async ask(message, reply) {
        child.send(message);
        return (await inbox.next(reply)).figures;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

const block = patternBlock();
const expectedHash = patternHash(block, GiB);

async function upload(client: FcgiClient, total: number): Promise<{ bytes: number; sha256: string }> {
  const response = await client.request({
    params: requestParams('POST', '/upload', { CONTENT_LENGTH: String(total), CONTENT_TYPE: 'application/octet-stream' }),
    body: (async function* () {
      yield* patternChunks(block, total);
    })(),
  });
  assert.equal(response.status, 200);
  return JSON.parse(await response.text()) as { bytes: number; sha256: string };
}

async function download(client: FcgiClient, total: number): Promise<{ bytes: number; sha256: string }> {
  const response = await client.request({ params: requestParams('GET', `/download?bytes=${total}`) });
  assert.equal(response.status, 200);
  assert.equal(response.headers['content-length'], String(total));
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  await response.ended;
  return { bytes, sha256: hash.digest('hex') };
}

type Transfer = (client: FcgiClient, total: number) => Promise<{ bytes: number; sha256: string }>;

/**
 * On a fresh server process: a small warm-up transfer (so code paths are loaded and compiled), then
 * the baseline (after a full GC), then 1 GiB; returns the peak RSS over the baseline.
 */
async function measure(t: { diagnostic(message: string): void }, what: string, transfer: Transfer): Promise<number> {
  const server = await startServerProcess();
  const client = new FcgiClient({ address: server.address });
  try {
    assert.equal((await transfer(client, 8 * MiB)).bytes, 8 * MiB, `${what}: the warm-up transfer arrived`);
    const before = await server.ask({ type: 'mark' }, 'marked');
    const started = Date.now();
    const result = await transfer(client, GiB);
    const seconds = (Date.now() - started) / 1000;
    const after = await server.ask({ type: 'figures' }, 'figures');
    assert.equal(result.bytes, GiB, `${what}: every byte arrived`);
    assert.equal(result.sha256, expectedHash, `${what}: the bytes arrived intact`);
    const peak = Math.max(after.hwm, after.sampledPeak);
    const growth = peak - before.rss;
    t.diagnostic(
      `${what}: server RSS ${mib(before.rss)} before, peak ${mib(peak)} (VmHWM ${mib(after.hwm)}, sampled ${mib(after.sampledPeak)}), ` +
        `growth ${mib(growth)}; V8 heap ${mib(before.heapTotal)} before, ${mib(after.heapTotalAtPeak)} at the peak; ` +
        `ArrayBuffers peak ${mib(after.arrayBuffersPeak)}; ${(GiB / MiB / seconds).toFixed(0)} MiB/s`,
    );
    return growth;
  } finally {
    client.destroy();
    await server.stop();
  }
}

test('a 1 GiB upload grows the server RSS by under 64 MiB', { timeout: 120_000 }, async (t) => {
  const growth = await measure(t, '1 GiB upload', upload);
  assert.ok(growth < BOUND, `a 1 GiB upload grew the server's RSS by ${mib(growth)}, over ${mib(BOUND)}`);
});

test('a 1 GiB download grows the server RSS by under 64 MiB', { timeout: 120_000 }, async (t) => {
  const growth = await measure(t, '1 GiB download', download);
  assert.ok(growth < BOUND, `a 1 GiB download grew the server's RSS by ${mib(growth)}, over ${mib(BOUND)}`);
});
