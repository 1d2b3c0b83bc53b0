// The memory a worker's main thread shares with its watchdog thread: a heartbeat time and one slot per request in progress.

import { Buffer } from 'node:buffer';

/**
 * The main thread writes; the watchdog only reads (and marks slots it has logged). Everything the
 * watchdog needs while the main thread is blocked must be here already, because a blocked thread
 * answers nothing: when each request began, its method and URI, its connection's file descriptor and
 * request id, and whether any of its output may have reached the socket.
 */
const CONTROL_BYTES = 16;
/** Int32 fields of a slot. */
const STATE = 0; // 0 free, 1 in use
const SEQ = 1; // bumped on every acquire: a reader that sees it change mid-read retries
const FD = 2; // the connection's file descriptor, -1 when unknown
const REQUEST_ID = 3;
const OUTPUT = 4; // 1 once the handler wrote anything (the watchdog must then not answer for it)
const TEXT_LENGTH = 5;
const SLOW_LOGGED = 6; // set by the watchdog
const INT_FIELDS = 8;
const TEXT_BYTES = 240;
/** Bytes per slot: the Int32 fields, a Float64 start time, the text. */
const SLOT_BYTES = INT_FIELDS * 4 + 8 + TEXT_BYTES;

export interface SlotView {
  index: number;
  seq: number;
  fd: number;
  requestId: number;
  outputStarted: boolean;
  slowLogged: boolean;
  /** When the request began (epoch ms). */
  start: number;
  method: string;
  uri: string;
}

export class SlotTable {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly #control: BigInt64Array;
  readonly #ints: Int32Array;
  readonly #starts: Float64Array;
  readonly #bytes: Buffer;
  readonly #free: number[] = [];

  /** A new table (main thread), or a view of an existing one (the watchdog gets the buffer). */
  constructor(capacityOrBuffer: number | SharedArrayBuffer) {
    if (typeof capacityOrBuffer === 'number') {
      this.capacity = capacityOrBuffer;
      this.buffer = new SharedArrayBuffer(CONTROL_BYTES + capacityOrBuffer * SLOT_BYTES);
      for (let index = capacityOrBuffer - 1; index >= 0; index--) this.#free.push(index);
    } else {
      this.buffer = capacityOrBuffer;
      this.capacity = (capacityOrBuffer.byteLength - CONTROL_BYTES) / SLOT_BYTES;
    }
    this.#control = new BigInt64Array(this.buffer, 0, 2);
    this.#ints = new Int32Array(this.buffer);
    this.#starts = new Float64Array(this.buffer);
    this.#bytes = Buffer.from(this.buffer);
  }

  #intBase(index: number): number {
    return (CONTROL_BYTES + index * SLOT_BYTES) / 4;
  }

  // ---- main thread ----

  /** Called by a timer of the main thread: as long as it runs, the event loop is turning. */
  tick(now = Date.now()): void {
    Atomics.store(this.#control, 0, BigInt(Math.round(now)));
  }

  /** Takes a slot for a request; -1 when the table is full (the request is then not watched). */
  acquire(fd: number, requestId: number, start: number, method: string, uri: string): number {
    const index = this.#free.pop();
    if (index === undefined) return -1;
    const base = this.#intBase(index);
    const ints = this.#ints;
    ints[base + FD] = fd;
    ints[base + REQUEST_ID] = requestId;
    ints[base + OUTPUT] = 0;
    ints[base + SLOW_LOGGED] = 0;
    this.#starts[(CONTROL_BYTES + index * SLOT_BYTES + INT_FIELDS * 4) / 8] = start;
    const textAt = CONTROL_BYTES + index * SLOT_BYTES + INT_FIELDS * 4 + 8;
    ints[base + TEXT_LENGTH] = this.#bytes.write(`${method} ${uri}`, textAt, TEXT_BYTES, 'utf8');
    Atomics.add(ints, base + SEQ, 1);
    // Published last: a reader that sees the slot in use sees the fields above.
    Atomics.store(ints, base + STATE, 1);
    return index;
  }

  markOutput(index: number): void {
    Atomics.store(this.#ints, this.#intBase(index) + OUTPUT, 1);
  }

  release(index: number): void {
    Atomics.store(this.#ints, this.#intBase(index) + STATE, 0);
    this.#free.push(index);
  }

  // ---- watchdog thread ----

  /** The main thread's last tick (epoch ms). */
  lastTick(): number {
    return Number(Atomics.load(this.#control, 0));
  }

  markSlowLogged(index: number): void {
    Atomics.store(this.#ints, this.#intBase(index) + SLOW_LOGGED, 1);
  }

  /** The slots in use, read consistently (a slot reused while it was read is skipped). */
  read(): SlotView[] {
    const out: SlotView[] = [];
    const ints = this.#ints;
    for (let index = 0; index < this.capacity; index++) {
      const base = this.#intBase(index);
      if (Atomics.load(ints, base + STATE) !== 1) continue;
      const seq = Atomics.load(ints, base + SEQ);
      const textAt = CONTROL_BYTES + index * SLOT_BYTES + INT_FIELDS * 4 + 8;
      const text = this.#bytes.toString('utf8', textAt, textAt + Atomics.load(ints, base + TEXT_LENGTH));
      const view: SlotView = {
        index,
        seq,
        fd: Atomics.load(ints, base + FD),
        requestId: Atomics.load(ints, base + REQUEST_ID),
        outputStarted: Atomics.load(ints, base + OUTPUT) === 1,
        slowLogged: Atomics.load(ints, base + SLOW_LOGGED) === 1,
        start: this.#starts[(CONTROL_BYTES + index * SLOT_BYTES + INT_FIELDS * 4) / 8]!,
        method: text.slice(0, Math.max(0, text.indexOf(' '))),
        uri: text.slice(text.indexOf(' ') + 1),
      };
      if (Atomics.load(ints, base + SEQ) !== seq || Atomics.load(ints, base + STATE) !== 1) continue;
      out.push(view);
    }
    return out;
  }
}
