// The session middleware over real FastCGI connections: lazy load, save only when changed, regenerate, destroy, TTL, rolling, forged and expired ids, ordering, concurrency, failures.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, mock, test } from 'node:test';
import { FcgiClient } from '../../client/index.js';
import { requestParams } from '../../../test/helpers/raw-peer.js';
import { startServer, tempDir, type TestServer } from '../../../test/helpers/servers.js';
import { isNodefpmError } from '../../errors.js';
import type { Handler } from '../handler.js';
import { compose } from '../middleware.js';
import { Signer } from '../signing.js';
import { FileSessionStore } from './file-store.js';
import { MemoryStore } from './memory-store.js';
import type { Session } from './session.js';
import { Sessions, type SessionOptions } from './sessions.js';
import { newSessionId, type SessionData, type SessionStore } from './store.js';

const KEY = randomBytes(32).toString('base64url');
const OLD_KEY = randomBytes(32).toString('base64url');
const DAY = 24 * 60 * 60 * 1000;

interface AppData {
  visits?: number;
  user?: string;
  [key: string]: unknown;
}

/** A store that counts calls, and can be slowed down or made to fail. */
class CountingStore implements SessionStore {
  readonly inner = new MemoryStore({ sweepInterval: 0 });
  counts = { get: 0, set: 0, destroy: 0, touch: 0 };
  /** Awaited before set() writes (to hold a save in flight). */
  beforeSet: (() => Promise<void>) | null = null;
  failOn: keyof CountingStore['counts'] | null = null;

  reset(): void {
    this.counts = { get: 0, set: 0, destroy: 0, touch: 0 };
    this.beforeSet = null;
    this.failOn = null;
  }

  #check(method: keyof CountingStore['counts']): void {
    this.counts[method]++;
    if (this.failOn === method) throw new Error(`injected ${method} failure`);
  }

  async get(id: string): Promise<SessionData | null> {
    this.#check('get');
    return this.inner.get(id);
  }

  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.#check('set');
    const json = JSON.stringify(data); // what the caller handed over at the call, not later
    if (this.beforeSet !== null) await this.beforeSet();
    await this.inner.set(id, JSON.parse(json) as SessionData, ttlMs);
  }

  async destroy(id: string): Promise<void> {
    this.#check('destroy');
    await this.inner.destroy(id);
  }

  async touch(id: string, ttlMs: number): Promise<void> {
    this.#check('touch');
    await this.inner.touch(id, ttlMs);
  }
}

interface Reply {
  status: number;
  setCookies: string[];
  body: string;
  /** The body parsed, for routes that answer JSON. */
  json: { id: string; isNew: boolean; origin: string; data: AppData };
}

/** A client that keeps cookies, as a browser would (name=value only; Max-Age=0 deletes). */
class Browser {
  readonly cookies = new Map<string, string>();
  readonly #client: FcgiClient;

  constructor(client: FcgiClient) {
    this.#client = client;
  }

  async get(uri: string, extra: Record<string, string> = {}): Promise<Reply> {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const params = requestParams('GET', uri, { ...(cookie === '' ? {} : { HTTP_COOKIE: cookie }), ...extra });
    const response = await this.#client.request({ params, timeout: 20_000 });
    const body = await response.text();
    const raw = response.headers['set-cookie'];
    const setCookies = raw === undefined ? [] : typeof raw === 'string' ? [raw] : raw;
    for (const line of setCookies) {
      const [pair] = line.split(';');
      const equals = pair!.indexOf('=');
      const name = pair!.slice(0, equals);
      if (/;\s*Max-Age=0(;|$)/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(equals + 1));
    }
    let json = { id: '', isNew: false, origin: '', data: {} };
    if (body.startsWith('{')) json = JSON.parse(body) as Reply['json'];
    return { status: response.status, setCookies, body, json };
  }

  /** The session id in the cookie (the part before the signature). */
  get sid(): string | undefined {
    const value = this.cookies.get('sid');
    return value === undefined ? undefined : value.slice(0, value.lastIndexOf('.'));
  }
}

function describeSession(session: Session<AppData>): string {
  return JSON.stringify({ id: session.id, isNew: session.isNew, origin: session.origin, data: session.data });
}

/** Resolvers for requests held at a gate, by the gate's name. */
const gates = new Map<string, Promise<void>>();

