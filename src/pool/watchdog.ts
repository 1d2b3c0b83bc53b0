// A worker's watchdog thread: logs slow requests with the main thread's JavaScript stack, and kills the worker when its event loop stays blocked.

import { Buffer } from 'node:buffer';
import { writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { ProtocolStatus, RecordType, encodeEndRequest, encodeStream } from '../protocol/index.js';
import { WATCHDOG_FD, type WatchdogEvent } from './messages.js';
import { SlotTable, type SlotView } from './watchdog-slots.js';

/**
 * Why a thread: a worker whose main thread runs a tight loop answers no timer, no IPC and no signal
 * handler, so only something outside that thread can notice, and only something inside the process
 * can see its JavaScript stack. A worker_thread is both: its own event loop keeps turning, and
 * node:inspector's Session.connectToMainThread() can pause the main thread's isolate (V8 serves the
 * request from an interrupt, between two JavaScript statements, even in a busy loop) and read its
 * call frames. Checked on Node 20: Debugger.pause answers within milliseconds of a blocked loop; on
 * an idle loop the pause would wait for the next JavaScript to run, so it is only asked for when the
 * heartbeat says the loop is blocked.
 */
export interface WatchdogConfig {
  buffer: SharedArrayBuffer;
  /** Blocked longer than this (ms): kill the worker. 0: never. */
  requestTimeout: number;
  /** Running longer than this (ms): log the request. 0: never. */
  slowlogTimeout: number;
  /** How often the main thread ticks (ms). */
  tickInterval: number;
}

/** How long to wait for the main thread to pause. A thread blocked in native code (a sync read of a hung disk) never does. */
const PAUSE_WAIT_MS = 1000;

interface CallFrame {
  functionName: string;
  /** Empty in current V8: the script's URL comes from Debugger.scriptParsed, by scriptId. */
  url: string;
  location: { scriptId: string; lineNumber: number; columnNumber: number };
}

function formatFrames(frames: readonly CallFrame[], urls: ReadonlyMap<string, string>): string {
  return frames
    .map((frame) => {
      const url = frame.url !== '' ? frame.url : (urls.get(frame.location.scriptId) ?? '<unknown>');
      const name = frame.functionName === '' ? '<anonymous>' : frame.functionName;
      return `    at ${name} (${url}:${frame.location.lineNumber + 1}:${frame.location.columnNumber + 1})`;
    })
    .join('\n');
}

interface Paused {
  stack: string | null;
  note: string | null;
  /** Lets the main thread go on (slow log); never called before a kill, so the main thread writes nothing more. */
  resume(): void;
}

/** Pauses the main thread and reads its stack; resolves with the stack or why there is none. */
function pauseMainThread(): Promise<Paused> {
  let session: Session;
  try {
    session = new Session();
    session.connectToMainThread();
  } catch (error) {
    return Promise.resolve({ stack: null, note: `the inspector is not available: ${(error as Error).message}`, resume() {} });
  }
  const release = (): void => {
    session.post('Debugger.disable', () => session.disconnect());
  };
  // Debugger.enable announces every script already loaded: that is where the frames' file names come from.
  const urls = new Map<string, string>();
  session.on('Debugger.scriptParsed', (message: { params: { scriptId: string; url: string } }) => {
    urls.set(message.params.scriptId, message.params.url);
  });
  return new Promise((resolve) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      // Disabling the debugger also cancels the pause still pending.
      release();
      resolve({ stack: null, note: `the main thread did not pause within ${PAUSE_WAIT_MS} ms: it is blocked outside JavaScript (a native call)`, resume() {} });
    }, PAUSE_WAIT_MS);
    session.on('Debugger.paused', (message: { params: { callFrames: CallFrame[] } }) => {
      if (settled) {
        // A pause that came too late: let it go.
        session.post('Debugger.resume', release);
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({
        stack: formatFrames(message.params.callFrames, urls),
        note: null,
        resume: () => session.post('Debugger.resume', release),
      });
    });
    session.post('Debugger.enable', (error) => {
      if (error !== null && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve({ stack: null, note: `Debugger.enable failed: ${error.message}`, resume() {} });
        return;
      }
      session.post('Debugger.pause');
    });
  });
}

