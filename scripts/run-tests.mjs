// Runs a test suite on Node's built-in runner through tsx: `unit` (Node only) or `interop` (real web servers).
// Usage: node scripts/run-tests.mjs unit|interop [file filter...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const suite = process.argv[2] ?? 'unit';
const filters = process.argv.slice(3);

function collect(dir, predicate, out = []) {
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) collect(path, predicate, out);
    else if (predicate(path)) out.push(path);
  }
  return out;
}

let files;
if (suite === 'unit') {
  files = [
    ...collect('src', (p) => p.endsWith('.test.ts')),
    ...collect('test', (p) => p.endsWith('.test.ts') && !p.includes('/interop/')),
  ];
} else if (suite === 'interop') {
  files = collect('test/interop', (p) => p.endsWith('.test.ts'));
} else {
  console.error(`unknown suite ${suite}: expected unit or interop`);
  process.exit(2);
}
if (filters.length > 0) files = files.filter((f) => filters.some((filter) => f.includes(filter)));
if (files.length === 0) {
  console.error(`no test files for suite ${suite}`);
  process.exit(1);
}

if (suite === 'interop') {
  // The interop tests run real web servers from Debian's packages: install what is missing first.
  const deps = spawnSync('bash', ['scripts/interop-deps.sh'], { stdio: 'inherit' });
  if (deps.status !== 0) {
    console.error('interop: the Debian packages these tests need are missing and could not be installed (see above);');
    console.error('interop: run `npm run test:interop` as root, or `bash scripts/interop-deps.sh` as root first.');
    process.exit(1);
  }
}

const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODEFPM_TEST_SUITE: suite },
});
process.exit(result.status ?? 1);
