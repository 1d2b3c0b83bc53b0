// A Logger that records entries, so tests can assert that a reason was logged.

import type { LogFields, Logger, LogLevel } from '../../src/log.js';

export interface LogEntry {
  level: LogLevel;
  message: string;
  fields: LogFields | undefined;
}

export interface CaptureLogger extends Logger {
  readonly entries: LogEntry[];
  /** Entries whose message or code matches. */
  find(match: RegExp | string): LogEntry[];
  /** Resolves when an entry matching `match` has been logged (rejects after `timeout` ms). */
  waitFor(match: RegExp | string, timeout?: number): Promise<LogEntry>;
}

function matches(entry: LogEntry, match: RegExp | string): boolean {
  const text = `${entry.message} ${String(entry.fields?.code ?? '')}`;
  return typeof match === 'string' ? text.includes(match) : match.test(text);
}

export function captureLogger(options: { echo?: boolean } = {}): CaptureLogger {
  const entries: LogEntry[] = [];
  const waiters: Array<{ match: RegExp | string; resolve: (entry: LogEntry) => void }> = [];
  const record = (level: LogLevel) => (message: string, fields?: LogFields) => {
    const entry = { level, message, fields };
    entries.push(entry);
    if (options.echo === true || process.env.NODEFPM_TEST_LOG === '1') console.error(`[${level}] ${message}`, fields ?? '');
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (matches(entry, waiters[i]!.match)) waiters.splice(i, 1)[0]!.resolve(entry);
    }
  };
  return {
    entries,
    error: record('error'),
    warn: record('warn'),
    info: record('info'),
    debug: record('debug'),
    find: (match) => entries.filter((entry) => matches(entry, match)),
    waitFor(match, timeout = 5000) {
      const existing = entries.find((entry) => matches(entry, match));
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log entry matching ${String(match)} within ${timeout} ms`)), timeout);
        waiters.push({
          match,
          resolve: (entry) => {
            clearTimeout(timer);
            resolve(entry);
          },
        });
      });
    },
  };
}
