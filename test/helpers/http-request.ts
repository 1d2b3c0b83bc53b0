// One HTTP request from a test, answered whole: status, headers (parsed and raw) and the body as a Buffer; a body sent at once or streamed.

import { once } from 'node:events';
import http from 'node:http';

export interface HttpResult {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface RequestSpec {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  /** Writes the body piece by piece: sent chunked unless a content-length header is given. */
  stream?: (req: http.ClientRequest) => Promise<void>;
  agent?: http.Agent | false;
  /** Fails the request with no answer after this many ms. Default 120 s. */
  timeout?: number;
}

/** Writes a chunk of a streamed body, waiting for 'drain' when the socket's buffer is full. */
export async function write(req: http.ClientRequest, chunk: Buffer): Promise<void> {
  if (!req.write(chunk)) await once(req, 'drain');
}

export function request(origin: string, path: string, spec: RequestSpec = {}): Promise<HttpResult> {
  const timeout = spec.timeout ?? 120_000;
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...spec.headers };
    if (spec.body !== undefined) headers['content-length'] = Buffer.byteLength(spec.body);
    const req = http.request(new URL(path, origin), { method: spec.method ?? 'GET', headers, agent: spec.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    req.setTimeout(timeout, () => req.destroy(new Error(`no answer to ${spec.method ?? 'GET'} ${path} within ${timeout} ms`)));
    if (spec.stream !== undefined) {
      spec.stream(req).then(
        () => req.end(),
        (error: unknown) => req.destroy(error as Error),
      );
    } else {
      req.end(spec.body);
    }
  });
}
