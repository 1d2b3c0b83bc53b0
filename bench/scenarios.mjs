// The benchmark's servers and scenarios: what runs, how it is loaded, what it is compared with and the targets. New scenarios are added here.
//
// A scenario lists runs; the first run is the reference that ratios are computed against (or the
// one named by `reference`). Each run names a server from `servers`, and may change the load (an
// HTTP server gets `protocol: 'http'`). A scenario's kind says how it is measured:
//   load      warm up for cfg.warmup seconds, then load for cfg.duration seconds (the default)
//   transfer  one request to warm up, then `requests` big requests one after the other
//   idle      warm up, then hold cfg.idleConnections kept-alive connections idle and weigh them
// Targets compare one run's metric with the reference's (ratioAtLeast, ratioAtMost) or with a
// fixed bound (atLeast, atMost, in the metric's own unit: bytes for memory).
//
// The framework scenarios (express, hono) compare one app on Node's own http server, loaded over
// HTTP/1.1 keep-alive, with the same app over nodefpm, loaded over FastCGI: each server gets the load
// generator's mode for its protocol, with the same connections.
//
// The listener scenario is a bare Node request listener (no framework) on Node's http and on
// nodefpm's Node adapter: what the adapter costs where no framework hides it.
//
// The workers scenario is the hello world on 1, 2 and 4 pool workers against the same handler in one
// process; the front scenario is HTTP through the built-in front (the app in the same process, and
// in 2 workers) against the same handler on Node's own http server.

const MiB = 1024 * 1024;

/**
 * How to start each server. `script` is run with node (relative to bench/), given the address to
 * listen on and then `args`; `listen` is 'unix' (a socket path in a temporary folder, the default)
 * or 'tcp' (127.0.0.1:0; the server prints the bound address on its ready line).
 */
export const servers = {
  null: { script: 'servers/null.mjs' },
  'null-down': { script: 'servers/null.mjs', args: (cfg) => [`--down=${cfg.bigBytes}`] },
  hello: { script: 'servers/hello.mjs' },
  post: { script: 'servers/post.mjs' },
  'post-consume': { script: 'servers/post.mjs', args: () => ['--read=consume'] },
  'post-untuned': { script: 'servers/post.mjs', args: () => ['--tune-malloc=false'] },
  down: { script: 'servers/down.mjs', args: (cfg) => [`--bytes=${cfg.bigBytes}`] },
  up: { script: 'servers/up.mjs' },
  // The framework scenarios. Node's http listens on a Unix socket like nodefpm, so that both servers
  // pay for the same transport and the ratio is about protocol and server; the *-tcp runs show what a
  // TCP port on the loopback (Node's usual deployment) costs Node's http on top.
  'express-http': { script: 'servers/express-http.mjs' },
  'express-http-tcp': { script: 'servers/express-http.mjs', listen: 'tcp' },
  'express-nodefpm': { script: 'servers/express-nodefpm.mjs' },
  'listener-nodefpm': { script: 'servers/listener-nodefpm.mjs' },
  'hono-http': { script: 'servers/hono-http.mjs' },
  'hono-http-tcp': { script: 'servers/hono-http.mjs', listen: 'tcp' },
  'hono-nodefpm': { script: 'servers/hono-nodefpm.mjs' },
  pool1: { script: 'servers/pool.mjs', args: () => ['--workers=1'] },
  pool2: { script: 'servers/pool.mjs', args: () => ['--workers=2'] },
  pool4: { script: 'servers/pool.mjs', args: () => ['--workers=4'] },
  'http-hello': { script: 'servers/http-hello.mjs' },
  'http-front': { script: 'servers/http-front.mjs' },
  'http-front-pool2': { script: 'servers/http-front.mjs', args: () => ['--workers=2'] },
};

const sizeText = (bytes) => (bytes >= 1024 * MiB ? `${bytes / (1024 * MiB)} GiB` : `${bytes / MiB} MiB`);

