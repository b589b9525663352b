// Unit tests of the dialect's pure rules: `node --test plugins/epusdt-js/test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import {
  RawNumber,
  callbackSignString,
  canonicalDecimal,
  cnyAmount,
  epusdtStatus,
  readBody,
  requestSignStrings,
  toJson,
} from '../src/epusdt.js';

const md5 = (text) => createHash('md5').update(text).digest('hex');

test('the documented example signs to the documented signature', () => {
  const members = readBody(
    '{"order_id":"20220201030210321","amount":42,"notify_url":"http://example.com/notify","redirect_url":"http://example.com/redirect"}',
  );
  const [text] = requestSignStrings(members);
  assert.equal(
    text,
    'amount=42&notify_url=http://example.com/notify&order_id=20220201030210321&redirect_url=http://example.com/redirect',
  );
  assert.equal(md5(text + 'epusdt_password_xasddawqe'), '1cd4b52df5587cfb1968b0c0c6e156cd');
});

test('numbers are read by their literal text and signed in canonical form', () => {
  const members = readBody('{"amount": 42.50, "nested": {"amount": 1}, "signature": "x", "n": 0.10}');
  assert.equal(members.amount.raw, '42.50');
  assert.equal(requestSignStrings({ amount: members.amount, n: members.n })[0], 'amount=42.5&n=0.1');
});

test('empty strings: the documented form leaves them out, the server form keeps them', () => {
  const members = readBody('{"a":"1","b":"","signature":"s"}');
  assert.deepEqual(requestSignStrings(members), ['a=1', 'a=1&b=']);
  assert.deepEqual(requestSignStrings(readBody('{"a":"1","b":null}')), ['a=1']);
});

test('members that cannot be signed make the request unsigned', () => {
  assert.equal(requestSignStrings(readBody('{"a":true}')), null);
  assert.equal(requestSignStrings(readBody('{"a":{"b":1}}')), null);
  assert.equal(requestSignStrings(readBody('{"a":1e3}')), null);
});

test('CNY amounts: positive, at most 2 decimals, plain decimals only', () => {
  assert.equal(cnyAmount('42'), '42');
  assert.equal(cnyAmount('0.01'), '0.01');
  assert.equal(cnyAmount('42.500'), '42.5');
  for (const bad of ['0', '0.00', '0.001', '-1', '1e2', '01', '1234567890123']) {
    assert.equal(cnyAmount(bad), null, bad);
  }
  assert.equal(canonicalDecimal('1234567890123456'), null);
});

test('host statuses map to waiting, success and expired', () => {
  assert.deepEqual(
    ['pending', 'confirming', 'paid', 'expired', 'cancelled'].map(epusdtStatus),
    [1, 1, 2, 3, 3],
  );
});

test('raw numbers are written verbatim and callbacks sign every field but signature', () => {
  const fields = { trade_id: 't', amount: new RawNumber('42.5'), signature: 'x', status: new RawNumber('2') };
  assert.equal(toJson(fields), '{"trade_id":"t","amount":42.5,"signature":"x","status":2}');
  assert.equal(callbackSignString(fields), 'amount=42.5&status=2&trade_id=t');
});
