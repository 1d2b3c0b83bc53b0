// The source tree's own rules, checked: a role line atop each module, layers importing only downward, Node globals imported on the hot path.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** The layers in README order: each may import from the ones before it, never from those after. */
const LAYERS = ['protocol', 'server', 'client', 'http', 'adapters', 'gateway', 'pool', 'cli'];

function sourceFiles(dir = SRC, out: string[] = []): string[] {
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (path.endsWith('.ts') && !path.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

/** The layer of a file under src/ (its first folder), or null for the root modules below every layer. */
function layerOf(file: string): string | null {
  const parts = relative(SRC, file).split('/');
  return parts.length > 1 ? parts[0]! : null;
}

/** The relative modules a file imports (static imports and re-exports, types included). */
function relativeImports(text: string): string[] {
  return [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((match) => match[1]!);
}

/**
 * The globals among `names` that a module reads as values (`Buffer.from(...)`, `new Buffer()`, `x instanceof
 * Buffer`, `performance.now()`), found in its syntax tree: words in comments and strings are not uses,
 * expressions inside template literals are, and type positions (`chunk: Buffer`) are not reads.
 */
function globalsRead(file: string, text: string, names: readonly string[]): Set<string> {
  const found = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && names.includes(node.text)) {
      const parent = node.parent;
      const read =
        (ts.isPropertyAccessExpression(parent) && parent.expression === node) ||
        ((ts.isCallExpression(parent) || ts.isNewExpression(parent)) && parent.expression === node) ||
        (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.InstanceOfKeyword && parent.right === node);
      if (read) found.add(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true));
  return found;
}

const files = sourceFiles();

test('the source tree is found', () => {
  assert.ok(files.length > 50, `${files.length} modules under src/`);
});

test('every module opens with a line saying what it is for', () => {
  const missing = files.filter((file) => !/^\/\/ \S.{10,}\n/.test(readFileSync(file, 'utf8'))).map((file) => relative(SRC, file));
  assert.deepEqual(missing, []);
});

test('each layer imports only from the layers before it and the root modules', () => {
  const wrong: string[] = [];
  for (const file of files) {
    const layer = layerOf(file);
    const name = relative(SRC, file);
    // The package entry point gathers every layer's exports.
    if (name === 'index.ts') continue;
    for (const specifier of relativeImports(readFileSync(file, 'utf8'))) {
      const target = layerOf(join(file, '..', specifier));
      if (target === null || target === layer) continue;
      if (layer === null || LAYERS.indexOf(target) > LAYERS.indexOf(layer)) wrong.push(`${name} imports ${specifier}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('modules that use Buffer or performance import them from node: rather than reading the globals', () => {
  // Node defines both globals as accessors: optimized code calls the getter at every use, which the
  // request path pays several times a request. An import binding is a plain load.
  const wrong: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const read = globalsRead(file, text, ['Buffer', 'performance']);
    if (read.has('Buffer') && !/^import \{[^}]*\bBuffer\b[^}]*\} from 'node:buffer';$/m.test(text)) {
      wrong.push(`${relative(SRC, file)} uses Buffer`);
    }
    if (read.has('performance') && !/^import \{[^}]*\bperformance\b[^}]*\} from 'node:perf_hooks';$/m.test(text)) {
      wrong.push(`${relative(SRC, file)} uses performance`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the check of imported globals sees reads inside template literals and skips comments, strings and types', () => {
  const text = [
    '// Buffer.from in a comment',
    "const s = 'Buffer.alloc(1) in a string';",
    'function f(chunk: Buffer): Buffer { return chunk; }',
    'const t = `${Buffer.byteLength(s)} bytes`;',
  ].join('\n');
  assert.deepEqual([...globalsRead('probe.ts', text, ['Buffer', 'performance'])], ['Buffer']);
  assert.deepEqual([...globalsRead('probe.ts', 'const a = `${performance.now()}`; const b: Buffer = x;', ['Buffer', 'performance'])], ['performance']);
  assert.deepEqual([...globalsRead('probe.ts', 'if (x instanceof Buffer) new Buffer(1);', ['Buffer'])], ['Buffer']);
  assert.equal(globalsRead('probe.ts', 'const n = `Buffer.from`; /* performance.now() */', ['Buffer', 'performance']).size, 0);
});