export const scenarios = [
  {
    id: 'hello',
    title: () => 'hello world, GET (32 conns)',
    load: () => ({ connections: 32 }),
    runs: [
      { label: 'null server', server: 'null' },
      { label: 'nodefpm', server: 'hello' },
    ],
    targets: [{ run: 'nodefpm', metric: 'rps', ratioAtLeast: 0.6 }],
  },
  {
    id: 'express',
    title: () => 'Express 5 hello world, GET (32 conns)',
    load: () => ({ connections: 32 }),
    runs: [
      { label: 'node:http', server: 'express-http', load: { protocol: 'http' } },
      { label: 'nodefpm', server: 'express-nodefpm' },
      { label: 'node:http, TCP', server: 'express-http-tcp', load: { protocol: 'http' } },
    ],
    // Issue 4: nodefpm at least as fast as Node's own http server, against the same transport.
    targets: [{ run: 'nodefpm', metric: 'rps', ratioAtLeast: 1 }],
  },
  {
    id: 'listener',
    title: () => 'Node request listener, no framework, GET (32 conns)',
    // No target: issue 4's targets are the frameworks'. This row shows the adapter's own cost.
    load: () => ({ connections: 32 }),
    runs: [
      { label: 'node:http', server: 'http-hello', load: { protocol: 'http' } },
      { label: 'nodefpm', server: 'listener-nodefpm' },
    ],
  },
  {
    id: 'hono',
    title: () => 'Hono hello world, GET (32 conns)',
    load: () => ({ connections: 32 }),
    runs: [
      { label: 'node:http', server: 'hono-http', load: { protocol: 'http' } },
      { label: 'nodefpm', server: 'hono-nodefpm' },
      { label: 'node:http, TCP', server: 'hono-http-tcp', load: { protocol: 'http' } },
    ],
    targets: [{ run: 'nodefpm', metric: 'rps', ratioAtLeast: 1 }],
  },
  {
    id: 'workers',
    title: () => 'pool workers, hello world GET (32 conns)',
    load: () => ({ connections: 32 }),
    runs: [
      { label: 'one process', server: 'hello' },
      { label: '1 worker', server: 'pool1' },
      { label: '2 workers', server: 'pool2' },
      { label: '4 workers', server: 'pool4' },
    ],
    // No target: what workers add depends on the cores left once the load generator has one. The
    // master only accepts nothing (workers accept on the shared socket), so 1 worker ~ one process.
  },
  {
    id: 'front',
    title: () => 'HTTP front, hello world GET over HTTP/1.1 (32 conns)',
    load: () => ({ connections: 32, protocol: 'http' }),
    runs: [
      { label: 'node:http', server: 'http-hello' },
      { label: 'front + app, 1 process', server: 'http-front' },
      { label: 'front + 2 workers', server: 'http-front-pool2' },
    ],
    // No target: the front parses HTTP, then the app parses FastCGI, where Node's http does the
    // first only. The ratio is the price of trying an app without a web server.
  },
  {
    id: 'post64k',
    title: () => 'POST 64 KiB, body read (16 conns)',
    load: () => ({ connections: 16, body: 64 * 1024 }),
    // Two ways to read the body: `for await`, whose chunks the handler owns (each read then needs a
    // new buffer), and body.consume(), which lends each chunk from the reused read buffer. The third
    // run is the first with tuneMalloc off, to show what glibc's heap trimming costs (no target).
    runs: [
      { label: 'null server', server: 'null' },
      { label: 'nodefpm', server: 'post' },
      { label: 'nodefpm, consume()', server: 'post-consume' },
      { label: 'nodefpm, tuneMalloc: false', server: 'post-untuned' },
    ],
    targets: [
      { run: 'nodefpm', metric: 'mbps', ratioAtLeast: 0.8 },
      { run: 'nodefpm, consume()', metric: 'mbps', ratioAtLeast: 0.8 },
    ],
  },
  {
    id: 'down',
    kind: 'transfer',
    title: (cfg) => `${sizeText(cfg.bigBytes)} down (1 conn)`,
    load: (cfg) => ({ connections: 1, requests: cfg.bigRequests, expectBody: cfg.bigBytes }),
    runs: [
      { label: 'null server', server: 'null-down' },
      { label: 'nodefpm', server: 'down' },
    ],
    // Issue 2: a 1 GiB download grows RSS by under 64 MiB.
    targets: [{ run: 'nodefpm', metric: 'rssGrowth', atMost: 64 * MiB }],
  },
  {
    id: 'up',
    kind: 'transfer',
    title: (cfg) => `${sizeText(cfg.bigBytes)} up (1 conn)`,
    load: (cfg) => ({ connections: 1, requests: cfg.bigRequests, body: cfg.bigBytes }),
    runs: [
      { label: 'null server', server: 'null' },
      { label: 'nodefpm', server: 'up' },
    ],
    targets: [{ run: 'nodefpm', metric: 'rssGrowth', atMost: 64 * MiB }],
  },
  {
    id: 'idle',
    kind: 'idle',
    title: (cfg) => `idle kept-alive connections (${cfg.idleConnections})`,
    load: (cfg) => ({ connections: cfg.idleConnections }),
    runs: [
      { label: 'null server', server: 'null' },
      { label: 'nodefpm', server: 'hello' },
    ],
    targets: [{ run: 'nodefpm', metric: 'perConnection', ratioAtMost: 1.5 }],
  },
];
