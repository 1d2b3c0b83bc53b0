// The http.ServerResponse a Node listener gets: Node's own class, writing HTTP/1.1 to the request's FcgiSocket, which turns it into CGI output.

import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** What the response needs from the socket it writes to. */
export interface ResponseSocket {
  /** True while a write to the socket returned false and no drain came since. */
  readonly needsDrain: boolean;
  /** The response handed its last byte to the socket (its 'prefinish'). */
  responseEnded(): void;
}

/**
 * Makes `res.writableNeedDrain` follow the socket's backpressure. Node's getter reads a flag set when
 * a write returns false that only its HTTP server's socket 'drain' listener clears, so after the
 * first wait it would stay true. Called on a response's first wait only: an accessor on an instance
 * makes V8 treat that object as a slow dictionary, which only responses big enough to wait can afford.
 */
export function followBackpressure(res: ServerResponse, socket: ResponseSocket): void {
  Object.defineProperty(res, 'writableNeedDrain', {
    configurable: true,
    enumerable: true,
    get(): boolean {
      return !res.destroyed && !res.writableEnded && socket.needsDrain;
    },
  });
}

/** One function for every response (no closure per request): the response's socket is the one it was made with. */
function onPrefinish(this: ServerResponse): void {
  (this.socket as unknown as ResponseSocket | null)?.responseEnded();
}

/**
 * Node's ServerResponse, unchanged in everything it serialises: statuses, header validation,
 * Content-Length for bodies given whole to end(), Date, HEAD/204/304 bodies dropped, chunked coding.
 * It is assigned the request's socket at once (ServerResponse.assignSocket, public API), so every
 * write reaches the socket synchronously.
 *
 * Not a subclass (Express swaps the prototype of every response for its own), and nothing internal
 * is touched. Two things Node's HTTP server does from its own socket listeners are done here:
 * - the end of the response is taken from 'prefinish', which ServerResponse emits inside end() once
 *   all output is with the socket, so END_REQUEST leaves in the same write as the last bytes;
 * - the socket emits 'drain' on the response when the web server catches up, and
 *   `writableNeedDrain` is made to follow it (see followBackpressure).
 */
export function createServerResponse(req: IncomingMessage, socket: ResponseSocket & Socket): ServerResponse {
  const res = new ServerResponse(req);
  if (req.httpVersionMajor >= 2) {
    // ServerResponse treats every version other than 1.x as HTTP/1.0 (no Content-Length on end(body),
    // no keep-alive). The web server speaks HTTP/2 or 3 to the client; towards us the rules of 1.1 apply.
    res.useChunkedEncodingByDefault = true;
    res.shouldKeepAlive = true;
  }
  res.on('prefinish', onPrefinish);
  res.assignSocket(socket);
  return res;
}