/** The routes of the test app, on `sessions`. */
function routes(sessions: Sessions<AppData>): Handler {
  return async (req, res) => {
    const url = new URL(req.url, 'http://app.invalid');
    const query = url.searchParams;
    res.setHeader('Content-Type', 'application/json');
    switch (url.pathname) {
      case '/none':
        res.end('no session used');
        return;
      case '/peek': {
        const session = await sessions.get(req);
        res.end(describeSession(session));
        return;
      }
      case '/set': {
        const session = await sessions.get(req);
        for (const [key, value] of query) session.data[key] = value;
        const gate = query.get('gate');
        if (gate !== null) await gates.get(gate);
        res.end(describeSession(session));
        return;
      }
      case '/incr': {
        const session = await sessions.get(req);
        session.set('visits', (session.get('visits') ?? 0) + 1);
        res.end(describeSession(session));
        return;
      }
      case '/login': {
        const session = await sessions.get(req);
        await session.regenerate();
        session.data.user = query.get('user') ?? 'ada';
        res.end(describeSession(session));
        return;
      }
      case '/logout': {
        const session = await sessions.get(req);
        await session.destroy();
        res.end(describeSession(session));
        return;
      }
      case '/private': {
        const session = await sessions.require(req);
        res.end(describeSession(session));
        return;
      }
      case '/touch': {
        (await sessions.get(req)).touch();
        res.end('touched');
        return;
      }
      case '/stream': {
        const session = await sessions.get(req);
        session.data.streamed = true;
        res.write('head and a first chunk out; ');
        await new Promise((resolve) => setTimeout(resolve, 10));
        res.end('the end');
        return;
      }
      case '/late': {
        const session = await sessions.get(req);
        res.write('head out before the session is written; ');
        session.data.late = true;
        res.end('the end');
        return;
      }
      case '/big': {
        const session = await sessions.get(req);
        session.data.blob = 'x'.repeat(Number(query.get('size') ?? '100000'));
        res.end('should not be sent');
        return;
      }
      default:
        res.statusCode = 404;
        res.end('no such route');
    }
  };
}

let server: TestServer;
let client: FcgiClient;
let current: Handler = (_req, res) => {
  res.end();
};
const store = new CountingStore();
const files = tempDir('nodefpm-sessions-test-');

before(async () => {
  server = await startServer((req, res) => current(req, res));
  client = new FcgiClient({ address: server.address, maxConnections: 8 });
});

after(async () => {
  client.destroy();
  await server.close();
  store.inner.close();
  files.remove();
});

beforeEach(() => {
  store.reset();
  use({});
});

/** Serves the routes through a Sessions with these options (on the counting store unless given). */
function use(options: Partial<SessionOptions>): Sessions<AppData> {
  const sessions = new Sessions<AppData>({ keys: [KEY], store, logger: server?.logs, ...options });
  current = sessions.middleware(routes(sessions));
  return sessions;
}

function browser(): Browser {
  return new Browser(client);
}

test('lazy: a handler that never asks for the session costs no store access and sets no cookie, with or without a cookie', async () => {
  const b = browser();
  const none = await b.get('/none');
  assert.equal(none.status, 200);
  assert.deepEqual(none.setCookies, []);
  await b.get('/set?seed=1');
  assert.ok(b.sid !== undefined, 'a session cookie was set by /set');
  store.reset();
  const again = await b.get('/none');
  assert.deepEqual(again.setCookies, [], 'no Set-Cookie when the session was not used');
  assert.deepEqual(store.counts, { get: 0, set: 0, destroy: 0, touch: 0 }, 'no store access at all');
});

