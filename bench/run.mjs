// `npm run bench`: runs every scenario of bench/scenarios.mjs against fresh servers, prints the table and writes bench/results/latest.{json,md}.
//
//   npm run bench                       full run: 3 rounds of 8 s per load, medians
//   npm run bench -- --quick            a quick look while developing (1 round of 2 s, smaller sizes)
//   npm run bench -- --only hello,idle  some scenarios only
//   node bench/run.mjs --help           every option (each also an environment variable)
//
// Only a full run of every scenario rewrites bench/results/latest.*; other runs write *.tmp files
// beside them, so a quick look never replaces the figures that are committed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { buildLoadgen, holdIdle, runLoad } from './lib/loadgen.mjs';
import { cpuSecondsOf, machineCpu, memoryOf, removeOnExit, spawnTracked, stopChild, tail, waitForLine } from './lib/processes.mjs';
import { aggregate, evaluate, markdownTable, metrics, ratios, tableRows, textTable } from './lib/report.mjs';
import { scenarios, servers } from './scenarios.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// ---- configuration: flags, else environment variables, else defaults ----

const OPTIONS = [
  ['quick', 'BENCH_QUICK', 'a quick look: 1 round of 2 s, 256 MiB transfers, 500 idle connections', 'flag'],
  ['duration', 'BENCH_DURATION', 'measured seconds per load', 'number'],
  ['warmup', 'BENCH_WARMUP', 'seconds of load before each measured load', 'number'],
  ['rounds', 'BENCH_ROUNDS', 'rounds per scenario, runs alternating; figures are medians', 'number'],
  ['only', 'BENCH_ONLY', 'comma-separated scenario ids', 'string'],
  ['idle-connections', 'BENCH_IDLE_CONNECTIONS', 'connections held in the idle scenario', 'number'],
  ['big-bytes', 'BENCH_BIG_BYTES', 'bytes of each download and upload', 'number'],
  ['big-requests', 'BENCH_BIG_REQUESTS', 'downloads (uploads) measured per run', 'number'],
  ['pin', 'BENCH_PIN', 'pin the load generator to CPU 0 and the server to CPU 1 (taskset)', 'flag'],
  ['node-args', 'BENCH_NODE_ARGS', 'extra node flags for the servers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"', 'string'],
];

function usage() {
  const lines = OPTIONS.map(([name, env, text, type]) => `  --${name}${type === 'flag' ? '' : ' VALUE'}`.padEnd(28) + `${env.padEnd(24)} ${text}`);
  const ids = scenarios.map((s) => s.id).join(', ');
  return `usage: node bench/run.mjs [options]\n${lines.join('\n')}\nscenarios: ${ids}\n`;
}

function parseConfig(argv, env) {
  const given = {};
  for (const [name, variable, , type] of OPTIONS) {
    if (env[variable] !== undefined && env[variable] !== '') given[name] = type === 'flag' ? env[variable] !== '0' : env[variable];
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    }
    const [, name, inline] = /^--([^=]+)(?:=(.*))?$/.exec(arg) ?? [];
    const option = OPTIONS.find(([n]) => n === name);
    if (option === undefined) {
      process.stderr.write(`bench: unknown argument ${arg}\n${usage()}`);
      process.exit(2);
    }
    given[name] = option[3] === 'flag' ? true : (inline ?? argv[++i]);
  }
  const quick = given.quick === true;
  const number = (name, fallback) => {
    if (given[name] === undefined) return fallback;
    const value = Number(given[name]);
    if (!Number.isFinite(value) || value <= 0) {
      process.stderr.write(`bench: --${name} must be a positive number, got ${given[name]}\n`);
      process.exit(2);
    }
    return value;
  };
  const only = given.only === undefined ? null : String(given.only).split(',').map((s) => s.trim()).filter(Boolean);
  for (const id of only ?? []) {
    if (!scenarios.some((s) => s.id === id)) {
      process.stderr.write(`bench: no scenario "${id}"\n${usage()}`);
      process.exit(2);
    }
  }
  const config = {
    quick,
    duration: number('duration', quick ? 2 : 8),
    warmup: number('warmup', quick ? 0.5 : 2),
    rounds: Math.round(number('rounds', quick ? 1 : 3)),
    only,
    idleConnections: Math.round(number('idle-connections', quick ? 500 : 2000)),
    bigBytes: Math.round(number('big-bytes', quick ? 256 * MiB : GiB)),
    bigRequests: Math.round(number('big-requests', quick ? 1 : 2)),
    pin: given.pin === true,
    nodeArgs: given['node-args'] === undefined ? [] : String(given['node-args']).split(/\s+/).filter(Boolean),
  };
  // The committed figures come only from a full, default run.
  config.official = !quick && only === null && Object.keys(given).every((name) => name === 'pin');
  return config;
}

