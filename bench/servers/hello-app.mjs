// The native hello world as an app module (a default-export handler), for the servers that load it the way the command does: the pool's workers.
export const api = 'native';

export default (req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('Hello, world!\n');
};
