// The Express 5 hello world of the express scenario: one app module, served by Node's http server (express-http.mjs) and by nodefpm (express-nodefpm.mjs).
import express from 'express';

/** Express's own hello world (expressjs.com/en/starter/hello-world), answering "Hello, world!\n". */
export function helloApp() {
  const app = express();
  app.get('/', (req, res) => {
    res.send('Hello, world!\n');
  });
  return app;
}
