// Unit tests of RequestTable: one request in its slot, multiplexed ones beside it, removal by identity.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestTable } from './request-table.js';

type Item = { readonly id: number; readonly name: string };
const item = (id: number, name = `r${id}`): Item => ({ id, name });

test('one request at a time: found by id, removed, and the table is empty again', () => {
  const table = new RequestTable<Item>();
  for (let round = 0; round < 3; round++) {
    const request = item(1);
    table.add(request);
    assert.equal(table.size, 1);
    assert.equal(table.get(1), request);
    assert.equal(table.has(1), true);
    assert.equal(table.get(2), undefined);
    assert.deepEqual(table.values(), [request]);
    assert.equal(table.remove(request), true);
    assert.equal(table.size, 0);
    assert.equal(table.get(1), undefined);
    assert.deepEqual(table.values(), []);
  }
});

test('multiplexed requests: each found by its id, whichever was added first', () => {
  const table = new RequestTable<Item>();
  const [a, b, c] = [item(1), item(2), item(7)];
  table.add(a);
  table.add(b);
  table.add(c);
  assert.equal(table.size, 3);
  assert.deepEqual([table.get(1), table.get(2), table.get(7)], [a, b, c]);
  assert.deepEqual(new Set(table.values()), new Set([a, b, c]));
  // The first one ends: the others stay reachable, and a new request can take its place.
  assert.equal(table.remove(a), true);
  assert.equal(table.get(1), undefined);
  assert.deepEqual([table.get(2), table.get(7)], [b, c]);
  const d = item(1, 'id 1 again');
  table.add(d);
  assert.equal(table.get(1), d);
  assert.equal(table.size, 3);
  assert.equal(table.remove(b), true);
  assert.equal(table.remove(c), true);
  assert.equal(table.remove(d), true);
  assert.equal(table.size, 0);
  assert.deepEqual(table.values(), []);
});

test('remove() takes only the request held under that id', () => {
  const table = new RequestTable<Item>();
  const held = item(3, 'held');
  const stranger = item(3, 'another with the same id');
  table.add(held);
  assert.equal(table.remove(stranger), false, 'a request that is not in the table');
  assert.equal(table.get(3), held);
  table.add(item(4));
  assert.equal(table.remove(item(4, 'not the one added')), false);
  assert.equal(table.size, 2);
  assert.equal(table.remove(held), true);
  assert.equal(table.remove(held), false, 'twice');
});

test('values() is a copy: requests may be removed while it is gone through', () => {
  const table = new RequestTable<Item>();
  const all = [item(1), item(2), item(3)];
  for (const request of all) table.add(request);
  const seen: Item[] = [];
  for (const request of table.values()) {
    seen.push(request);
    table.remove(request);
  }
  assert.deepEqual(new Set(seen), new Set(all));
  assert.equal(table.size, 0);
});

test('clear() forgets every request', () => {
  const table = new RequestTable<Item>();
  table.add(item(1));
  table.add(item(2));
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(1), undefined);
  assert.equal(table.get(2), undefined);
  assert.deepEqual(table.values(), []);
});