test('lazy: reading a new session saves nothing and sets no cookie; the first write does both', async () => {
  const b = browser();
  const peek = await b.get('/peek');
  assert.equal(peek.json.isNew, true);
  assert.equal(peek.json.origin, 'absent');
  assert.deepEqual(peek.setCookies, []);
  assert.deepEqual(store.counts, { get: 0, set: 0, destroy: 0, touch: 0 }, 'no cookie: not even a store read');
  const set = await b.get('/set?color=blue');
  assert.equal(set.setCookies.length, 1);
  assert.match(set.setCookies[0]!, /^sid=[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/);
  assert.equal(store.counts.set, 1);
  assert.equal(b.sid, set.json.id, 'the cookie carries the session id, signed');
  const back = await b.get('/peek');
  assert.equal(back.json.origin, 'loaded');
  assert.deepEqual(back.json.data, { color: 'blue' });
});

test('save only when changed: reads and same-value writes are not saved; a change is, once', async () => {
  const b = browser();
  await b.get('/set?a=1');
  store.reset();
  const read = await b.get('/peek');
  assert.deepEqual(read.setCookies, [], 'an unchanged session sets no cookie');
  assert.deepEqual(store.counts, { get: 1, set: 0, destroy: 0, touch: 0 }, 'read once, not saved');
  await b.get('/set?a=1');
  assert.equal(store.counts.set, 0, 'writing the value it already had is no change');
  await b.get('/set?a=2');
  assert.equal(store.counts.set, 1, 'a change is saved once');
  assert.deepEqual((await b.get('/peek')).json.data, { a: '2' });
});

test('the save completes before the response reaches the client, so the next request sees it', async () => {
  const b = browser();
  await b.get('/incr');
  let saving = false;
  store.beforeSet = async () => {
    saving = true;
    await new Promise((resolve) => setTimeout(resolve, 150));
    saving = false;
  };
  const reply = await b.get('/incr');
  assert.equal(saving, false, 'the response arrived only after the slow save finished');
  assert.equal(reply.json.data.visits, 2);
  assert.deepEqual(await store.inner.get(b.sid!), { visits: 2 }, 'the store already holds the new data when the client has the response');
  assert.equal((await b.get('/incr')).json.data.visits, 3);
});

test('a streamed response: the cookie goes in the head (beforeHead), the save at the end', async () => {
  const b = browser();
  const reply = await b.get('/stream');
  assert.equal(reply.body, 'head and a first chunk out; the end');
  assert.equal(reply.setCookies.length, 1, 'Set-Cookie in the head of a response streamed before end()');
  assert.deepEqual(await store.inner.get(b.sid!), { streamed: true });
});

test('a new session written after the head went out is not saved (its cookie could not be set), with a warning', async () => {
  const b = browser();
  const reply = await b.get('/late');
  assert.deepEqual(reply.setCookies, []);
  assert.equal(store.counts.set, 0);
  assert.ok(server.logs.find('written after the response head went out').length > 0, 'the reason was logged');
});

test('regenerate(): a new id with the data carried over; the old id no longer works (session fixation)', async () => {
  const b = browser();
  await b.get('/set?cart=3');
  const oldCookie = b.cookies.get('sid')!;
  const oldId = b.sid!;
  const login = await b.get('/login?user=grace');
  assert.notEqual(login.json.id, oldId, 'a new id');
  assert.equal(b.sid, login.json.id, 'the new id was set in the cookie');
  assert.deepEqual(login.json.data, { cart: '3', user: 'grace' }, 'data carried over');
  assert.equal(await store.inner.get(oldId), null, 'the old entry was deleted');
  const attacker = browser();
  attacker.cookies.set('sid', oldCookie);
  const stale = await attacker.get('/peek');
  assert.equal(stale.json.origin, 'unknown', 'the old id leads to no session');
  assert.deepEqual(stale.json.data, {});
  assert.deepEqual((await b.get('/peek')).json.data, { cart: '3', user: 'grace' });
});

test('regenerate() on a new session saves it under a fresh id even before data is written', async () => {
  const b = browser();
  const login = await b.get('/login');
  assert.equal(b.sid, login.json.id);
  assert.deepEqual(await store.inner.get(login.json.id), { user: 'ada' });
});

test('destroy(): the entry is deleted and the cookie cleared; the old cookie then finds nothing', async () => {
  const b = browser();
  await b.get('/set?user=ada');
  const cookie = b.cookies.get('sid')!;
  const id = b.sid!;
  const logout = await b.get('/logout');
  assert.equal(logout.setCookies.length, 1);
  assert.match(logout.setCookies[0]!, /^sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=\/; HttpOnly; SameSite=Lax$/);
  assert.equal(b.cookies.has('sid'), false);
  assert.equal(await store.inner.get(id), null);
  assert.equal(store.counts.destroy, 1);
  const replay = browser();
  replay.cookies.set('sid', cookie);
  assert.equal((await replay.get('/peek')).json.origin, 'unknown');
});

test('TTL: an expired id gets a fresh session, the old entry is gone, the stale cookie is cleared, the reason logged', async () => {
  mock.timers.enable({ apis: ['Date'], now: Date.now() });
  try {
    use({ ttl: 60_000 });
    const b = browser();
    const first = await b.get('/set?k=v');
    assert.match(first.setCookies[0]!, /Max-Age=60;/, 'the cookie lives as long as the session');
    const id = b.sid!;
    mock.timers.tick(59_999);
    assert.equal((await b.get('/peek')).json.origin, 'loaded', 'alive 1 ms before the TTL');
    mock.timers.tick(1);
    const held = store.inner.size;
    const expired = await b.get('/peek');
    assert.equal(expired.json.origin, 'unknown');
    assert.equal(expired.json.isNew, true);
    assert.notEqual(expired.json.id, id);
    assert.deepEqual(expired.json.data, {});
    assert.match(expired.setCookies[0] ?? '', /^sid=; Max-Age=0/, 'the cookie that leads nowhere is cleared');
    assert.equal(store.inner.size, held - 1, 'the expired entry was removed when read');
    assert.ok(server.logs.find('session id unknown or expired').length > 0, 'logged');
  } finally {
    mock.timers.reset();
  }
});

test('expiry counts from the last save: without rolling, reads do not extend it; touch() does', async () => {
  mock.timers.enable({ apis: ['Date'], now: Date.now() });
  try {
    use({ ttl: 60_000 });
    const b = browser();
    await b.get('/set?k=v');
    mock.timers.tick(40_000);
    const read = await b.get('/peek');
    assert.deepEqual(read.setCookies, [], 'a read does not renew the cookie');
    mock.timers.tick(20_000);
    assert.equal((await b.get('/peek')).json.origin, 'unknown', 'expired 60 s after the save despite the read');

    await b.get('/set?k=w');
    mock.timers.tick(40_000);
    const touched = await b.get('/touch');
    assert.equal(store.counts.touch, 1, 'touch() renews through store.touch');
    assert.match(touched.setCookies[0] ?? '', /Max-Age=60;/, 'and renews the cookie');
    mock.timers.tick(40_000);
    assert.equal((await b.get('/peek')).json.origin, 'loaded', 'alive 80 s after the save, 40 s after the touch');
  } finally {
    mock.timers.reset();
  }
});

test('rolling: every request with a valid cookie renews the entry (store.touch, no read) and the cookie', async () => {
  mock.timers.enable({ apis: ['Date'], now: Date.now() });
  try {
    use({ ttl: 60_000, rolling: true });
    const b = browser();
    await b.get('/set?k=v');
    store.reset();
    for (let i = 0; i < 3; i++) {
      mock.timers.tick(40_000);
      const reply = await b.get('/none');
      assert.match(reply.setCookies[0] ?? '', /^sid=.*Max-Age=60;/, `request ${i} renewed the cookie`);
    }
    assert.deepEqual(store.counts, { get: 0, set: 0, destroy: 0, touch: 3 }, 'renewed without reading the session');
    assert.equal((await b.get('/peek')).json.origin, 'loaded', 'alive 120 s after the save');
    const stranger = await browser().get('/none');
    assert.deepEqual(stranger.setCookies, [], 'no cookie, nothing to renew');
  } finally {
    mock.timers.reset();
  }
});

test('a tampered, unsigned or foreign-key cookie: ignored without a store lookup, a fresh session, a warning', async () => {
  const b = browser();
  await b.get('/set?user=ada');
  const good = b.cookies.get('sid')!;
  const id = b.sid!;
  const foreign = new Signer([randomBytes(32)]).sign(id, 'sid');
  const lastChar = good.at(-1) === 'A' ? 'B' : 'A';
  const forgeries = {
    tampered: good.slice(0, -1) + lastChar,
    unsigned: id,
    'other id, same signature': `${newSessionId()}${good.slice(good.lastIndexOf('.'))}`,
    'foreign key': foreign,
    'signed for another cookie name': new Signer([KEY]).sign(id, 'other'),
  };
  for (const [what, value] of Object.entries(forgeries)) {
    store.reset();
    const before = server.logs.find('NODEFPM_SESSION_FORGED').length;
    const evil = browser();
    evil.cookies.set('sid', value);
    const reply = await evil.get('/peek');
    assert.equal(reply.status, 200, what);
    assert.equal(reply.json.origin, 'forged', what);
    assert.notEqual(reply.json.id, id, `${what}: never the victim's session`);
    assert.deepEqual(reply.json.data, {}, what);
    assert.equal(store.counts.get, 0, `${what}: no store lookup for an id whose signature fails`);
    assert.match(reply.setCookies[0] ?? '', /^sid=; Max-Age=0/, `${what}: the bad cookie is cleared`);
    assert.equal(server.logs.find('NODEFPM_SESSION_FORGED').length, before + 1, `${what}: one warning logged`);
  }
  assert.deepEqual((await b.get('/peek')).json.data, { user: 'ada' }, 'the real session is untouched');
});

test('a Cookie header over maxCookieBytes: 431 where the session is used; ignored by rolling where it is not', async () => {
  use({ rolling: true });
  const b = browser();
  b.cookies.set('padding', 'p'.repeat(20_000));
  const used = await b.get('/peek');
  assert.equal(used.status, 431);
  const unused = await b.get('/none');
  assert.equal(unused.status, 200);
  assert.deepEqual(unused.setCookies, []);
});

test('require(): 400 for a forged cookie, 401 without a session or with an expired one, the session otherwise', async () => {
  const b = browser();
  const none = await b.get('/private');
  assert.equal(none.status, 401);
  assert.match(none.body, /no session cookie/);
  await b.get('/set?user=ada');
  const ok = await b.get('/private');
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.data, { user: 'ada' });
  const evil = browser();
  evil.cookies.set('sid', `${b.sid!}.${'A'.repeat(43)}`);
  const forged = await evil.get('/private');
  assert.equal(forged.status, 400);
  assert.match(forged.body, /failed verification/);
  assert.ok(server.logs.find('request refused with 400').length > 0, 'the refusal was logged with its reason');
  await store.inner.destroy(b.sid!);
  const gone = await b.get('/private');
  assert.equal(gone.status, 401);
  assert.match(gone.body, /expired or does not exist/);
});

