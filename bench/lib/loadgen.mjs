// The load generator from the runner's side: built from bench/loadgen/fcgi-bench.c when needed, run, its JSON line read.
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTracked, stopChild, tail, waitForLine } from './processes.mjs';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(benchDir, 'loadgen', 'fcgi-bench.c');
export const loadgenBinary = join(benchDir, 'bin', 'fcgi-bench');

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Compiles the load generator when the binary is missing or older than its source. */
export function buildLoadgen() {
  if (mtime(loadgenBinary) >= mtime(source)) return loadgenBinary;
  mkdirSync(dirname(loadgenBinary), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  process.stdout.write(`building ${loadgenBinary}\n`);
  const result = spawnSync(cc, ['-O2', '-Wall', '-o', loadgenBinary, source], { stdio: 'inherit' });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`${cc} could not build the load generator (${result.error?.message ?? `exit ${result.status}`}); install a C compiler (gcc)`);
  }
  return loadgenBinary;
}

/**
 * The command line for a load: { protocol, connections, duration, warmup, requests, body, uri,
 * expectBody, hold }, as fcgi-bench takes it.
 */
export function loadgenArgs(target, load) {
  const args = ['-p', load.protocol ?? 'fcgi', '-c', String(load.connections ?? 32)];
  if (load.requests !== undefined) args.push('-n', String(load.requests), '-d', '100000');
  else if (load.duration !== undefined) args.push('-d', String(load.duration));
  if (load.warmup !== undefined) args.push('-w', String(load.warmup));
  if (load.body !== undefined && load.body > 0) args.push('-b', String(load.body));
  if (load.uri !== undefined) args.push('-u', load.uri);
  if (load.expectBody !== undefined) args.push('-e', String(load.expectBody));
  if (load.hold !== undefined) args.push('--hold', String(load.hold));
  // --lifeline: the generator stops when our pipe to its stdin closes, so it never outlives the runner.
  args.push('-v', '--lifeline', target);
  return args;
}

function spawnLoadgen(target, load, pin) {
  const args = loadgenArgs(target, load);
  return pin === null ? spawnTracked(loadgenBinary, args) : spawnTracked('taskset', ['-c', String(pin), loadgenBinary, ...args]);
}

function readResult(child, stderr) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.once('exit', (code, signal) => {
      const line = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{') && !l.includes('"event"'))
        .pop();
      if (code !== 0 || line === undefined) {
        reject(new Error(`load generator failed (${signal ?? code}): ${stderr().trim() || out.trim()}`));
        return;
      }
      const result = JSON.parse(line);
      result.stderr = stderr().trim();
      resolve(result);
    });
  });
}

/** Runs one load to its end and resolves with the generator's result object. */
export async function runLoad(target, load, { pin = null, timeoutMs } = {}) {
  const child = spawnLoadgen(target, load, pin);
  const stderr = tail(child.stderr);
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs ?? ((load.duration ?? 0) + (load.warmup ?? 0) + 120) * 1000);
  try {
    return await readResult(child, stderr);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens `connections` connections that each complete one request and then stay idle. Resolves once
 * they all are, with how many are held and a release() that ends the hold and resolves with the
 * generator's result.
 */
export async function holdIdle(target, load, { pin = null, timeoutMs = 120_000 } = {}) {
  const child = spawnLoadgen(target, { ...load, hold: Math.ceil(timeoutMs / 1000) }, pin);
  const stderr = tail(child.stderr);
  const result = readResult(child, stderr);
  result.catch(() => {});
  const match = await waitForLine(child, child.stdout, /^(\{"event":"holding".*\})$/, timeoutMs, () => 'the load generator');
  const holding = JSON.parse(match[1]);
  return {
    held: holding.connections,
    setupSeconds: holding.seconds,
    async release() {
      await stopChild(child);
      return result;
    },
  };
}
