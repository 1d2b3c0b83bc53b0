// The benchmark's figures: the metrics, medians over rounds, ratios to the reference, targets, and the table as text and Markdown.

const KiB = 1024;
const MiB = 1024 * 1024;

const fixed = (digits) => (value) => value.toFixed(digits);
const thousands = (value) => (value >= 10_000 ? `${(value / 1000).toFixed(1)}k` : value.toFixed(0));
const megabytes = (value) => value.toFixed(value < 100 ? 1 : 0);

/** Every figure a run can have, in table order. `better` says which way a ratio is good. */
export const metrics = [
  { key: 'rps', title: 'req/s', better: 'higher', format: thousands },
  // Server CPU per request: steadier than req/s on a shared machine, since contention mostly stretches time, not work.
  { key: 'cpuPerRequest', title: 'srv µs/req', better: 'lower', format: fixed(2) },
  { key: 'p50', title: 'p50 ms', better: 'lower', format: fixed(3) },
  { key: 'p99', title: 'p99 ms', better: 'lower', format: fixed(3) },
  { key: 'mbps', title: 'MB/s', better: 'higher', format: megabytes },
  { key: 'peakRss', title: 'peak RSS MiB', better: 'lower', format: (v) => (v / MiB).toFixed(1), unit: MiB },
  { key: 'rssGrowth', title: 'RSS growth MiB', better: 'lower', format: (v) => (v / MiB).toFixed(1), unit: MiB },
  { key: 'perConnection', title: 'KiB/conn', better: 'lower', format: (v) => (v / KiB).toFixed(1), unit: KiB },
];
const metricByKey = new Map(metrics.map((metric) => [metric.key, metric]));

function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Medians over the rounds of one run: every metric, and the CPU shares. Errors are summed. */
export function aggregate(measurements) {
  const values = {};
  for (const { key } of metrics) {
    const value = median(measurements.map((m) => m.values[key]));
    if (value !== undefined) values[key] = value;
  }
  const cpu = {};
  for (const part of ['server', 'loadgen', 'others']) {
    const value = median(measurements.map((m) => m.cpu?.[part]));
    if (value !== undefined) cpu[part] = value;
  }
  const errorKinds = {};
  for (const m of measurements) for (const [kind, count] of Object.entries(m.errorKinds)) errorKinds[kind] = (errorKinds[kind] ?? 0) + count;
  return { values, cpu, errors: measurements.reduce((sum, m) => sum + m.errors, 0), errorKinds, rounds: measurements.length };
}

/** Each metric of `run` divided by the reference's. */
export function ratios(run, reference) {
  const out = {};
  for (const [key, value] of Object.entries(run.values)) {
    const base = reference.values[key];
    if (typeof base === 'number' && base > 0) out[key] = value / base;
  }
  return out;
}

function targetText(target) {
  const metric = metricByKey.get(target.metric);
  if (target.ratioAtLeast !== undefined) return `${metric.title} ≥ ${target.ratioAtLeast}× ref`;
  if (target.ratioAtMost !== undefined) return `${metric.title} ≤ ${target.ratioAtMost}× ref`;
  const bound = target.atLeast ?? target.atMost;
  const shown = metric.unit === undefined ? String(bound) : metric.format(bound);
  return `${metric.title} ${target.atLeast !== undefined ? '≥' : '≤'} ${shown}`;
}

/** Checks a target; a run with errors fails whatever its figures. */
export function evaluate(target, run, reference) {
  const text = targetText(target);
  const value = run.values[target.metric];
  if (run.errors > 0) return { text, pass: false, note: 'errors' };
  if (value === undefined) return { text, pass: false, note: 'no figure' };
  let actual = value;
  let pass;
  if (target.ratioAtLeast !== undefined || target.ratioAtMost !== undefined) {
    const base = reference.values[target.metric];
    if (!(base > 0) || reference.errors > 0) return { text, pass: false, note: 'no reference' };
    actual = value / base;
    pass = target.ratioAtLeast !== undefined ? actual >= target.ratioAtLeast : actual <= target.ratioAtMost;
  } else {
    pass = target.atLeast !== undefined ? value >= target.atLeast : value <= target.atMost;
  }
  return { text, pass, actual };
}

/** The table's rows (arrays of cells) for scenarios summarised by summarize() in run.mjs. */
export function tableRows(summary) {
  const header = ['Scenario', 'Server', ...metrics.map((m) => m.title), 'errors', 'CPU srv/gen/other %', 'Target', 'Result'];
  const rows = [];
  for (const scenario of summary) {
    scenario.runs.forEach((run, index) => {
      const cells = [index === 0 ? scenario.title : '', run.label];
      for (const metric of metrics) {
        const value = run.values[metric.key];
        if (value === undefined) {
          cells.push('');
          continue;
        }
        const ratio = run.ratios?.[metric.key];
        cells.push(ratio === undefined ? metric.format(value) : `${metric.format(value)} (${ratio.toFixed(2)}×)`);
      }
      cells.push(String(run.errors));
      const { server, loadgen, others } = run.cpu;
      cells.push(server === undefined ? '' : `${server.toFixed(0)}/${loadgen.toFixed(0)}/${others.toFixed(0)}`);
      const results = scenario.targets.filter((t) => t.run === run.label);
      cells.push(results.map((t) => t.text).join('; '));
      cells.push(results.map((t) => `${t.pass ? 'PASS' : 'FAIL'}${t.note ? ` (${t.note})` : ''}`).join('; '));
      rows.push(cells);
    });
  }
  return { header, rows };
}

/** Drops columns that are empty in every row. */
function compact({ header, rows }) {
  const keep = header.map((_, column) => rows.some((row) => row[column] !== ''));
  return { header: header.filter((_, c) => keep[c]), rows: rows.map((row) => row.filter((_, c) => keep[c])) };
}

export function textTable(table) {
  const { header, rows } = compact(table);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells) => cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function markdownTable(table) {
  const { header, rows } = compact(table);
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, column) => (column < 2 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}