const cfg = parseConfig(process.argv.slice(2), process.env);
const tmp = mkdtempSync(join(os.tmpdir(), 'nodefpm-bench-'));
removeOnExit(tmp);

// ---- servers ----

let serverCount = 0;

/** Starts a run's server as a separate process and waits for its "ready" line. */
async function startServer(run) {
  const spec = servers[run.server];
  if (spec === undefined) throw new Error(`no server "${run.server}" in bench/scenarios.mjs`);
  const listen = spec.listen === 'tcp' ? '127.0.0.1:0' : join(tmp, `${run.server}-${++serverCount}.sock`);
  const nodeArgs = ['--expose-gc', ...cfg.nodeArgs, join(benchDir, spec.script), listen, ...(spec.args?.(cfg) ?? []), ...(run.args ?? [])];
  const [command, args] = cfg.pin ? ['taskset', ['-c', '1', process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const child = spawnTracked(command, args, { cwd: root, env: { ...process.env, NODEFPM_BENCH_LIFELINE: '1' } });
  const stderr = tail(child.stderr);
  const describe = () => `server ${run.server} (${spec.script})${stderr() ? `:\n${stderr().trim()}` : ''}`;
  const match = await waitForLine(child, child.stdout, /^ready(?: (\S+))?\s*$/, 20_000, describe);
  // Later lines are only answers to collectGarbage(); reading them keeps the pipe from filling.
  const gcWaiters = [];
  child.stdout.on('data', (chunk) => {
    if (chunk.includes('gc\n')) for (const resolve of gcWaiters.splice(0)) resolve();
  });
  return {
    pid: child.pid,
    target: match[1] ?? `unix:${listen}`,
    stderr,
    stop: () => stopChild(child),
    /** Full GC in the server (common.mjs answers SIGUSR2 with "gc"); resolves when done, or after 2 s. */
    collectGarbage: () =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, 2000);
        gcWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGUSR2');
      }),
  };
}

// ---- measuring one run ----

function cpuSnapshot(pid) {
  return { machine: machineCpu(), server: cpuSecondsOf(pid), at: performance.now() };
}

/** CPU during a measured load, in % of one core: the server, the load generator, and everything else. */
function cpuShares(before, after, loadgenSeconds) {
  const elapsed = (after.at - before.at) / 1000;
  const server = after.server - before.server;
  const busy = after.machine.busy - before.machine.busy;
  const percent = (seconds) => (100 * seconds) / elapsed;
  return { server: percent(server), loadgen: percent(loadgenSeconds), others: Math.max(0, percent(busy - server - loadgenSeconds)) };
}

function fromLoadgen(result) {
  return { errors: result.errors + (result.warmupErrors ?? 0), errorKinds: result.error_kinds, loadgen: result };
}

/** RSS after a full GC, the median of a few samples (what the connections retain, not their garbage). */
async function retainedRss(server, samples = 3, gapMs = 200) {
  const values = [];
  for (let i = 0; i < samples; i++) {
    await server.collectGarbage();
    await sleep(gapMs);
    values.push(memoryOf(server.pid).rss);
  }
  return values.sort((a, b) => a - b)[samples >> 1];
}

