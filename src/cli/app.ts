// Loads the app module: resolves its path, registers tsx for TypeScript, and decides which kind of handler its default export is.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NodefpmError } from '../errors.js';
import { API_KINDS, isApiKind, type ApiKind } from './adapters.js';

/** An app module, loaded and classified. */
export interface LoadedApp {
  /** Absolute path of the module. */
  path: string;
  kind: ApiKind;
  /** How the kind was decided, for the start-up log line: "--api", "its api export", or the rule that matched. */
  reason: string;
  /** What the adapter of `kind` serves: the default export (or, for a Koa application object, its callback()). */
  handler: unknown;
}

/** The part of tsx's API nodefpm uses (tsx/esm/api and tsx/cjs/api both export it). */
export interface TsxRegisterApi {
  register(): unknown;
}

export interface TsxApis {
  esm: TsxRegisterApi;
  cjs: TsxRegisterApi;
}

export interface LoadAppOptions {
  /** --api: which kind the default export is; skips detection. */
  api?: ApiKind;
  /** The directory a relative module path is resolved against. Default process.cwd(). */
  cwd?: string;
  /** Finds tsx for a TypeScript module (null when it is not installed). Default findTsx; tests replace it. */
  findTsx?: (appPath: string) => Promise<TsxApis | null>;
}

/** Module namespace objects as import() returns them. */
export type ModuleExports = Record<string, unknown>;

const TYPESCRIPT_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);
const API_CHOICES = API_KINDS.join('|');

function loadError(path: string, message: string, cause?: unknown): NodefpmError {
  return new NodefpmError('NODEFPM_APP_LOAD', `cannot load app ${path}: ${message}`, cause === undefined ? undefined : { cause });
}

/** "path:line: source" from the head of a V8 syntax-error report ("/app.cjs:3", the source line, a caret). */
function locationIn(report: string): string | undefined {
  const [where, source] = report.split('\n', 2);
  if (where === undefined || !/^(file:\/\/|\/).*:\d+$/.test(where)) return undefined;
  const line = source?.trim() ?? '';
  return `${where.replace(/^file:\/\//, '')}${line === '' ? '' : `: ${line}`}`;
}

/**
 * What went wrong loading `path`, in one line. A syntax error says where: CommonJS puts the place at
 * the head of its stack, but an ES module's error does not carry it, so `node --check` is asked.
 */
function describeCause(error: unknown, path: string): string {
  if (!(error instanceof Error)) return String(error);
  // One line: the message goes into one log line (tsx's transform errors span several).
  const text = `${error.name}: ${error.message.replace(/\s*\n\s*/g, ' ')}`;
  if (!(error instanceof SyntaxError)) return text;
  let where = locationIn(error.stack ?? '');
  if (where === undefined && !TYPESCRIPT_EXTENSIONS.has(extname(path))) {
    const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
    where = locationIn(check.stderr ?? '');
  }
  return where === undefined ? text : `${text} at ${where}`;
}

/** Resolves an "exports" entry to a file for `import`, as Node would with the import condition. */
function importTarget(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry === null || typeof entry !== 'object') return undefined;
  const conditions = entry as Record<string, unknown>;
  for (const condition of ['import', 'node', 'default']) {
    const target = importTarget(conditions[condition]);
    if (target !== undefined) return target;
  }
  return undefined;
}

function asRegisterApi(module: unknown): TsxRegisterApi | null {
  const register = (module as { register?: unknown } | null)?.register;
  return typeof register === 'function' ? (module as TsxRegisterApi) : null;
}

