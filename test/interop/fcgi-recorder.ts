// A TCP relay between a web server and a nodefpm app that records the FastCGI records both ways, so interop tests can show what the web server really sent.

import net from 'node:net';
import { RecordParser, RecordType, decodeBeginRequest, decodeEndRequest, decodePairList, recordTypeName } from '../../src/protocol/index.js';

export interface RecordedRecord {
  /** `in`: web server to app; `out`: app to web server. */
  direction: 'in' | 'out';
  type: number;
  requestId: number;
  content: Buffer;
}

/** One request as the web server sent it, and how the app answered. */
export interface RecordedRequest {
  role: number;
  /** BEGIN_REQUEST flags (FCGI_KEEP_CONN = 1). */
  flags: number;
  /** The PARAMS stream decoded, in the order sent. */
  params: Array<[string, string]>;
  /** Record types the web server sent for this request, by name, in order (`PARAMS(empty)` for a terminator). */
  sent: string[];
  /** STDIN records sent (the empty terminator included): 0 means no FCGI_STDIN at all. */
  stdinRecords: number;
  stdinBytes: number;
  /** END_REQUEST from the app, if it came. */
  end: { appStatus: number; protocolStatus: number } | null;
}

function describe(record: RecordedRecord): string {
  return `${recordTypeName(record.type)}${record.content.length === 0 ? '(empty)' : ''}`;
}

/**
 * Listens on 127.0.0.1 and relays each connection to `target`, parsing both directions with the
 * project's own record parser (a parse failure is kept as an error, the bytes still relayed as they are).
 */
export class FcgiRecorder {
  readonly records: RecordedRecord[] = [];
  readonly errors: string[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #connections = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(target: { host: string; port: number }): Promise<FcgiRecorder> {
    let recorder!: FcgiRecorder;
    const server = net.createServer((client) => recorder.#relay(client, target));
    recorder = new FcgiRecorder(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    return recorder;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('the recorder is not listening');
    return address.port;
  }

  /** Connections the web server opened so far. */
  get connections(): number {
    return this.#connections;
  }

  /** The requests seen so far, each from its BEGIN_REQUEST (request ids are reused, so order tells them apart). */
  requests(): RecordedRequest[] {
    const out: RecordedRequest[] = [];
    const open = new Map<string, RecordedRequest>();
    for (const record of this.records) {
      const key = `${record.requestId}`;
      if (record.direction === 'in' && record.type === RecordType.BeginRequest) {
        const begin = decodeBeginRequest(record.content);
        const request: RecordedRequest = { role: begin.role, flags: begin.flags, params: [], sent: [], stdinRecords: 0, stdinBytes: 0, end: null };
        request.sent.push(describe(record));
        out.push(request);
        open.set(key, request);
        continue;
      }
      const request = open.get(key);
      if (request === undefined) continue;
      if (record.direction === 'in') {
        request.sent.push(describe(record));
        if (record.type === RecordType.Params && record.content.length > 0) request.params.push(...decodePairList(record.content));
        if (record.type === RecordType.Stdin) {
          request.stdinRecords++;
          request.stdinBytes += record.content.length;
        }
      } else if (record.type === RecordType.EndRequest) {
        request.end = decodeEndRequest(record.content);
        open.delete(key);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #relay(client: net.Socket, target: { host: string; port: number }): void {
    this.#connections++;
    const app = net.connect(target);
    this.#sockets.add(client).add(app);
    // PARAMS may span records: keep each request's PARAMS bytes whole before decoding them.
    const params = new Map<number, Buffer[]>();
    const parse = (direction: 'in' | 'out'): RecordParser =>
      new RecordParser({
        onRecord: (type, requestId, content) => {
          if (direction === 'in' && type === RecordType.Params) {
            if (content.length > 0) {
              params.set(requestId, [...(params.get(requestId) ?? []), Buffer.from(content)]);
              return;
            }
            const whole = Buffer.concat(params.get(requestId) ?? []);
            params.delete(requestId);
            if (whole.length > 0) this.records.push({ direction, type, requestId, content: whole });
          }
          this.records.push({ direction, type, requestId, content: Buffer.from(content) });
        },
      });
    const fromClient = parse('in');
    const fromApp = parse('out');
    client.on('data', (chunk: Buffer) => {
      const error = fromClient.push(chunk);
      if (error !== undefined) this.errors.push(`web server -> app: ${error.message}`);
      app.write(chunk);
    });
    app.on('data', (chunk: Buffer) => {
      const error = fromApp.push(chunk);
      if (error !== undefined) this.errors.push(`app -> web server: ${error.message}`);
      client.write(chunk);
    });
    // Half-closes are passed on (the relay stays transparent); once either socket closes, both go.
    const finish = (): void => {
      client.destroy();
      app.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(app);
    };
    client.on('end', () => app.end());
    app.on('end', () => client.end());
    client.on('close', finish);
    app.on('close', finish);
    client.on('error', () => {});
    app.on('error', () => {});
  }
}
