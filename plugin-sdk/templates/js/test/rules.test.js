// Unit tests of src/rules.js: `npm test` (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bearerToken, callbackBody, hex } from '../src/rules.js';

test('a bearer token is read from the authorization header', () => {
  assert.equal(bearerToken([['authorization', 'Bearer abc123']]), 'abc123');
  assert.equal(bearerToken([['authorization', 'Basic abc123']]), null);
  assert.equal(bearerToken([]), null);
});

test('the callback body keeps amounts as decimal strings', () => {
  const body = JSON.parse(
    callbackBody({ id: 'i1', merchantOrderId: 'o1', status: 'paid', amountDueDecimal: '99.99', asset: 'USDT' }),
  );
  assert.deepEqual(body, { invoice_id: 'i1', order_id: 'o1', status: 'paid', amount: '99.99', asset: 'USDT', txn_hash: null });
});

test('hex is lower case and two digits a byte', () => {
  assert.equal(hex(new Uint8Array([0, 15, 255])), '000fff');
});
