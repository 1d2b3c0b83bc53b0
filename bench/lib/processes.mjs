// Child processes of the benchmark (started in one place, all killed on exit, on errors and on Ctrl-C) and what /proc says about them.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const children = new Set();
const cleanups = [];

/** Registers a synchronous cleanup (a temporary folder) to run when the runner exits, however it exits. */
export function onExit(cleanup) {
  cleanups.push(cleanup);
}

function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const cleanup of cleanups.splice(0)) {
    try {
      cleanup();
    } catch {
      // best effort: the process is exiting
    }
  }
}

// 'exit' runs for normal ends, process.exit() and uncaught errors alike; signals need their own handlers
// (without one, Node dies without running 'exit' listeners).
process.on('exit', killAll);
for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
  ['SIGHUP', 1],
]) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping every child process\n`);
    process.exit(128 + number);
  });
}

/**
 * Spawns a tracked child. Servers also get a lifeline: their stdin is a pipe from us, and they exit
 * when it closes, so not even a SIGKILL of the runner leaves a server behind.
 */
export function spawnTracked(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // The child's stdin stays open as the lifeline; an EPIPE on it after the child died is no news.
  child.stdin?.on('error', () => {});
  return child;
}

/** Keeps the last `limit` characters a stream produced (a server's stderr, for error reports). */
export function tail(stream, limit = 8192) {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text;
}

/** Resolves with the first line of `stream` matching `pattern`; rejects when `child` exits first or after `ms`. */
export function waitForLine(child, stream, pattern, ms, describe) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const match = pattern.exec(line);
        if (match !== null) {
          done();
          resolve(match);
          return;
        }
      }
    };
    const onExit = (code, signal) => {
      done();
      reject(new Error(`${describe()} exited (${signal ?? code}) before it was ready`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${describe()} was not ready within ${ms} ms`));
    }, ms);
    const done = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      child.off('exit', onExit);
    };
    stream.setEncoding('utf8');
    stream.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Stops a child: SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export async function stopChild(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const outcome = await Promise.race([exited, sleep(graceMs).then(() => 'timeout')]);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

// ---- /proc ----

/** The pid and all its descendants (a process manager's workers count in its memory). */
export function processTree(pid) {
  const parents = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 is the parent pid; the command name before it may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // exited while we looked
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

function statusField(text, name) {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** Resident memory now (VmRSS) and at its peak (VmHWM), in bytes, summed over the process tree. */
export function memoryOf(pid) {
  let rss = 0;
  let peak = 0;
  for (const member of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${member}/status`, 'utf8');
      rss += statusField(status, 'VmRSS');
      peak += statusField(status, 'VmHWM');
    } catch {
      // exited while we looked
    }
  }
  return { rss, peak };
}

let ticksPerSecond = 0;
function clockTicks() {
  if (ticksPerSecond === 0) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksPerSecond = Number(out.stdout) || 100;
  }
  return ticksPerSecond;
}

/** CPU seconds (user + system, all threads) the process tree has used. */
export function cpuSecondsOf(pid) {
  let ticks = 0;
  for (const member of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited while we looked
    }
  }
  return ticks / clockTicks();
}

/** CPU seconds the whole machine spent busy and in total (all cores), from /proc/stat. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / clockTicks(), total: (busy + idle + iowait) / clockTicks() };
}

/** Removes a folder on exit. */
export function removeOnExit(path) {
  onExit(() => rmSync(path, { recursive: true, force: true }));
}
