// Error pages for failed requests (HTML, JSON or text, by Accept) and the FCGI_STDERR lines that go with them.

import { STATUS_CODES } from 'node:http';

/** What an error page shows. */
export interface ErrorPageContent {
  status: number;
  /** The request id (req.id), so a user's report can be matched with the logs. */
  requestId: string;
  /** A sentence for the client: a 4xx NodefpmError's message, which says what to fix. */
  message?: string;
  /** Development only: the error's stack and causes. Never shown otherwise. */
  details?: string;
}

export type ErrorPageFormat = 'html' | 'json' | 'text';

/** The q-value the Accept header gives `types` (the best of them), 0 when none is listed. Wildcards do not count. */
function quality(accept: string, types: readonly string[]): number {
  let best = 0;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';');
    if (!types.includes(type!.trim().toLowerCase())) continue;
    let q = 1;
    for (const param of params) {
      const [name, value] = param.split('=');
      if (name?.trim().toLowerCase() === 'q') q = Number(value);
    }
    if (Number.isFinite(q) && q > best) best = q;
  }
  return best;
}

/**
 * HTML when the client names text/html (browsers do), JSON when it names application/json more
 * strongly (API clients), text otherwise — curl's and fetch's `*\/*` included, since a page of
 * markup in a terminal helps nobody.
 */
export function errorPageFormat(accept: string | undefined): ErrorPageFormat {
  if (accept === undefined || accept === '') return 'text';
  const html = quality(accept, ['text/html', 'application/xhtml+xml']);
  const json = quality(accept, ['application/json', 'application/problem+json']);
  if (html > 0 && html >= json) return 'html';
  return json > 0 ? 'json' : 'text';
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** The page for `content` in `format`: its Content-Type and body. */
export function renderErrorPage(content: ErrorPageContent, format: ErrorPageFormat): { contentType: string; body: string } {
  const reason = STATUS_CODES[content.status] ?? 'Error';
  const title = `${content.status} ${reason}`;
  if (format === 'json') {
    const body: Record<string, unknown> = { status: content.status, error: reason, requestId: content.requestId };
    if (content.message !== undefined) body.message = content.message;
    if (content.details !== undefined) body.details = content.details;
    return { contentType: 'application/json; charset=utf-8', body: `${JSON.stringify(body)}\n` };
  }
  if (format === 'html') {
    const message = content.message === undefined ? '' : `<p>${escapeHtml(content.message)}</p>\n`;
    const details = content.details === undefined ? '' : `<pre>${escapeHtml(content.details)}</pre>\n`;
    const body =
      `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
      `<title>${escapeHtml(title)}</title>\n</head>\n<body>\n<h1>${escapeHtml(title)}</h1>\n${message}` +
      `<p>Request id: <code>${escapeHtml(content.requestId)}</code></p>\n${details}</body>\n</html>\n`;
    return { contentType: 'text/html; charset=utf-8', body };
  }
  let body = `${title}\n`;
  if (content.message !== undefined) body += `${content.message}\n`;
  body += `Request id: ${content.requestId}\n`;
  if (content.details !== undefined) body += `\n${content.details}\n`;
  return { contentType: 'text/plain; charset=utf-8', body };
}

/** An error's stack (or message) followed by its causes' ("Caused by: ..."), at most a few levels deep. */
export function errorDetails(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const text = current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current);
    parts.push(depth === 0 ? text : `Caused by: ${text}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\n');
}

/**
 * Text for FCGI_STDERR: every line starts `nodefpm[PID] request ID: `, so `grep 'request ID'` finds
 * the whole entry in a web server's error log (nginx, Apache, lighttpd and h2o each log stderr their
 * own way, some splitting it into one entry per line). Control characters other than tabs are shown
 * as '?' so a crafted message cannot forge log lines.
 */
export function stderrText(requestId: string, text: string): string {
  const prefix = `nodefpm[${process.pid}] request ${requestId}: `;
  return (
    text
      .split(/\r?\n/)
      .filter((line) => line.trim() !== '')
      .map((line) => prefix + line.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?'))
      .join('\n') + '\n'
  );
}
