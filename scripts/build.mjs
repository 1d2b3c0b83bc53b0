// Builds the package: ESM with declarations into dist/esm, CommonJS into dist/cjs (both from src/).
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function compile(project) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', project], { stdio: 'inherit' });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tsc -p ${project} exited with ${code}`))));
  });
}

await rm('dist', { recursive: true, force: true });
await Promise.all([compile('tsconfig.build.json'), compile('tsconfig.cjs.json')]);
await mkdir('dist/cjs', { recursive: true });
// dist/cjs holds CommonJS files under a package whose type is "module": mark the folder as CommonJS.
await writeFile('dist/cjs/package.json', '{\n  "type": "commonjs"\n}\n');