const measureKind = {
  /** Warm up, then a fixed duration of load: throughput, latency, peak memory. */
  async load(server, load) {
    const warm = await runLoad(server.target, { ...load, duration: cfg.warmup });
    const before = cpuSnapshot(server.pid);
    const result = await runLoad(server.target, { ...load, duration: cfg.duration });
    const after = cpuSnapshot(server.pid);
    const cpuPerRequest = result.requests > 0 ? ((after.server - before.server) / result.requests) * 1e6 : undefined;
    return {
      values: { rps: result.rps, cpuPerRequest, p50: result.p50_ms, p99: result.p99_ms, mbps: result.mb_s, peakRss: memoryOf(server.pid).peak },
      cpu: cpuShares(before, after, result.cpu_s),
      ...fromLoadgen({ ...result, warmupErrors: warm.errors }),
    };
  },

  /** One big request to warm up, then `requests` of them: throughput and how far memory grew from idle. */
  async transfer(server, load, idleRss) {
    const warm = await runLoad(server.target, { ...load, requests: 1 });
    const before = cpuSnapshot(server.pid);
    const result = await runLoad(server.target, load);
    const after = cpuSnapshot(server.pid);
    const { peak } = memoryOf(server.pid);
    return {
      values: { mbps: result.mb_s, peakRss: peak, rssGrowth: peak - idleRss },
      cpu: cpuShares(before, after, result.cpu_s),
      ...fromLoadgen({ ...result, warmupErrors: warm.errors }),
    };
  },

  /**
   * Warm up, weigh the server, open N kept-alive connections that each complete one request and go
   * idle, weigh it again: the growth divided by N is the memory one idle connection holds.
   */
  async idle(server, load) {
    const warm = await runLoad(server.target, { connections: 32, duration: Math.min(cfg.warmup, 1) });
    const baseline = await retainedRss(server);
    const hold = await holdIdle(server.target, load);
    // Let the server finish what the last connections started.
    await sleep(500);
    const held = await retainedRss(server);
    const { peak } = memoryOf(server.pid);
    const result = await hold.release();
    const missing = load.connections - hold.held;
    return {
      values: { rssGrowth: held - baseline, perConnection: hold.held > 0 ? (held - baseline) / hold.held : undefined, peakRss: peak },
      cpu: {},
      held: hold.held,
      ...fromLoadgen({ ...result, errors: result.errors + missing, warmupErrors: warm.errors }),
    };
  },
};

function describe(values) {
  return metrics
    .filter((m) => values[m.key] !== undefined)
    .map((m) => `${m.title} ${m.format(values[m.key])}`)
    .join(', ');
}

async function measure(scenario, run, round) {
  const kind = scenario.kind ?? 'load';
  const load = { ...scenario.load(cfg), ...run.load };
  const label = `${scenario.id} · ${run.label} · round ${round + 1}/${cfg.rounds}`;
  let server;
  try {
    server = await startServer(run);
    const idleRss = memoryOf(server.pid).rss;
    const measurement = await measureKind[kind](server, load, idleRss);
    const cpu = measurement.cpu.server === undefined ? '' : `, CPU srv/gen/other ${['server', 'loadgen', 'others'].map((k) => measurement.cpu[k].toFixed(0)).join('/')} %`;
    const kinds = Object.keys(measurement.errorKinds ?? {}).length > 0 ? ` ${JSON.stringify(measurement.errorKinds)}` : '';
    process.stdout.write(`  ${label}: ${describe(measurement.values)}, errors ${measurement.errors}${kinds}${cpu}\n`);
    if (measurement.errors > 0) {
      if (measurement.loadgen.stderr) process.stdout.write(`    load generator: ${measurement.loadgen.stderr.split('\n').join('\n    ')}\n`);
      if (server.stderr()) process.stdout.write(`    server stderr: ${server.stderr().trim().split('\n').slice(-10).join('\n    ')}\n`);
    }
    return { round, ...measurement };
  } catch (error) {
    process.stdout.write(`  ${label}: FAILED: ${error.message}\n`);
    return { round, values: {}, cpu: {}, errors: 1, errorKinds: { run_failed: 1 }, failure: error.message };
  } finally {
    await server?.stop();
  }
}

// ---- the run ----

function git(...args) {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machine() {
  let dirty = null;
  try {
    execFileSync('git', ['diff', '--quiet', 'HEAD', '--', 'src'], { cwd: root, stdio: 'ignore' });
    dirty = false;
  } catch (error) {
    if (error.status === 1) dirty = true;
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / GiB),
    kernel: os.release(),
    commit: git('rev-parse', 'HEAD'),
    srcChanged: dirty,
    loadAverageBefore: os.loadavg(),
  };
}