/** tsx installed next to the app (in a node_modules above it), by its package.json's exports. */
async function tsxNextTo(appPath: string): Promise<TsxApis | null> {
  let packageJson: string;
  try {
    packageJson = createRequire(appPath).resolve('tsx/package.json');
  } catch {
    return null;
  }
  const exports = (JSON.parse(readFileSync(packageJson, 'utf8')) as { exports?: Record<string, unknown> }).exports ?? {};
  const esmFile = importTarget(exports['./esm/api']);
  const cjsFile = importTarget(exports['./cjs/api']);
  // tsx before 4 has no such API: fall back to nodefpm's own.
  if (esmFile === undefined || cjsFile === undefined) return null;
  const esm = asRegisterApi(await import(pathToFileURL(join(dirname(packageJson), esmFile)).href));
  const cjs = asRegisterApi(await import(pathToFileURL(join(dirname(packageJson), cjsFile)).href));
  return esm !== null && cjs !== null ? { esm, cjs } : null;
}

/** tsx among nodefpm's own dependencies (resolved from this file). */
async function tsxOfNodefpm(): Promise<TsxApis | null> {
  // Specifiers in variables: tsx is optional at run time, and the type checker must not require it.
  const esmSpecifier = 'tsx/esm/api';
  const cjsSpecifier = 'tsx/cjs/api';
  try {
    const esm = asRegisterApi(await import(esmSpecifier));
    const cjs = asRegisterApi(await import(cjsSpecifier));
    return esm !== null && cjs !== null ? { esm, cjs } : null;
  } catch {
    return null;
  }
}

/** tsx's register APIs: from the app's folder first (the app's own version), then nodefpm's dependencies. */
export async function findTsx(appPath: string): Promise<TsxApis | null> {
  return (await tsxNextTo(appPath)) ?? (await tsxOfNodefpm());
}

let tsxRegistered = false;

/**
 * Makes TypeScript modules importable: tsx's ESM loader for ESM-scoped files and its require hook for
 * CommonJS-scoped ones (on Node 20 the ESM loader alone cannot hand a transformed CommonJS module to
 * Node). Registered once per process.
 */
async function enableTypeScript(appPath: string, find: (appPath: string) => Promise<TsxApis | null>): Promise<void> {
  const apis = await find(appPath);
  if (apis === null) {
    throw loadError(
      appPath,
      'TypeScript modules are loaded with tsx, which is not installed next to the app nor with nodefpm: ' +
        'install it (npm install --save-dev tsx) or compile the app to JavaScript and pass the .js file',
    );
  }
  if (tsxRegistered) return;
  apis.esm.register();
  apis.cjs.register();
  tsxRegistered = true;
}

function isFunction(value: unknown): value is (...args: unknown[]) => unknown {
  return typeof value === 'function';
}

function hasMethods(value: unknown, ...names: string[]): boolean {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && names.every((name) => isFunction((value as Record<string, unknown>)[name]));
}

/** A Koa application object (new Koa()): served through its callback(). */
function isKoaApp(value: unknown): boolean {
  return typeof value === 'object' && hasMethods(value, 'callback', 'use');
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (isFunction(value)) return `a function of ${value.length} parameter${value.length === 1 ? '' : 's'}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value} (${JSON.stringify(value)})`;
}

const HOW_TO_SAY = `pass --api ${API_CHOICES}, or export the kind from the module: export const api = 'native'`;

/** Decides the kind when neither --api nor an api export says: only where the shape leaves no doubt. */
function detectKind(path: string, handler: unknown): { kind: ApiKind; reason: string } {
  if (typeof handler === 'object' && handler !== null) {
    if (hasMethods(handler, 'fetch')) return { kind: 'fetch', reason: 'an object with a fetch method' };
    if (isKoaApp(handler)) return { kind: 'node', reason: 'a Koa application (callback and use methods)' };
    throw loadError(path, `the default export is an object with neither a fetch method nor Koa's callback(); ${HOW_TO_SAY}`);
  }
  const fn = handler as (...args: unknown[]) => unknown;
  if (hasMethods(fn, 'handle', 'use')) return { kind: 'node', reason: 'an Express/Connect application (handle and use methods)' };
  if (fn.length === 1) return { kind: 'fetch', reason: 'a function of one parameter (request)' };
  if (fn.length === 2) {
    throw loadError(
      path,
      'the default export is a function (req, res), which may be a native handler or a Node request listener, and nodefpm ' +
        `cannot tell which: pass --api native or --api node, or export const api = 'native' (or 'node') from the module`,
    );
  }
  throw loadError(path, `the default export is ${describeValue(fn)}, which is none of the known shapes; ${HOW_TO_SAY}`);
}