function emit(event: WatchdogEvent): void {
  try {
    writeSync(WATCHDOG_FD, `${JSON.stringify(event)}\n`);
  } catch {
    // No master listening (a worker started by hand): nothing to tell.
  }
}

/**
 * Answers a request of the blocked worker with 504, written straight to its socket from this thread.
 * Only when nothing of the response may have been written yet and no other request shares the
 * connection (so no half-written record of another response sits in the main thread's queue): then
 * these bytes are the whole answer, and the main thread, paused, can add nothing after them.
 */
function answer504(slot: SlotView, blocked: number): boolean {
  const body =
    `504 Gateway Timeout: the nodefpm worker serving this request (pid ${process.pid}) had its event loop blocked ` +
    `for ${(blocked / 1000).toFixed(1)} s, longer than --request-timeout, and was stopped.\n`;
  const head = `Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  const bytes = Buffer.concat([
    encodeStream(RecordType.Stdout, slot.requestId, Buffer.from(head + body, 'latin1')),
    encodeEndRequest(slot.requestId, 1, ProtocolStatus.RequestComplete),
  ]);
  try {
    // The socket is non-blocking: a small write goes whole into an empty send buffer, or fails (EAGAIN) and the connection just closes.
    return writeSync(slot.fd, bytes) === bytes.length;
  } catch {
    return false;
  }
}

export function runWatchdog(config: WatchdogConfig): void {
  const table = new SlotTable(config.buffer);
  const limits = [config.requestTimeout, config.slowlogTimeout].filter((value) => value > 0);
  const every = Math.max(20, Math.min(1000, Math.floor(Math.min(...limits) / 5)));
  // The loop counts as blocked when the main thread missed a couple of its ticks.
  const blockedAfter = config.tickInterval * 2 + 50;
  let busy = false;

  const check = async (): Promise<void> => {
    const now = Date.now();
    const lastTick = table.lastTick();
    if (lastTick === 0) return;
    const blocked = now - lastTick;
    const slots = table.read();

    if (config.requestTimeout > 0 && blocked >= config.requestTimeout) {
      const paused = blocked >= blockedAfter ? await pauseMainThread() : { stack: null, note: null, resume() {} };
      // The main thread stays paused from here on: nothing it would write can follow our answers.
      const current = table.read();
      const perConnection = new Map<number, number>();
      for (const slot of current) perConnection.set(slot.fd, (perConnection.get(slot.fd) ?? 0) + 1);
      const requests = current.map((slot) => ({
        method: slot.method,
        uri: slot.uri,
        duration: now - slot.start,
        answered: !slot.outputStarted && slot.fd >= 0 && perConnection.get(slot.fd) === 1 && answer504(slot, blocked),
      }));
      emit({ type: 'timeout', pid: process.pid, blocked, requests, stack: paused.stack, note: paused.note });
      process.kill(process.pid, 'SIGKILL');
      return;
    }

    if (config.slowlogTimeout > 0) {
      const slow = slots.filter((slot) => !slot.slowLogged && now - slot.start >= config.slowlogTimeout);
      if (slow.length === 0) return;
      for (const slot of slow) table.markSlowLogged(slot.index);
      let stack: string | null = null;
      let note: string | null = 'the event loop was not blocked: the request was waiting (for I/O, a timer or a promise)';
      if (blocked >= blockedAfter) {
        const paused = await pauseMainThread();
        stack = paused.stack;
        note = paused.note;
        paused.resume();
      }
      for (const slot of slow) {
        emit({ type: 'slow', pid: process.pid, method: slot.method, uri: slot.uri, duration: Date.now() - slot.start, stack, note });
      }
    }
  };

  setInterval(() => {
    if (busy) return;
    busy = true;
    check().finally(() => {
      busy = false;
    });
  }, every);
}