function summarize(measured) {
  return measured.map(({ scenario, byRun }) => {
    const refLabel = scenario.reference ?? scenario.runs[0].label;
    const runs = scenario.runs.map((run) => ({ label: run.label, server: run.server, ...aggregate(byRun.get(run.label)), measurements: byRun.get(run.label) }));
    const reference = runs.find((r) => r.label === refLabel);
    for (const run of runs) if (run !== reference) run.ratios = ratios(run, reference);
    const targets = (scenario.targets ?? []).map((target) => ({
      run: target.run,
      metric: target.metric,
      ...target,
      ...evaluate(target, runs.find((r) => r.label === target.run), reference),
    }));
    return { id: scenario.id, title: scenario.title(cfg), kind: scenario.kind ?? 'load', reference: refLabel, runs, targets };
  });
}

async function main() {
  buildLoadgen();
  const info = machine();
  const selected = scenarios.filter((s) => cfg.only === null || cfg.only.includes(s.id));
  process.stdout.write(
    `nodefpm bench: ${info.cpu} × ${info.cores}, Node ${info.node}, load average ${info.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}\n` +
      `${cfg.rounds} round(s), ${cfg.warmup} s warm-up + ${cfg.duration} s per load${cfg.pin ? ', pinned' : ''}\n`,
  );
  const started = performance.now();
  const measured = [];
  for (const scenario of selected) {
    process.stdout.write(`${scenario.title(cfg)}\n`);
    const byRun = new Map(scenario.runs.map((run) => [run.label, []]));
    for (let round = 0; round < cfg.rounds; round++) {
      // Alternate the order so that a drift in the machine's load does not always favour one server.
      const order = round % 2 === 0 ? scenario.runs : [...scenario.runs].reverse();
      for (const run of order) byRun.get(run.label).push(await measure(scenario, run, round));
    }
    measured.push({ scenario, byRun });
  }
  const summary = summarize(measured);
  info.loadAverageAfter = os.loadavg();
  info.seconds = Math.round((performance.now() - started) / 1000);

  const table = tableRows(summary);
  const others = summary.flatMap((s) => s.runs.map((r) => r.cpu.others)).filter((v) => v !== undefined);
  const noise = others.length === 0 ? '' : `other processes used ${Math.min(...others).toFixed(0)}-${Math.max(...others).toFixed(0)} % of one core during the loads`;
  const heading =
    `${info.date.slice(0, 16).replace('T', ' ')} UTC, ${info.cpu} × ${info.cores}, Node ${info.node}, ` +
    `commit ${info.commit?.slice(0, 10) ?? 'unknown'}${info.srcChanged ? ' (src/ modified)' : ''}; ` +
    `${cfg.rounds} round(s) of ${cfg.warmup} s warm-up + ${cfg.duration} s, medians; ${noise || 'no load figures'}.`;
  process.stdout.write(`\n${textTable(table)}\n\n${heading}\n`);

  const misses = summary.flatMap((s) => s.targets).filter((t) => !t.pass);
  const failedRuns = summary.flatMap((s) => s.runs.filter((r) => r.errors > 0).map((r) => `${s.id} / ${r.label}`));
  const markdown =
    `${heading}\n\n${markdownTable(table)}\n\n` +
    'Ratios (in parentheses) are to the first row of the same scenario, measured in the same run. ' +
    'MB/s counts request and response body bytes (10^6 bytes). CPU srv/gen/other: % of one core used by the ' +
    'server, the load generator and everything else on the machine during the measured load. ' +
    'Produced by `npm run bench`; see docs/benchmarks.md.\n';
  const results = join(benchDir, 'results');
  mkdirSync(results, { recursive: true });
  const suffix = cfg.official ? '' : '.tmp';
  const { nodeArgs, ...config } = cfg;
  writeFileSync(join(results, `latest.json${suffix}`), `${JSON.stringify({ ...info, config: { ...config, nodeArgs }, scenarios: summary }, null, 2)}\n`);
  writeFileSync(join(results, `latest.md${suffix}`), markdown);
  process.stdout.write(
    `\n${misses.length === 0 ? 'every target met' : `${misses.length} target(s) missed: ${misses.map((t) => t.text).join('; ')}`}; ` +
      `figures written to bench/results/latest.{json,md}${suffix}\n`,
  );
  if (failedRuns.length > 0) {
    process.stdout.write(`runs with errors: ${failedRuns.join(', ')}\n`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