/** Checks that the default export has the shape its kind needs, and returns what the adapter serves. */
function handlerOfKind(path: string, kind: ApiKind, exported: unknown): unknown {
  switch (kind) {
    case 'native':
      if (isFunction(exported)) return exported;
      break;
    case 'node':
      if (isFunction(exported)) return exported;
      if (isKoaApp(exported)) return (exported as { callback(): unknown }).callback();
      break;
    case 'fetch':
      if (isFunction(exported) || hasMethods(exported, 'fetch')) return exported;
      break;
  }
  const needs = { native: 'a function (req, res)', node: 'a function (req, res) or a Koa application', fetch: 'a function (request) or an object with a fetch method' }[kind];
  throw loadError(path, `the default export is ${describeValue(exported)}, but the ${kind} API needs ${needs}`);
}

/**
 * Classifies a loaded module. The kind comes from `explicit` (--api), else the module's `api` export,
 * else the shape of the default export where it is unambiguous; anything else is a NODEFPM_APP_LOAD
 * error that says how to name the kind.
 */
export function classifyModule(exports: ModuleExports, path: string, explicit?: ApiKind): LoadedApp {
  if (!('default' in exports) || exports.default === undefined) {
    throw loadError(path, 'the module has no default export; export the handler: export default (req, res) => { ... }');
  }
  let exported: unknown = exports.default;
  let apiExport: unknown = exports.api;
  // A CommonJS module compiled from ESM (exports.__esModule): its default and api are on module.exports.
  if (typeof exported === 'object' && exported !== null && (exported as { __esModule?: unknown }).__esModule === true && 'default' in exported) {
    const wrapper = exported as { default: unknown; api?: unknown };
    apiExport ??= wrapper.api;
    exported = wrapper.default;
  }
  if (exported === null || (typeof exported !== 'function' && typeof exported !== 'object') || Array.isArray(exported)) {
    throw loadError(path, `the default export is ${describeValue(exported)}, not a handler (a function, or an object with a fetch method)`);
  }
  let kind: ApiKind;
  let reason: string;
  if (explicit !== undefined) {
    kind = explicit;
    reason = '--api';
  } else if (apiExport !== undefined) {
    if (!isApiKind(apiExport)) {
      throw loadError(path, `its api export must be one of ${API_KINDS.map((k) => `'${k}'`).join(', ')}, got ${JSON.stringify(apiExport)}`);
    }
    kind = apiExport;
    reason = 'its api export';
  } else {
    ({ kind, reason } = detectKind(path, exported));
  }
  return { path, kind, reason, handler: handlerOfKind(path, kind, exported) };
}

/** Loads the app module at `specifier` (relative to options.cwd) and classifies its default export. */
export async function loadApp(specifier: string, options: LoadAppOptions = {}): Promise<LoadedApp> {
  const path = resolve(options.cwd ?? process.cwd(), specifier);
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw loadError(path, code === 'ENOENT' ? 'no such file' : describeCause(error, path), error);
  }
  if (stats.isDirectory()) throw loadError(path, 'it is a directory; name the module file (for example index.js in it)');
  if (TYPESCRIPT_EXTENSIONS.has(extname(path))) await enableTypeScript(path, options.findTsx ?? findTsx);
  let exports: ModuleExports;
  try {
    exports = (await import(pathToFileURL(path).href)) as ModuleExports;
  } catch (error) {
    throw loadError(path, describeCause(error, path), error);
  }
  return classifyModule(exports, path, options.api);
}
