// Unit tests of Signer: round trips, key rotation, tampering, contexts, key length checks, signature shape.

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { isNodefpmError } from '../errors.js';
import { MIN_KEY_BYTES, SIGNATURE_LENGTH, Signer, looksSigned } from './signing.js';

const OLD = 'old-key-0123456789abcdef0123456789abcdef';
const NEW = 'new-key-0123456789abcdef0123456789abcdef';

test('sign gives value.signature with a 43-character base64url HMAC-SHA256; unsign gives the value back', () => {
  const signer = new Signer([NEW]);
  const signed = signer.sign('hello world');
  assert.match(signed, /^hello world\.[A-Za-z0-9_-]{43}$/);
  const expected = createHmac('sha256', NEW).update('\0hello world').digest('base64url');
  assert.equal(signed, `hello world.${expected}`, 'the signature is HMAC-SHA256 over context, NUL, value');
  assert.equal(signer.unsign(signed), 'hello world');
  assert.equal(signer.signature('hello world'), expected);
  assert.equal(SIGNATURE_LENGTH, 43);
});

test('values with dots, empty values and non-ASCII values round-trip', () => {
  const signer = new Signer([NEW]);
  for (const value of ['', 'a.b.c', '.', 'ünïcødé ✓', 'x'.repeat(5000)]) {
    assert.equal(signer.unsign(signer.sign(value)), value, `round trip of ${JSON.stringify(value.slice(0, 20))}`);
  }
});

test('key rotation: the first key signs, every key verifies, and verify says which', () => {
  const before = new Signer([OLD]);
  const after = new Signer([NEW, OLD]);
  const oldSigned = before.sign('session-1');
  assert.equal(after.unsign(oldSigned), 'session-1', 'a value signed with the old key still verifies');
  assert.deepEqual(after.verify(oldSigned), { value: 'session-1', keyIndex: 1 });
  const newSigned = after.sign('session-1');
  assert.notEqual(newSigned, oldSigned, 'the new key signs');
  assert.deepEqual(after.verify(newSigned), { value: 'session-1', keyIndex: 0 });
  assert.equal(before.unsign(newSigned), false, 'a signer without the new key rejects what it signed');
  assert.equal(new Signer([NEW]).unsign(oldSigned), false, 'once the old key is dropped, its values fail');
  assert.equal(after.keyCount, 2);
});

test('tampering with the value or the signature, or a foreign key, fails', () => {
  const signer = new Signer([NEW]);
  const signed = signer.sign('user=42');
  const sig = signed.slice(-SIGNATURE_LENGTH);
  assert.equal(signer.unsign(`user=43.${sig}`), false, 'changed value');
  const flipped = sig.slice(0, 10) + (sig[10] === 'A' ? 'B' : 'A') + sig.slice(11);
  assert.equal(signer.unsign(`user=42.${flipped}`), false, 'changed signature');
  assert.equal(signer.unsign(`user=42.${sig.slice(1)}`), false, 'short signature');
  assert.equal(signer.unsign(`user=42.${sig}A`), false, 'long signature');
  assert.equal(signer.unsign(`user=42.${sig.slice(0, -1)}=`), false, 'character outside base64url');
  assert.equal(signer.unsign('user=42'), false, 'no signature at all');
  assert.equal(signer.unsign(''), false, 'empty');
  assert.equal(signer.unsign(new Signer([OLD]).sign('user=42')), false, 'foreign key');
  assert.equal(signer.unsign(42 as unknown as string), false, 'not a string');
});

test('a context binds the signature: the same value signed for one cookie name is refused for another', () => {
  const signer = new Signer([NEW]);
  const signed = signer.sign('admin', 'role');
  assert.equal(signer.unsign(signed, 'role'), 'admin');
  assert.equal(signer.unsign(signed, 'other'), false, 'another context');
  assert.equal(signer.unsign(signed), false, 'no context');
  assert.equal(signer.unsign(signer.sign('admin'), 'role'), false, 'signed without context, checked with one');
  assert.throws(() => signer.sign('x', 'a\0b'), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'));
});

test('keys: none, short ones and wrong types are refused with NODEFPM_INVALID_OPTION; bytes and strings both work', () => {
  const refused = (keys: unknown, what: string): void => {
    assert.throws(() => new Signer(keys as string[]), (error: unknown) => isNodefpmError(error, 'NODEFPM_INVALID_OPTION'), what);
  };
  refused([], 'empty list');
  refused(undefined, 'no list');
  refused(['x'.repeat(MIN_KEY_BYTES - 1)], '31-byte string');
  refused([NEW, 'short'], 'a short old key');
  refused([randomBytes(16)], '16-byte buffer');
  refused([42], 'a number');
  const bytes = randomBytes(32);
  const signer = new Signer([bytes]);
  const signed = signer.sign('v');
  bytes.fill(0); // The signer keeps its own copy.
  assert.equal(signer.unsign(signed), 'v');
  assert.equal(new Signer(['é'.repeat(16)]).keyCount, 1, '16 two-byte characters are 32 bytes');
});

test('looksSigned spots the value.signature shape without a key', () => {
  const signed = new Signer([NEW]).sign('abc');
  assert.equal(looksSigned(signed), true);
  assert.equal(looksSigned('abc'), false);
  assert.equal(looksSigned(signed.slice(-SIGNATURE_LENGTH)), false, 'a signature alone has no dot before it');
  assert.equal(looksSigned(`abc-${signed.slice(-SIGNATURE_LENGTH)}`), false);
});
