// The published package's entry points: every subpath in package.json's exports loads from the build, as ESM and as CommonJS, with the names the docs use.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> };

/** A name each entry point must export (what the README and docs import from it). */
const EXPECTED: Record<string, string> = {
  '.': 'createServer',
  './protocol': 'RecordParser',
  './client': 'FcgiClient',
  './node': 'createNodeServer',
  './fetch': 'createFetchServer',
  './validate': 'validateExchangeHandler',
  './gateway': 'createGateway',
  './pool': 'createPool',
  './app-setup': 'appSetup',
};
/** Entry points built as ESM only: the command's modules (tsconfig.cjs.json leaves src/cli out). */
const ESM_ONLY = new Set(['./app-setup']);

test('every export subpath has an expected name, and each loads from dist by the package name, through import and require (ESM-only ones through import)', () => {
  const subpaths = Object.keys(pkg.exports).filter((subpath) => subpath !== './package.json');
  assert.deepEqual(subpaths.sort(), Object.keys(EXPECTED).sort(), 'a new entry point gets a line in EXPECTED');
  for (const subpath of subpaths) {
    const specifier = subpath === '.' ? 'nodefpm' : `nodefpm/${subpath.slice(2)}`;
    const name = EXPECTED[subpath]!;
    // The package resolves itself by name (self-reference through "exports"), from a child with the built files.
    const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(specifier)}); process.stdout.write(typeof m[${JSON.stringify(name)}]);`], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(esm, 'function', `import('${specifier}').${name}`);
    if (ESM_ONLY.has(subpath)) {
      assert.equal((pkg.exports[subpath] as { require?: unknown }).require, undefined, `${subpath} offers no require()`);
      continue;
    }
    const cjs = execFileSync(process.execPath, ['-e', `process.stdout.write(typeof require(${JSON.stringify(specifier)})[${JSON.stringify(name)}]);`], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(cjs, 'function', `require('${specifier}').${name}`);
  }
});
