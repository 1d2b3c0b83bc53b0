// Keeps the SERVER_SOFTWARE version in step with package.json.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NODEFPM_VERSION } from './version.js';

test('NODEFPM_VERSION is the version in package.json (bump both together)', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(NODEFPM_VERSION, pkg.version);
});
