// Sessions in a real redis-server: the store's commands, TTLs and renewal through node-redis (and an ioredis-shaped client), and two nodefpm servers behind one nginx sharing sessions through Redis.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { createServer, type FcgiServer, type Handler } from '../../src/index.js';
import { RedisSessionStore, Sessions, newSessionId, type IoRedisLikeClient } from '../../src/http/session/index.js';
import { formatListenAddress } from '../../src/server/listen.js';
import { captureLogger, type CaptureLogger } from '../helpers/log-capture.js';
import { tempDir } from '../helpers/servers.js';
import { startWebServer, type WebServer } from './harness.js';
import { nginx } from './nginx-server.js';
import { redis } from './redis-server.js';

const TIMEOUT = 120_000;
const KEY = randomBytes(32).toString('base64url');

let redisServer: WebServer;

/** A node-redis client for the test's redis-server, as an application would make one. */
function makeClient() {
  return createClient({ socket: { host: '127.0.0.1', port: redisServer.port, reconnectStrategy: false } });
}

type NodeRedis = ReturnType<typeof makeClient>;
const clients: NodeRedis[] = [];

/** A connected node-redis client on the test's redis-server (closed in after()). */
async function connect(): Promise<NodeRedis> {
  const client = makeClient();
  // Without an 'error' listener node-redis rethrows connection errors as uncaught exceptions.
  client.on('error', () => undefined);
  await client.connect();
  clients.push(client);
  return client;
}

before(async () => {
  redisServer = await startWebServer(redis);
}, { timeout: TIMEOUT });

after(async () => {
  for (const client of clients) await client.close().catch(() => client.destroy());
  await redisServer?.stop();
});

/** Why an assertion failed, with redis-server's log. */
function context(): string {
  return `\n--- redis ---\n${redisServer.describe(20)}`;
}

describe('RedisSessionStore on redis-server', () => {
  test('node-redis: SET with PX, GET, PEXPIRE and DEL, under the prefix', { timeout: TIMEOUT }, async () => {
    const client = await connect();
    const store = new RedisSessionStore({ client, prefix: 'test1:' });
    const id = newSessionId();
    await store.set(id, { user: 'ada', roles: ['admin'] }, 60_000);
    assert.equal(await client.get(`test1:${id}`), '{"user":"ada","roles":["admin"]}', `the key holds the JSON${context()}`);
    const ttl = await client.pTTL(`test1:${id}`);
    assert.ok(ttl > 0 && ttl <= 60_000, `PTTL after SET ... PX 60000 is ${ttl}${context()}`);
    assert.deepEqual(await store.get(id), { user: 'ada', roles: ['admin'] });
    await store.touch(id, 3_600_000);
    const renewed = await client.pTTL(`test1:${id}`);
    assert.ok(renewed > 60_000 && renewed <= 3_600_000, `PTTL after touch (PEXPIRE 3600000) is ${renewed}`);
    await store.destroy(id);
    assert.equal(await client.exists(`test1:${id}`), 0, 'DEL removed the key');
    assert.equal(await store.get(id), null);
    await store.touch(id, 60_000);
    assert.equal(await client.exists(`test1:${id}`), 0, 'touch does not create a missing key');
  });

  test('Redis expires the entry itself: after its TTL, get() answers null', { timeout: TIMEOUT }, async () => {
    const client = await connect();
    const store = new RedisSessionStore({ client });
    const id = newSessionId();
    await store.set(id, { short: true }, 300);
    const deadline = Date.now() + 30_000;
    let data = await store.get(id);
    while (data !== null && Date.now() < deadline) {
      await sleep(100);
      data = await store.get(id);
    }
    assert.equal(data, null, `the session is still there well after its 300 ms TTL${context()}`);
  });

  test('an ioredis-shaped client (set key value PX ms, pexpire) works against the same server', { timeout: TIMEOUT }, async () => {
    const client = await connect();
    // ioredis's method shapes, carried out with raw commands, so the store's ioredis path meets a real Redis.
    const io: IoRedisLikeClient = {
      get: (key) => client.sendCommand(['GET', key]),
      set: (key, value, mode, ms) => client.sendCommand(['SET', key, value, mode, String(ms)]),
      del: (key) => client.sendCommand(['DEL', key]),
      pexpire: (key, ms) => client.sendCommand(['PEXPIRE', key, String(ms)]),
    };
    const store = new RedisSessionStore({ client: io, prefix: 'io:' });
    const id = newSessionId();
    await store.set(id, { via: 'ioredis' }, 60_000);
    const ttl = await client.pTTL(`io:${id}`);
    assert.ok(ttl > 0 && ttl <= 60_000, `PTTL ${ttl}`);
    assert.deepEqual(await store.get(id), { via: 'ioredis' });
    await store.touch(id, 600_000);
    assert.ok((await client.pTTL(`io:${id}`)) > 60_000, 'renewed by pexpire');
    await store.destroy(id);
    assert.equal(await store.get(id), null);
  });

  test('a Redis that is gone: the store rejects with NODEFPM_SESSION_STORE', { timeout: TIMEOUT }, async () => {
    const client = await connect();
    const store = new RedisSessionStore({ client });
    await client.close();
    await assert.rejects(store.get(newSessionId()), (error: unknown) => (error as { code?: string }).code === 'NODEFPM_SESSION_STORE');
  });
});

// ---- two nodefpm servers, one Redis, one nginx in front: several machines behind one web server ----

interface AppNode {
  name: string;
  server: FcgiServer;
  address: string;
  logs: CaptureLogger;
}

interface Reply {
  status: number;
  server: string;
  body: { id: string; origin: string; data: Record<string, unknown> };
  setCookies: string[];
}

