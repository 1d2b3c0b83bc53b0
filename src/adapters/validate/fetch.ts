// The validator's checks that only a fetch handler can break: a Response returned, and its body not used before the server sends it.

import type { FcgiBindings, FetchFunction, FetchHandler } from '../fetch/handler.js';
import { isRecordOnly, NativeResponse } from '../fetch/response.js';
import type { ValidateCode } from './checks.js';
import { monitorOf, ValidationError } from './exchange.js';

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined (a missing return?)';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'no constructor'})`;
  return `a ${typeof value}`;
}

/**
 * Wraps a fetch handler with the checks only it can break. Use it inside validateExchangeHandler
 * (whose monitor reports what it finds, per its mode); on its own, a broken rule is thrown, and the
 * adapter answers 500.
 */
export function validateFetchHandler(handler: FetchHandler): FetchFunction {
  const call: FetchFunction = typeof handler === 'function' ? handler : (request, env) => handler.fetch(request, env);
  /** Responses already handed to the server: a body can be sent once. */
  const returned = new WeakSet<object>();

  return (request: Request, env: FcgiBindings): Response | Promise<Response> => {
    const monitor = monitorOf(env?.exchange);
    const exchange = env?.exchange;

    /** Reports a broken rule; returns what to hand the adapter instead of the broken value, if anything. */
    const broken = (code: ValidateCode, message: string, value: unknown): Response => {
      if (monitor === undefined) {
        throw new ValidationError(code, message, 'app', exchange?.id ?? 0, `${request.method} ${exchange?.param('REQUEST_URI') ?? ''}`);
      }
      if (monitor.violation(code, message, 'app')) {
        // Answered by the validator: give the adapter something harmless to write into the closed view.
        return new NativeResponse(null, { status: 500 });
      }
      return value as Response;
    };

    const check = (value: unknown): Response => {
      if (!(value instanceof NativeResponse)) {
        return broken(
          'NODEFPM_VALIDATE_NOT_A_RESPONSE',
          `the fetch handler returned ${describeValue(value)}, not a Response: return (or resolve to) a Response, e.g. new Response(body, { status, headers })`,
          value,
        );
      }
      if (returned.has(value)) {
        return broken(
          'NODEFPM_VALIDATE_BODY_USED',
          'the fetch handler returned a Response object it had returned before: a body can be sent once, so make a new Response per request (or return response.clone())',
          value,
        );
      }
      // A record-only lightweight Response cannot be locked; asking for .body would build the real one.
      const locked = !isRecordOnly(value) && value.body !== null && value.body.locked;
      if (value.bodyUsed || locked) {
        return broken(
          'NODEFPM_VALIDATE_BODY_USED',
          `the fetch handler returned a Response whose body was already ${locked ? 'locked by a reader' : 'read'}: the server must be its one reader; clone() it before reading, or return a new Response`,
          value,
        );
      }
      returned.add(value);
      return value;
    };

    const result = call(request, env);
    if (typeof (result as { then?: unknown } | null)?.then === 'function') return (result as Promise<unknown>).then(check);
    return check(result);
  };
}
