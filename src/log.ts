// The logger interface every layer logs through, and the default logger that writes lines to stderr.

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Structured context attached to a log line: connection and request ids, error codes, figures. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}

const levelRank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

function formatFields(fields: LogFields | undefined): string {
  if (fields === undefined) return '';
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = value instanceof Error ? (value.stack ?? value.message) : typeof value === 'string' ? value : JSON.stringify(value);
    out += ` ${key}=${/[\s"=]/.test(text) && !(value instanceof Error) ? JSON.stringify(text) : text}`;
  }
  return out;
}

/**
 * A logger writing one line per entry: `<ISO time> nodefpm[<pid>] <level>: <message> key=value ...`.
 * `write` defaults to process.stderr, where FastCGI web servers and process managers collect it.
 */
export function createLogger(options: { level?: LogLevel; write?: (line: string) => void } = {}): Logger {
  const threshold = levelRank[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (levelRank[level] > threshold) return;
    write(`${new Date().toISOString()} nodefpm[${process.pid}] ${level}: ${message}${formatFields(fields)}\n`);
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};
