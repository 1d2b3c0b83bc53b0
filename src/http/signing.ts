// HMAC-SHA256 signing of short strings (cookie values, session ids) with key rotation and constant-time checks.

import { Buffer } from 'node:buffer';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { NodefpmError } from '../errors.js';

/** The shortest key accepted, in bytes: HMAC-SHA256's block of security is 256 bits, and shorter keys are guessable. */
export const MIN_KEY_BYTES = 32;

/** Length of a signature as written: 32 HMAC-SHA256 bytes in base64url without padding. */
export const SIGNATURE_LENGTH = 43;

const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

/** What `Signer.verify` returns for a good signature: the value, and which key verified it (0 = the signing key). */
export interface Verified {
  value: string;
  /** Index into the keys: 0 is the current key; more means the value was signed with an older key and should be re-signed. */
  keyIndex: number;
}

/**
 * Signs strings as `value.signature` and checks them, with several keys for rotation: the first key
 * signs, every key verifies. To rotate, put the new key first and keep the old one after it until
 * everything signed with it has expired.
 *
 * A signature is HMAC-SHA256 over the context (when given), a NUL, and the value, in base64url
 * (43 characters). The context binds a signature to its use — res.setCookie and req.signedCookie use
 * the cookie name — so a value signed for one cookie is not accepted as another. Comparison is
 * constant-time (crypto.timingSafeEqual).
 *
 * Keys shorter than 32 bytes (UTF-8 for strings) are refused with NODEFPM_INVALID_OPTION rather than
 * warned about: a short key signs forgeable cookies, and a warning in a log is easy to miss. Make
 * one with `crypto.randomBytes(32).toString('base64url')`.
 */
export class Signer {
  readonly #keys: readonly Buffer[];

  /** @throws NodefpmError NODEFPM_INVALID_OPTION when there is no key or a key is shorter than 32 bytes. */
  constructor(keys: readonly (string | Uint8Array)[]) {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new NodefpmError('NODEFPM_INVALID_OPTION', 'option keys must be a non-empty array of signing keys (the first one signs)');
    }
    this.#keys = keys.map((key, index) => {
      if (typeof key !== 'string' && !(key instanceof Uint8Array)) {
        throw new NodefpmError('NODEFPM_INVALID_OPTION', `option keys: key ${index} is not a string or Uint8Array`);
      }
      // A copy, so that a caller who later zeroes or reuses its buffer does not change our key.
      const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
      if (bytes.length < MIN_KEY_BYTES) {
        throw new NodefpmError(
          'NODEFPM_INVALID_OPTION',
          `option keys: key ${index} has ${bytes.length} bytes; signing keys need at least ${MIN_KEY_BYTES} ` +
            "(make one with crypto.randomBytes(32).toString('base64url'))",
        );
      }
      return bytes;
    });
  }

  /** How many keys verify (the first of them signs). */
  get keyCount(): number {
    return this.#keys.length;
  }

  /** The signature alone (43 base64url characters) for `value`, with the signing key. */
  signature(value: string, context?: string): string {
    return this.#mac(this.#keys[0]!, value, context);
  }

  /** `value.signature`, signed with the first key. `context` (e.g. a cookie name) must be given again to unsign. */
  sign(value: string, context?: string): string {
    return `${value}.${this.#mac(this.#keys[0]!, value, context)}`;
  }

  /**
   * The value of a `value.signature` string when some key's signature matches, else false (no dot,
   * a malformed signature, tampered value, a key that is not ours, or another context).
   */
  unsign(signed: string, context?: string): string | false {
    const verified = this.verify(signed, context);
    return verified === false ? false : verified.value;
  }

  /** As unsign(), and says which key matched, so that values signed with an old key can be re-signed. */
  verify(signed: string, context?: string): Verified | false {
    if (typeof signed !== 'string') return false;
    const dot = signed.lastIndexOf('.');
    if (dot === -1) return false;
    const given = signed.slice(dot + 1);
    if (!SIGNATURE.test(given)) return false;
    const value = signed.slice(0, dot);
    const givenBytes = Buffer.from(given, 'latin1');
    let match = -1;
    // Every key is tried even after a match, so the time taken does not say which key signed.
    for (let index = 0; index < this.#keys.length; index++) {
      const expected = Buffer.from(this.#mac(this.#keys[index]!, value, context), 'latin1');
      if (timingSafeEqual(expected, givenBytes) && match === -1) match = index;
    }
    return match === -1 ? false : { value, keyIndex: match };
  }

  #mac(key: Buffer, value: string, context: string | undefined): string {
    if (context !== undefined && context.includes('\0')) {
      // The NUL separates context from value; one inside the context would make two inputs collide.
      throw new NodefpmError('NODEFPM_INVALID_OPTION', 'a signing context must not contain NUL');
    }
    return createHmac('sha256', key)
      .update(context ?? '', 'utf8')
      .update('\0')
      .update(value, 'utf8')
      .digest('base64url');
  }
}

/** True when `text` ends like a signed value (a dot and 43 base64url characters), whatever the key. */
export function looksSigned(text: string): boolean {
  return text.length > SIGNATURE_LENGTH && text[text.length - SIGNATURE_LENGTH - 1] === '.' && SIGNATURE.test(text.slice(-SIGNATURE_LENGTH));
}
