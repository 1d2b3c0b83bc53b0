// The null FastCGI server: the floor for any Node implementation. It parses only the 8-byte record headers and answers canned bytes.
//
//   node bench/servers/null.mjs /tmp/app.sock              canned hello world once a request's STDIN ends
//   node bench/servers/null.mjs /tmp/app.sock --down=1g    streams that many body bytes instead
//
// Record contents and padding are skipped unread: no params decoding, no body handling, no objects per
// request. Whatever a real server does beyond this is what the benchmark ratios measure. Connections
// are never closed by this side (FCGI_KEEP_CONN is assumed, as nginx with fastcgi_keep_conn sends it).
import net from 'node:net';
import { rmSync } from 'node:fs';
import { ready, serverArgs } from './common.mjs';

const STDOUT = 6;
const STDIN = 5;
const END_REQUEST = 3;
const HELLO_HEAD = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n';
const HELLO_BODY = 'Hello, world!\n';

const { socketPath, flags } = serverArgs();
const downBytes = flags.down === undefined ? 0 : parseSize(flags.down);

function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(text);
  if (match === null) throw new Error(`bad size ${text}`);
  return Math.round(Number(match[1]) * 1024 ** ' kmg'.indexOf(match[2].toLowerCase() || ' '));
}

function record(type, id, content) {
  const padding = -content.length & 7;
  const out = Buffer.alloc(8 + content.length + padding);
  out[0] = 1;
  out[1] = type;
  out.writeUInt16BE(id, 2);
  out.writeUInt16BE(content.length, 4);
  out[6] = padding;
  content.copy(out, 8);
  return out;
}

function endRecords(id) {
  // The empty STDOUT record, then END_REQUEST with app status 0 and REQUEST_COMPLETE.
  return Buffer.concat([record(STDOUT, id, Buffer.alloc(0)), record(END_REQUEST, id, Buffer.alloc(8))]);
}

/** Per request id: the bytes of the whole answer (hello) or its parts (download). Built once. */
const answers = new Map();

function answerFor(id) {
  let answer = answers.get(id);
  if (answer !== undefined) return answer;
  if (downBytes === 0) {
    answer = Buffer.concat([record(STDOUT, id, Buffer.from(HELLO_HEAD + HELLO_BODY, 'latin1')), endRecords(id)]);
  } else {
    // A download is the head record, full 65528-byte records (64 KiB with their header, no padding)
    // written from one buffer again and again, a last partial record, and the end records.
    const per = 65528;
    const full = Math.floor(downBytes / per);
    const last = downBytes % per;
    const head = `Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${downBytes}\r\n\r\n`;
    answer = {
      head: record(STDOUT, id, Buffer.from(head, 'latin1')),
      block: record(STDOUT, id, Buffer.alloc(per, 'x')),
      full,
      tail: Buffer.concat([last > 0 ? record(STDOUT, id, Buffer.alloc(last, 'x')) : Buffer.alloc(0), endRecords(id)]),
    };
  }
  answers.set(id, answer);
  return answer;
}

/** Streams a download with backpressure: stop at write() === false, go on at 'drain'. */
function download(socket, id) {
  const { head, block, full, tail } = answerFor(id);
  socket.write(head);
  let left = full;
  const pump = () => {
    while (left > 0) {
      left--;
      if (!socket.write(block)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.write(tail);
  };
  pump();
}

function respond(socket, id) {
  if (downBytes === 0) socket.write(answerFor(id));
  else download(socket, id);
}

function serve(socket) {
  const header = Buffer.alloc(8);
  let headerFill = 0;
  // Content plus padding of the current record still to skip.
  let skip = 0;
  const onHeader = (buffer, at) => {
    const type = buffer[at + 1];
    const contentLength = (buffer[at + 4] << 8) | buffer[at + 5];
    skip = contentLength + buffer[at + 6];
    if (type === STDIN && contentLength === 0) respond(socket, (buffer[at + 2] << 8) | buffer[at + 3]);
  };
  socket.on('data', (chunk) => {
    const end = chunk.length;
    let offset = Math.min(skip, end);
    skip -= offset;
    while (offset < end) {
      if (headerFill === 0 && end - offset >= 8) {
        onHeader(chunk, offset);
        offset += 8;
      } else {
        const take = Math.min(8 - headerFill, end - offset);
        chunk.copy(header, headerFill, offset, offset + take);
        headerFill += take;
        offset += take;
        if (headerFill < 8) break;
        headerFill = 0;
        onHeader(header, 0);
      }
      const skipped = Math.min(skip, end - offset);
      skip -= skipped;
      offset += skipped;
    }
  });
  socket.on('error', () => socket.destroy());
}

rmSync(socketPath, { force: true });
net.createServer({ noDelay: true }, serve).listen(socketPath, ready);
