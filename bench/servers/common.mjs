// Shared plumbing of the bench servers: the command line, the readiness line, and a quick exit on signals.

/**
 * `node <server>.mjs <listen> [--name=value ...]`: where to listen (a Unix socket path, or
 * 127.0.0.1:0 for servers the scenarios mark `listen: 'tcp'`) and the flags as an object (values
 * stay strings; a bare --flag is "true").
 */
export function serverArgs() {
  const [socketPath, ...rest] = process.argv.slice(2);
  if (socketPath === undefined) {
    process.stderr.write(`usage: node ${process.argv[1]} <socket-path> [--name=value ...]\n`);
    process.exit(2);
  }
  const flags = {};
  for (const arg of rest) {
    const match = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new Error(`bad argument ${arg}`);
    flags[match[1]] = match[2] ?? 'true';
  }
  return { socketPath, flags };
}

/**
 * Tells the runner the server accepts connections (it waits for this line on stdout). A TCP server
 * passes the address it bound ("127.0.0.1:41234"), which the load generator is then pointed at.
 */
export function ready(address) {
  process.stdout.write(address === undefined ? 'ready\n' : `ready ${address}\n`);
}

// The runner reads peak RSS from /proc before it stops a server, so there is nothing to finish: a
// graceful close would only make every scenario wait for kept-alive connections.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

// Started by bench/run.mjs, our stdin is a pipe from the runner: when it closes, the runner is gone
// (even killed with SIGKILL), and so should we be.
if (process.env.NODEFPM_BENCH_LIFELINE === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

// The idle-connection scenario weighs what connections retain, not the garbage their first request
// left: the runner starts servers with --expose-gc and sends SIGUSR2 before it reads RSS.
if (typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    process.stdout.write('gc\n');
  });
}