test('key rotation: a cookie signed with an older key is accepted and re-signed with the current one', async () => {
  use({ keys: [OLD_KEY] });
  const b = browser();
  await b.get('/set?user=ada');
  const oldCookie = b.cookies.get('sid')!;
  use({ keys: [KEY, OLD_KEY] });
  const reply = await b.get('/peek');
  assert.equal(reply.json.origin, 'loaded');
  assert.equal(reply.setCookies.length, 1, 're-signed');
  assert.notEqual(b.cookies.get('sid'), oldCookie);
  assert.equal(new Signer([KEY]).unsign(b.cookies.get('sid')!, 'sid'), reply.json.id, 'now signed with the first key');
  assert.deepEqual((await b.get('/peek')).setCookies, [], 'once re-signed, nothing more to set');
});

test('concurrent requests of one session: a reader does not overwrite a writer; two writers, the last save wins', async () => {
  const b = browser();
  await b.get('/set?a=0');
  let open!: () => void;
  gates.set('hold', new Promise<void>((resolve) => (open = resolve)));
  try {
    // The writer loads, writes and waits at the gate; meanwhile a reader loads the same session and ends.
    const writer = b.get('/set?a=1&gate=hold');
    const reader = await browser_with(b).get('/peek');
    assert.deepEqual(reader.json.data, { a: '0' }, 'the reader sees the data before the write');
    open();
    await writer;
  } finally {
    gates.delete('hold');
  }
  assert.deepEqual((await b.get('/peek')).json.data, { a: '1', gate: 'hold' }, "the reader, saving nothing, did not undo the writer's change");

  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => browser_with(b).get(`/set?n=${i}`)));
  for (const result of results) assert.equal(result.status, 200);
  const final = (await b.get('/peek')).json.data.n;
  assert.ok(typeof final === 'string' && /^[0-7]$/.test(final), `one of the writers' values survives whole: ${String(final)}`);
});

