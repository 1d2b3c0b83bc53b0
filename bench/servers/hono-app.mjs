// The Hono hello world of the hono scenario: one app module, served by @hono/node-server (hono-http.mjs) and by nodefpm (hono-nodefpm.mjs).
import { Hono } from 'hono';

/** Hono's own hello world (hono.dev, "Getting started"), answering "Hello, world!\n". */
export function helloApp() {
  const app = new Hono();
  app.get('/', (c) => c.text('Hello, world!\n'));
  return app;
}
