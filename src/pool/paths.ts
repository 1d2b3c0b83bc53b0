// Where the pool's own files are at run time (src under tsx, dist/esm, dist/cjs), and how to start Node on them.

import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The file this module was loaded from. The same source is built as ESM (import.meta) and as CommonJS
 * (__filename), and neither of those compiles in the other format, so the file name is read from V8's
 * structured stack frames instead; a custom prepareStackTrace bypasses source maps, so this is the
 * file actually running (dist/esm/pool/paths.js, not the src/pool/paths.ts it was built from).
 */
function ownFile(): string {
  const original = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 2;
    Error.prepareStackTrace = (_error, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[];
    const name = frames[0]?.getFileName() ?? '';
    return name.startsWith('file:') ? fileURLToPath(name) : name;
  } finally {
    Error.prepareStackTrace = original;
    Error.stackTraceLimit = limit;
  }
}

const OWN_FILE = ownFile();

/** The folder of the pool's modules (src/pool, dist/esm/pool or dist/cjs/pool). */
export const POOL_DIR = dirname(OWN_FILE);

/** .ts when running from the sources (tsx), .js from a build. */
export const MODULE_EXTENSION = extname(OWN_FILE) === '.ts' ? '.ts' : '.js';

/** Running from TypeScript sources: child processes and threads need tsx to load them. */
export const FROM_SOURCES = MODULE_EXTENSION === '.ts';

/** The absolute path of a sibling module of the pool (`worker-main` -> src/pool/worker-main.ts or dist/.../worker-main.js). */
export function poolModule(name: string): string {
  return join(POOL_DIR, `${name}${MODULE_EXTENSION}`);
}

/** The absolute path of a module in another folder of the same build (`cli/worker-setup`). */
export function siblingModule(folderAndName: string): string {
  return join(POOL_DIR, '..', `${folderAndName}${MODULE_EXTENSION}`);
}

/** tsx's loader (for `node --import`) and its ESM register API, as file URLs; null when tsx is not installed. */
export function tsxEntries(): { loader: string; esmApi: string } | null {
  try {
    const require = createRequire(OWN_FILE);
    const loader = require.resolve('tsx');
    const packageDir = dirname(require.resolve('tsx/package.json'));
    return { loader: pathToFileURL(loader).href, esmApi: pathToFileURL(join(packageDir, 'dist', 'esm', 'api', 'index.mjs')).href };
  } catch {
    return null;
  }
}

/**
 * The execArgv a worker process needs to load `entry`: under tsx (sources) tsx's loader, so the
 * TypeScript worker and the modules it imports load; from a build nothing. The master's own execArgv
 * is not inherited: flags like --inspect or --test must not be repeated in every worker.
 */
export function workerExecArgv(entry: string): string[] {
  if (!entry.endsWith('.ts')) return [];
  const tsx = tsxEntries();
  return tsx === null ? [] : ['--import', tsx.loader];
}

/**
 * import() that stays import() in both builds. TypeScript compiles import() to require() for the
 * CommonJS build, and require() loads neither ES modules nor file: URLs; a function made at run time
 * is not compiled.
 */
export const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;