/** A second browser holding the same cookies (another tab). */
function browser_with(b: Browser): Browser {
  const other = browser();
  for (const [name, value] of b.cookies) other.cookies.set(name, value);
  return other;
}

test('maxSize: a session over it is not saved; the response is a 500 and the reason logged', async () => {
  use({ maxSize: 1000 });
  const b = browser();
  const reply = await b.get('/big?size=2000');
  assert.equal(reply.status, 500);
  assert.equal(reply.body, '500 Internal Server Error\n', 'the handler body is replaced');
  assert.deepEqual(reply.setCookies, []);
  assert.equal(store.counts.set, 0);
  assert.ok(server.logs.find('NODEFPM_SESSION_TOO_LARGE').length > 0, 'logged with its code');
  assert.equal((await b.get('/big?size=500')).status, 200, 'under the bound it saves');
});

test('store failures: a failed load rejects get() (500); a failed save turns the response into a 500', async () => {
  const b = browser();
  await b.get('/set?a=1');
  store.failOn = 'get';
  const load = await b.get('/peek');
  assert.equal(load.status, 500);
  store.failOn = 'set';
  const save = await b.get('/set?a=2');
  assert.equal(save.status, 500);
  assert.ok(server.logs.find('session could not be saved').length > 0, 'the failed save was logged');
  store.failOn = null;
  assert.deepEqual((await b.get('/peek')).json.data, { a: '1' }, 'the failed save changed nothing');
});

