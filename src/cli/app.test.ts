// Tests for loading an app module: which kind its default export is (rules, ambiguity), load errors, TypeScript through tsx, the adapter registry.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import connect from 'connect';
import express from 'express';
import { Hono } from 'hono';
import Koa from 'koa';
import { isNodefpmError } from '../errors.js';
import { silentLogger } from '../log.js';
import { API_KINDS, exchangeHandlerFor, servableKinds } from './adapters.js';
import { classifyModule, findTsx, loadApp, type ModuleExports } from './app.js';

const PATH = '/srv/app.js';

function failsToLoad(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isNodefpmError(error, 'NODEFPM_APP_LOAD'), `expected NODEFPM_APP_LOAD, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

async function rejectsToLoad(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isNodefpmError(error, 'NODEFPM_APP_LOAD'), `expected NODEFPM_APP_LOAD, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

/** A temporary folder of app modules, removed after the test. */
function appDir(t: TestContext, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodefpm-app-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const twoArgs = (_req: unknown, _res: unknown): void => {};
const oneArg = (_request: unknown): void => {};

test('the kind comes from --api first, then the api export, then an unambiguous shape', () => {
  const cases: Array<[string, ModuleExports, 'native' | 'node' | 'fetch' | undefined, string, RegExp]> = [
    ['--api wins over the api export', { default: twoArgs, api: 'node' }, 'native', 'native', /^--api$/],
    ['the api export', { default: twoArgs, api: 'native' }, undefined, 'native', /api export/],
    ['the api export says node', { default: twoArgs, api: 'node' }, undefined, 'node', /api export/],
    ['an object with a fetch method', { default: { fetch: oneArg } }, undefined, 'fetch', /fetch method/],
    ['a Hono app', { default: new Hono() }, undefined, 'fetch', /fetch method/],
    ['a function of one parameter', { default: oneArg }, undefined, 'fetch', /one parameter/],
    ['an Express app', { default: express() }, undefined, 'node', /Express/],
    ['a Connect app', { default: connect() }, undefined, 'node', /Express\/Connect/],
    ['a Koa app object', { default: new Koa() }, undefined, 'node', /Koa/],
  ];
  for (const [name, exports, explicit, kind, reason] of cases) {
    const app = classifyModule(exports, PATH, explicit);
    assert.equal(app.kind, kind, name);
    assert.match(app.reason, reason, name);
    assert.equal(app.path, PATH);
  }
});

test('the handler is the default export itself, except a Koa app, which is served through callback()', () => {
  const app = express();
  assert.equal(classifyModule({ default: app }, PATH).handler, app);
  const koa = new Koa();
  const served = classifyModule({ default: koa }, PATH).handler;
  assert.equal(typeof served, 'function', 'a Koa app becomes its callback()');
  assert.notEqual(served, koa);
  assert.equal(typeof classifyModule({ default: koa }, PATH, 'node').handler, 'function', 'also when --api node says so');
});

test('a plain (req, res) function is ambiguous: the error says to pass --api or export api', () => {
  failsToLoad(() => classifyModule({ default: twoArgs }, PATH), /cannot load app \/srv\/app\.js: .*native handler or a Node request listener/);
  failsToLoad(() => classifyModule({ default: twoArgs }, PATH), /pass --api native or --api node, or export const api = 'native'/);
});

test('other shapes that say nothing about their kind are errors that say how to name it', () => {
  failsToLoad(() => classifyModule({ default: (_a: unknown, _b: unknown, _c: unknown) => {} }, PATH), /function of 3 parameters.*pass --api native\|node\|fetch/);
  failsToLoad(() => classifyModule({ default: () => {} }, PATH), /function of 0 parameters.*--api/);
  failsToLoad(() => classifyModule({ default: { handle() {} } }, PATH), /object with neither a fetch method nor Koa's callback\(\).*--api/);
});

test('a module without a usable default export, or with a bad api export, fails to load', () => {
  failsToLoad(() => classifyModule({ handler: twoArgs }, PATH), /no default export; export the handler/);
  failsToLoad(() => classifyModule({ default: 42 }, PATH), /default export is a number \(42\), not a handler/);
  failsToLoad(() => classifyModule({ default: 'hello' }, PATH), /a string \("hello"\), not a handler/);
  failsToLoad(() => classifyModule({ default: null }, PATH), /default export is null/);
  failsToLoad(() => classifyModule({ default: [twoArgs] }, PATH), /an array, not a handler/);
  failsToLoad(() => classifyModule({ default: twoArgs, api: 'express' }, PATH), /api export must be one of 'native', 'node', 'fetch', got "express"/);
});

test('the kind named must match the shape of the default export', () => {
  failsToLoad(() => classifyModule({ default: { fetch: oneArg } }, PATH, 'native'), /the native API needs a function \(req, res\)/);
  failsToLoad(() => classifyModule({ default: { fetch: oneArg } }, PATH, 'node'), /the node API needs a function \(req, res\) or a Koa application/);
  failsToLoad(() => classifyModule({ default: { other: 1 } }, PATH, 'fetch'), /the fetch API needs a function \(request\) or an object with a fetch method/);
});

test('a CommonJS module compiled from ESM (exports.__esModule) is unwrapped, its api export included', () => {
  const wrapped = { __esModule: true, default: twoArgs, api: 'native' };
  const app = classifyModule({ default: wrapped }, PATH);
  assert.equal(app.kind, 'native');
  assert.equal(app.handler, twoArgs);
});

test('the registry serves every registered kind and names the adapter a kind still lacks', () => {
  const servable = servableKinds();
  assert.ok(servable.includes('native'), 'native handlers are always servable');
  const context = { options: {}, logger: silentLogger };
  const samples = { native: twoArgs, node: twoArgs, fetch: oneArg } as const;
  for (const kind of API_KINDS) {
    if (servable.includes(kind)) {
      assert.equal(typeof exchangeHandlerFor(kind, samples[kind], context, PATH), 'function', `${kind} is served`);
    } else {
      failsToLoad(
        () => exchangeHandlerFor(kind, samples[kind], context, PATH),
        new RegExp(`cannot serve /srv/app\\.js: .*\\(--api ${kind}\\), and this build of nodefpm has no ${kind} adapter yet \\(src/adapters\\); it can serve: ${servable.join(', ')}`),
      );
    }
  }
});

test('loadApp resolves the path against the working directory and loads .mjs, .cjs and .js modules', async (t) => {
  const dir = appDir(t, {
    'app.mjs': "export const api = 'native';\nexport default (req, res) => res.end('esm');\n",
    'app.cjs': "module.exports = (request) => new Response('cjs');\n",
    'compiled.cjs': "Object.defineProperty(exports, '__esModule', { value: true });\nexports.api = 'native';\nexports.default = (req, res) => res.end('x');\n",
  });
  const esm = await loadApp('app.mjs', { cwd: dir });
  assert.equal(esm.path, join(dir, 'app.mjs'));
  assert.equal(esm.kind, 'native');
  assert.equal((await loadApp(join(dir, 'app.cjs'))).kind, 'fetch', 'an absolute path needs no cwd');
  assert.equal((await loadApp('./compiled.cjs', { cwd: dir })).kind, 'native');
});

test('loadApp reports a missing file, a directory, a syntax error with its place, and an exception at load', async (t) => {
  const dir = appDir(t, {
    'broken.mjs': "export default (req, res) => {\n  res.end('x';\n};\n",
    'broken.cjs': "module.exports = (req, res) => {\n  res.end(;\n};\n",
    'throws.mjs': "throw new Error('DATABASE_URL is not set');\n",
    'imports-missing.mjs': "import 'nodefpm-no-such-package';\nexport default () => {};\n",
  });
  mkdirSync(join(dir, 'folder'));
  await rejectsToLoad(loadApp('nope.js', { cwd: dir }), new RegExp(`cannot load app ${join(dir, 'nope.js')}: no such file$`));
  await rejectsToLoad(loadApp('folder', { cwd: dir }), /is a directory; name the module file/);
  await rejectsToLoad(loadApp('broken.mjs', { cwd: dir }), new RegExp(`SyntaxError: .* at ${join(dir, 'broken.mjs')}:2: res\\.end\\('x';`));
  await rejectsToLoad(loadApp('broken.cjs', { cwd: dir }), new RegExp(`SyntaxError: .* at ${join(dir, 'broken.cjs')}:2: res\\.end\\(;`));
  await rejectsToLoad(loadApp('throws.mjs', { cwd: dir }), /throws\.mjs: Error: DATABASE_URL is not set$/);
  await rejectsToLoad(loadApp('imports-missing.mjs', { cwd: dir }), /nodefpm-no-such-package/);
  const error = await loadApp('throws.mjs', { cwd: dir }).catch((e: unknown) => e);
  assert.ok(error instanceof Error && error.cause instanceof Error, 'the original error is kept as the cause, for --log-level debug');
});

test('TypeScript modules load through tsx, ESM- and CommonJS-scoped alike', async (t) => {
  const dir = appDir(t, {
    'app.ts': "const word: string = 'typed';\nexport const api = 'native';\nexport default (req: unknown, res: { end(s: string): void }): void => res.end(word);\n",
    'app.mts': "export default (request: Request): Response => new Response('fetch');\n",
    'app.cts': "export const api = 'native';\nexport default function handler(req: unknown, res: unknown): void {}\n",
  });
  const ts = await loadApp('app.ts', { cwd: dir });
  assert.equal(ts.kind, 'native');
  assert.equal(typeof ts.handler, 'function');
  assert.equal((await loadApp('app.mts', { cwd: dir })).kind, 'fetch');
  assert.equal((await loadApp('app.cts', { cwd: dir })).kind, 'native');
});

test('without tsx a TypeScript module is a load error that says to install tsx or compile', async (t) => {
  const dir = appDir(t, { 'app.ts': 'export default (request: Request) => new Response("x");\n' });
  await rejectsToLoad(
    loadApp('app.ts', { cwd: dir, findTsx: async () => null }),
    /cannot load app .*app\.ts: TypeScript modules are loaded with tsx, .*install it \(npm install --save-dev tsx\) or compile the app to JavaScript/,
  );
});

test('findTsx finds the register APIs next to the app, or among nodefpm\'s own dependencies', async (t) => {
  const inRepo = await findTsx(new URL('../../examples/hello.ts', import.meta.url).pathname);
  assert.ok(inRepo !== null && typeof inRepo.esm.register === 'function' && typeof inRepo.cjs.register === 'function', 'tsx next to an app in the checkout');
  const dir = appDir(t, { 'app.ts': '' });
  const elsewhere = await findTsx(join(dir, 'app.ts'));
  assert.ok(elsewhere !== null && typeof elsewhere.esm.register === 'function', 'tsx from nodefpm for an app with no node_modules');
});
