// Walks the error catalogue: codes well-formed and documented, statuses sensible, NodefpmError carrying them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NodefpmError, errorCatalogue, isNodefpmError, type ErrorCode } from './errors.js';

const codes = Object.keys(errorCatalogue) as ErrorCode[];

test('every code is NODEFPM_ upper snake case with a one-sentence summary and a valid status', () => {
  for (const code of codes) {
    const { status, summary } = errorCatalogue[code];
    assert.match(code, /^NODEFPM_[A-Z0-9]+(_[A-Z0-9]+)*$/, `code ${code}`);
    assert.ok(summary.length > 10 && summary.endsWith('.'), `summary of ${code} should be a sentence: ${summary}`);
    if (status !== undefined) assert.ok(status >= 400 && status <= 599, `status of ${code} should be 4xx/5xx, got ${status}`);
  }
});

test('docs/errors.md lists exactly the catalogue (regenerate with node scripts/gen-errors-doc.mjs)', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(NODEFPM_[A-Z0-9_]+)` \|/gm)].map((match) => match[1]));
  for (const code of codes) assert.ok(documented.has(code), `${code} is missing from docs/errors.md`);
  for (const code of documented) assert.ok(code! in errorCatalogue, `docs/errors.md lists ${code}, which the catalogue does not have`);
});

test('NodefpmError carries code, catalogue status, overridden status and cause', () => {
  const cause = new Error('inner');
  const error = new NodefpmError('NODEFPM_BODY_TOO_LARGE', 'too big', { cause });
  assert.equal(error.code, 'NODEFPM_BODY_TOO_LARGE');
  assert.equal(error.status, 413);
  assert.equal(error.cause, cause);
  assert.equal(error.name, 'NodefpmError');
  assert.equal(new NodefpmError('NODEFPM_BODY_TOO_LARGE', 'x', { status: 400 }).status, 400);
  assert.equal(new NodefpmError('NODEFPM_PROTOCOL_VERSION', 'x').status, undefined);
  assert.equal(isNodefpmError(error), true);
  assert.equal(isNodefpmError(error, 'NODEFPM_BODY_TOO_LARGE'), true);
  assert.equal(isNodefpmError(error, 'NODEFPM_BODY_MALFORMED'), false);
  assert.equal(isNodefpmError(new Error('plain')), false);
});
