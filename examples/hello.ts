// The native hello world as an app module: serve it with ./bin/nodefpm examples/hello.ts --listen 127.0.0.1:9000 (npm start).

import type { Handler } from '../src/index.js';

/** Tells nodefpm which API the default export implements (a native handler and a Node listener look alike). */
export const api = 'native';

const hello: Handler = (req, res) => {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`Hello from ${req.method} ${req.url}\n`);
};

export default hello;