/** The app each server runs: its own Sessions and its own Redis connection, as on separate machines. */
function sessionApp(name: string, sessions: Sessions<{ visits?: number; user?: string }>): Handler {
  return sessions.middleware(async (req, res) => {
    const path = new URL(req.url, 'http://app.invalid').pathname;
    const session = await sessions.get(req);
    if (path === '/visit') session.data.visits = (session.data.visits ?? 0) + 1;
    if (path === '/login') {
      await session.regenerate();
      session.data.user = 'grace';
    }
    if (path === '/logout') await session.destroy();
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('X-Server', name);
    res.end(JSON.stringify({ id: session.id, origin: session.origin, data: session.data }));
  });
}

describe('two nodefpm servers sharing sessions through Redis, behind one nginx', () => {
  const dir = tempDir('nodefpm-redis-pair-');
  const nodes: AppNode[] = [];
  let web: WebServer;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const jar = new Map<string, string>();

  before(async () => {
    for (const name of ['A', 'B']) {
      const client = await connect();
      const logs = captureLogger();
      const sessions = new Sessions<{ visits?: number; user?: string }>({
        keys: [KEY],
        store: new RedisSessionStore({ client, prefix: 'pair:' }),
        logger: logs,
      });
      const server = createServer(sessionApp(name, sessions), { logger: logs });
      const address = formatListenAddress(await server.listen(`unix:${join(dir.path, `${name}.sock`)}`));
      nodes.push({ name, server, address, logs });
    }
    const upstream = `\n  upstream nodefpm_pair {\n${nodes.map((node) => `    server ${node.address};\n`).join('')}  }\n`;
    web = await startWebServer(nginx({ upstream: 'nodefpm_pair', keepConn: false, httpExtra: upstream }));
  }, { timeout: TIMEOUT });

  after(async () => {
    agent.destroy();
    await web?.stop();
    for (const node of nodes) await node.server.close({ timeout: 1000 });
    dir.remove();
  });

  function describeAll(): string {
    return `\n--- nginx ---\n${web.describe(20)}${context()}`;
  }

  /** GET through nginx with the jar's cookies; Set-Cookie lines update the jar. */
  function get(path: string, cookies: Map<string, string> = jar): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const req = http.get(`${web.origin}${path}`, { agent, headers: cookie === '' ? {} : { Cookie: cookie } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const setCookies = res.headers['set-cookie'] ?? [];
          for (const line of setCookies) {
            const pair = line.split(';')[0]!;
            const name = pair.slice(0, pair.indexOf('='));
            if (/;\s*Max-Age=0(;|$)/i.test(line)) cookies.delete(name);
            else cookies.set(name, pair.slice(name.length + 1));
          }
          try {
            resolve({ status: res.statusCode ?? 0, server: String(res.headers['x-server']), body: JSON.parse(text) as Reply['body'], setCookies });
          } catch (error) {
            reject(new Error(`response to ${path} is not JSON (${res.statusCode}): ${text}${describeAll()}`, { cause: error }));
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  test('a session started on one server is seen and updated by the other, request after request', { timeout: TIMEOUT }, async () => {
    const served = new Set<string>();
    let id = '';
    for (let visit = 1; visit <= 10; visit++) {
      const reply = await get('/visit');
      assert.equal(reply.status, 200, `visit ${visit}${describeAll()}`);
      served.add(reply.server);
      assert.equal(reply.body.data.visits, visit, `visit ${visit} on server ${reply.server} sees the count left by the one before${describeAll()}`);
      if (visit === 1) {
        id = reply.body.id;
        assert.equal(reply.body.origin, 'absent');
      } else {
        assert.equal(reply.body.id, id, 'the same session throughout');
        assert.equal(reply.body.origin, 'loaded');
      }
    }
    assert.deepEqual([...served].sort(), ['A', 'B'], `nginx's round robin sent requests to both servers${describeAll()}`);
    const client = await connect();
    assert.equal(await client.get(`pair:${id}`), '{"visits":10}', 'Redis holds the session');
  });

  test('regenerate on one server: the other accepts the new id and no longer the old one', { timeout: TIMEOUT }, async () => {
    const before = await get('/peek');
    const oldCookie = jar.get('sid')!;
    const login = await get('/login');
    assert.notEqual(login.body.id, before.body.id);
    assert.deepEqual(login.body.data, { visits: 10, user: 'grace' });
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const reply = await get('/peek');
      seen.add(reply.server);
      assert.equal(reply.body.id, login.body.id, `server ${reply.server} finds the new id`);
      assert.deepEqual(reply.body.data, { visits: 10, user: 'grace' });
    }
    assert.equal(seen.size, 2, 'both servers answered');
    for (let i = 0; i < 2; i++) {
      const stale = await get('/peek', new Map([['sid', oldCookie]]));
      assert.equal(stale.body.origin, 'unknown', `server ${stale.server}: the pre-login id leads nowhere`);
    }
  });

  test('destroy on one server: the other sees no session', { timeout: TIMEOUT }, async () => {
    const cookie = jar.get('sid')!;
    const logout = await get('/logout');
    assert.match(logout.setCookies[0] ?? '', /^sid=; Max-Age=0/);
    for (let i = 0; i < 2; i++) {
      const reply = await get('/peek', new Map([['sid', cookie]]));
      assert.equal(reply.body.origin, 'unknown', `server ${reply.server} no longer has the session`);
    }
    const warnings = nodes.flatMap((node) => node.logs.entries.filter((entry) => entry.level === 'warn' || entry.level === 'error'));
    assert.deepEqual(warnings, [], 'no warnings or errors on either server');
  });
});
