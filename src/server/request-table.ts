// The requests in progress on one connection, by request id: one slot, and a Map only while requests are multiplexed.

/**
 * Most connections carry one request at a time, so the first request in progress sits in a slot and a
 * Map is made only when a second one runs beside it. A Map alone would cost an allocation per request:
 * deleting its only entry makes V8 shrink its table, and the next request's insertion grows it again.
 */
export class RequestTable<T extends { readonly id: number }> {
  #slot: T | null = null;
  /** Requests beside the one in the slot, by id; null until a connection multiplexes. */
  #others: Map<number, T> | null = null;

  get size(): number {
    return (this.#slot === null ? 0 : 1) + (this.#others?.size ?? 0);
  }

  get(id: number): T | undefined {
    const slot = this.#slot;
    if (slot !== null && slot.id === id) return slot;
    return this.#others?.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds `request`, whose id must not be in the table. */
  add(request: T): void {
    if (this.#slot === null) this.#slot = request;
    else (this.#others ??= new Map()).set(request.id, request);
  }

  /** Removes `request` if it is the one held under its id; returns whether it was. */
  remove(request: T): boolean {
    if (this.#slot === request) {
      this.#slot = null;
      return true;
    }
    const others = this.#others;
    if (others === null || others.get(request.id) !== request) return false;
    others.delete(request.id);
    return true;
  }

  /** The requests as an array of their own, so a caller may end (and remove) them while it goes through them. */
  values(): T[] {
    const slot = this.#slot;
    const others = this.#others;
    if (others === null || others.size === 0) return slot === null ? [] : [slot];
    const all = [...others.values()];
    if (slot !== null) all.unshift(slot);
    return all;
  }

  clear(): void {
    this.#slot = null;
    this.#others = null;
  }
}
