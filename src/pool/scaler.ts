// The pool's sizing rules, as pure functions: spare capacity, dynamic scaling, crash back-off, the emergency-restart window.

/**
 * A worker's load, 0 to 1: the larger of its event-loop utilisation (the share of time its one
 * JavaScript thread was busy, which is what runs out first for CPU-bound work) and its requests in
 * progress over the concurrency target (what runs out first when requests wait on something slow and
 * pile up while the loop is idle).
 */
export function workerLoad(elu: number, activeRequests: number, concurrency: number): number {
  return Math.min(1, Math.max(0, elu, activeRequests / concurrency));
}

/** Spare capacity in workers: a worker at load 0.25 has 0.75 of a worker to spare; one still starting counts whole. */
export function spareCapacity(loads: readonly number[], starting: number): number {
  let spare = starting;
  for (const load of loads) spare += 1 - load;
  return spare;
}

/**
 * Capacity differences this small are noise, not load: an idle worker's own timers (heartbeat,
 * watchdog tick) keep its event loop a fraction of a percent busy, which must not make one idle worker
 * count as less than one worker of spare capacity.
 */
export const SPARE_SLACK = 0.05;

export interface DynamicInput {
  /** Loads of the workers that serve (ready, not draining). */
  loads: readonly number[];
  /** Workers started but not ready yet. */
  starting: number;
  /** The most workers (--workers). */
  max: number;
  minSpare: number;
  maxSpare: number;
  /** How many workers may be started this round (doubles while more are needed, as php-fpm's spawn rate). */
  spawnRate: number;
}

export interface DynamicDecision {
  spare: number;
  /** Workers to start now. */
  spawn: number;
  /** Stop one idle worker. */
  retire: boolean;
  /** More capacity was wanted but the pool is at max. */
  atMax: boolean;
}

/**
 * One round of php-fpm's dynamic maintenance, in capacity instead of idle processes: below minSpare,
 * start workers (at most spawnRate, within max); above maxSpare, stop one worker whose removal keeps
 * the spare at least minSpare. Run once a second.
 */
export function dynamicDecision(input: DynamicInput): DynamicDecision {
  const total = input.loads.length + input.starting;
  const spare = spareCapacity(input.loads, input.starting);
  if (spare < input.minSpare - SPARE_SLACK) {
    const wanted = Math.ceil(input.minSpare - spare);
    const room = input.max - total;
    const spawn = Math.max(0, Math.min(wanted, room, input.spawnRate));
    return { spare, spawn, retire: false, atMax: room <= 0 };
  }
  // Removing the most idle worker takes away up to one worker of spare.
  const mostIdle = input.loads.length === 0 ? 0 : 1 - Math.min(...input.loads);
  const retire = spare > input.maxSpare + SPARE_SLACK && input.loads.length > 1 && spare - mostIdle >= input.minSpare - SPARE_SLACK;
  return { spare, spawn: 0, retire, atMax: false };
}

/** Delay before restarting a slot after its `consecutive`-th crash in a row: at once the first time, then 0.1 s doubling to 10 s. */
export function crashBackoff(consecutive: number): number {
  if (consecutive <= 1) return 0;
  return Math.min(10_000, 100 * 2 ** (consecutive - 2));
}

/** php-fpm's emergency_restart_threshold / emergency_restart_interval: `threshold` crashes within `interval` ms. */
export class CrashWindow {
  readonly #threshold: number;
  readonly #interval: number;
  #times: number[] = [];

  constructor(threshold: number, interval: number) {
    this.#threshold = threshold;
    this.#interval = interval;
  }

  /** Records a crash at `now`; true when it completes the threshold (the window is then cleared). */
  record(now: number): boolean {
    if (this.#threshold <= 0) return false;
    this.#times = this.#times.filter((time) => now - time < this.#interval);
    this.#times.push(now);
    if (this.#times.length < this.#threshold) return false;
    this.#times = [];
    return true;
  }
}