test('cookie options: Secure when the request came over HTTPS (auto), domain, a browser-session cookie', async () => {
  const b = browser();
  const https = await b.get('/set?a=1', { HTTPS: 'on' });
  assert.match(https.setCookies[0]!, /; Secure;/);
  use({ cookie: { name: 'app_session', domain: 'example.org', persistent: false, sameSite: 'Strict', secure: false } });
  const c = browser();
  const plain = await c.get('/set?a=1', { HTTPS: 'on' });
  assert.match(plain.setCookies[0]!, /^app_session=[^;]+; Domain=example\.org; Path=\/; HttpOnly; SameSite=Strict$/);
  store.reset();
  await c.get('/set?a=2');
  assert.equal(store.counts.set, 1);
});

test('the file store through the middleware: sessions survive a new Sessions on the same folder (a restart)', async () => {
  const dir = `${files.path}/sessions`;
  const first = new FileSessionStore({ dir, collectInterval: 0 });
  use({ store: first });
  const b = browser();
  await b.get('/incr');
  await b.get('/incr');
  first.close();
  const second = new FileSessionStore({ dir, collectInterval: 0 });
  use({ store: second });
  assert.equal((await b.get('/incr')).json.data.visits, 3);
  second.close();
});

test('compose() with the middleware, and get() for a request it did not wrap', async () => {
  const sessions = new Sessions<AppData>({ keys: [KEY], store, logger: server.logs });
  const order: string[] = [];
  const outer = (next: Handler): Handler => (req, res) => {
    order.push('outer');
    return next(req, res);
  };
  current = compose(outer, sessions.middleware)(routes(sessions));
  const b = browser();
  await b.get('/incr');
  assert.deepEqual(order, ['outer']);
  assert.equal((await b.get('/incr')).json.data.visits, 2);

  let code = 'no error';
  current = async (req, res) => {
    try {
      await sessions.get(req);
    } catch (error) {
      code = isNodefpmError(error) ? error.code : 'other';
    }
    res.end();
  };
  await b.get('/');
  assert.equal(code, 'NODEFPM_SESSION_NOT_INSTALLED');
});

test('options are checked at construction', () => {
  const invalid = (error: unknown): boolean => isNodefpmError(error, 'NODEFPM_INVALID_OPTION');
  assert.throws(() => new Sessions({}), invalid, 'no keys');
  assert.throws(() => new Sessions({ keys: ['short'] }), invalid, 'a key under 32 bytes');
  assert.throws(() => new Sessions({ keys: [KEY], ttl: 10 }), invalid, 'ttl under a second');
  assert.throws(() => new Sessions({ keys: [KEY], cookie: { sameSite: 'None' } }), invalid, "SameSite=None with secure 'auto'");
  assert.throws(() => new Sessions({ keys: [KEY], cookie: { name: '__Host-sid', secure: true, path: '/app' } }), invalid, '__Host- with a Path');
  assert.throws(() => new Sessions({ keys: [KEY], cookie: { name: 'bad name' } }), invalid, 'a name that is not a token');
  assert.throws(() => new Sessions({ keys: [KEY], store: {} as never }), invalid, 'a store without methods');
  const own = new Sessions({ keys: [KEY] });
  assert.ok(own.store instanceof MemoryStore, 'the default store is a MemoryStore');
  void own.close();
  assert.equal(own.ttl, DAY);
});
