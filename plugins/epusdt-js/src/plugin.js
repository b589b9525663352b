// epusdt-js: the epusdt (and BEpusdt) merchant API as a polypay dialect plugin, written
// in JavaScript and compiled to a component with componentize-js against the
// `polypay:plugin@0.2.0` world. What it implements and what not: ../README.md.

import { settings as readSettings } from 'polypay:plugin/context@0.2.0';
import { authenticateSigned, findCredential } from 'polypay:plugin/merchants@0.2.0';
import { createIdempotent, get } from 'polypay:plugin/invoices@0.2.0';
import { digestWithSecret } from 'polypay:plugin/crypto@0.2.0';
import { log } from 'polypay:plugin/log@0.2.0';
import { OPENAPI } from './openapi.js';
import {
  BodyError,
  ERRORS,
  RawNumber,
  STATUS_SUCCESS,
  callbackSignString,
  cnyAmount,
  envelope,
  epusdtStatus,
  hex,
  readBody,
  requestSignStrings,
  toJson,
  unhex,
} from './epusdt.js';

const VERSION = '0.1.0';
/** The credential kind of a merchant's API token. */
const TOKEN_KIND = 'api-token';
const CREATE_ROUTE = '/api/v1/order/create-transaction';
const STATUS_ROUTE = '/pay/check-status/{trade_id}';
/** epusdt gives up after 5 attempts; the delays before attempts 2 to 5, in seconds. */
const RETRY_DELAYS_SECS = [10, 30, 60, 300];
const DEFAULT_EXPIRES_IN_SECS = 600;
const ORDER_ID_MAX = 32;
const URL_MAX = 2048;

const SETTINGS_SCHEMA = {
  type: 'object',
  required: ['token_public_id', 'trade_types'],
  properties: {
    token_public_id: { type: 'string', description: "public id of the merchant's api-token credential" },
    default_trade_type: { type: 'string' },
    expires_in_secs: { type: 'integer', minimum: 60 },
    trade_types: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        required: ['chain', 'asset', 'address'],
        properties: { chain: { type: 'string' }, asset: { type: 'string' }, address: { type: 'string' } },
      },
    },
  },
};

export function manifest() {
  return {
    name: 'epusdt-js',
    version: VERSION,
    routes: [
      { methods: ['POST'], path: CREATE_ROUTE },
      { methods: ['GET'], path: STATUS_ROUTE },
    ],
    settingsSchema: JSON.stringify(SETTINGS_SCHEMA),
    credentials: [
      {
        kind: TOKEN_KIND,
        secret: { prefix: '', encoding: 'alphanumeric', bytes: 32 },
        publicId: { prefix: 'ep_', encoding: 'alphanumeric', bytes: 16 },
      },
    ],
    openapi: JSON.stringify(OPENAPI),
  };
}

/** An answer in epusdt's envelope; errors too are HTTP 200, told apart by `status_code`. */
class Answer {
  constructor(statusCode, data, message) {
    this.statusCode = statusCode;
    this.data = data;
    this.message = message ?? (statusCode === 200 ? 'success' : ERRORS[statusCode]);
  }
}

const fail = (code, message) => new Answer(code, null, message);

export function handle(request) {
  let answer;
  try {
    answer = request.route === CREATE_ROUTE ? createTransaction(request) : checkStatus(request);
  } catch (e) {
    if (!(e instanceof Answer)) throw e;
    answer = e;
  }
  return {
    status: 200,
    headers: [['content-type', 'application/json']],
    body: new TextEncoder().encode(envelope(answer.statusCode, answer.message, answer.data, request.requestId)),
  };
}

function settings() {
  const s = JSON.parse(readSettings());
  if (typeof s.token_public_id !== 'string' || typeof s.trade_types !== 'object' || s.trade_types === null) {
    hostFailure('settings', 'token_public_id and trade_types are required');
  }
  return s;
}

/** A host answer this dialect has no words for: logged, answered as a system error. */
function hostFailure(call, detail) {
  log('error', `${call} failed`, [['detail', typeof detail === 'string' ? detail : JSON.stringify(detail)]]);
  throw fail(400);
}

/** The `host-error` variant a failed host call threw. */
function hostError(e) {
  return e && typeof e === 'object' && 'payload' in e ? e.payload : e;
}

function createTransaction(request) {
  const s = settings();
  let members;
  try {
    members = readBody(new TextDecoder().decode(request.body));
  } catch (e) {
    if (e instanceof BodyError) throw fail(10009);
    throw e;
  }
  // The signature first, as epusdt's middleware does: nothing is said about the
  // content of an unsigned request.
  const credential = authenticate(s, members);

  const orderId = members.order_id?.value;
  if (typeof orderId !== 'string' || orderId === '') throw fail(400, 'order_id 不能为空');
  if (orderId.length > ORDER_ID_MAX) throw fail(400, `order_id 长度不能超过 ${ORDER_ID_MAX}`);
  const amountMember = members.amount;
  if (amountMember === undefined || amountMember.value === null) throw fail(400, 'amount 不能为空');
  if (typeof amountMember.value !== 'number') throw fail(10009);
  const amount = cnyAmount(amountMember.raw);
  if (amount === null) throw fail(10004);
  const notifyUrl = urlMember(members, 'notify_url', true);
  const redirectUrl = urlMember(members, 'redirect_url', false);
  const tradeTypeName = members.trade_type?.value ?? s.default_trade_type ?? Object.keys(s.trade_types)[0];
  const tradeType = typeof tradeTypeName === 'string' ? s.trade_types[tradeTypeName] : undefined;
  if (tradeType === undefined) throw fail(10003);

  let invoice;
  try {
    invoice = createIdempotent(
      {
        merchantOrderId: orderId,
        price: { tag: 'fiat', val: { amount, currency: 'CNY' } },
        chain: tradeType.chain,
        asset: tradeType.asset,
        matching: { tag: 'unique-amount', val: tradeType.address },
        expiresInSecs: s.expires_in_secs ?? DEFAULT_EXPIRES_IN_SECS,
        notifyUrl,
        returnUrl: redirectUrl,
        pluginData: JSON.stringify({ amount, credential: credential.id, trade_type: tradeTypeName }),
      },
      orderId,
    );
  } catch (e) {
    const err = hostError(e);
    switch (err?.tag) {
      case 'conflict':
        throw fail(10002);
      case 'unavailable':
        throw fail(10006);
      case 'unsupported':
        throw fail(10003);
      case 'invalid':
        throw fail(/amount/i.test(err.val) ? 10004 : 400, /amount/i.test(err.val) ? undefined : err.val);
      default:
        hostFailure('invoices.create-idempotent', err);
    }
  }
  return new Answer(200, orderData(invoice));
}

/** A URL member: a string of at most URL_MAX characters, http(s). */
function urlMember(members, key, required) {
  const value = members[key]?.value;
  if (value === undefined || value === null || value === '') {
    if (required) throw fail(400, `${key} 不能为空`);
    return undefined;
  }
  if (typeof value !== 'string' || value.length > URL_MAX || !/^https?:\/\/[^\s]+$/.test(value)) {
    throw fail(400, `${key} 格式不正确`);
  }
  return value;
}

/**
 * Checks `signature` = md5(sign string . token) through the host (the token never
 * enters the plugin; the host compares in constant time). Either sign string form counts.
 */
function authenticate(s, members) {
  const signature = members.signature?.value;
  const strings = requestSignStrings(members);
  const expected = typeof signature === 'string' && signature.length === 32 ? unhex(signature) : null;
  if (strings === null || expected === null) throw fail(401);
  for (const text of strings) {
    try {
      return authenticateSigned(TOKEN_KIND, s.token_public_id, {
        tag: 'digest',
        val: {
          algorithm: 'md5',
          parts: [{ tag: 'bytes', val: new TextEncoder().encode(text) }, { tag: 'secret' }],
          expected,
        },
      });
    } catch (e) {
      const err = hostError(e);
      if (err?.tag !== 'unauthorized' && err?.tag !== 'not-found') hostFailure('merchants.authenticate-signed', err);
    }
  }
  throw fail(401);
}

/** `data` of a create answer. */
function orderData(invoice) {
  const own = JSON.parse(invoice.pluginData);
  return {
    trade_id: invoice.id,
    order_id: invoice.merchantOrderId,
    amount: new RawNumber(own.amount),
    actual_amount: new RawNumber(invoice.amountDueDecimal),
    token: invoice.payTo,
    expiration_time: Number(invoice.expiresAt / 1000n),
    payment_url: invoice.paymentPageUrl,
  };
}

function checkStatus(request) {
  const tradeId = request.params.find(([k]) => k === 'trade_id')?.[1] ?? '';
  let invoice;
  try {
    invoice = get(tradeId);
  } catch (e) {
    const err = hostError(e);
    if (['not-found', 'invalid', 'unauthorized', 'forbidden'].includes(err?.tag)) throw fail(10008);
    hostFailure('invoices.get', err);
  }
  return new Answer(200, { trade_id: invoice.id, status: epusdtStatus(invoice.status) });
}

/**
 * The callback: once an order is paid (and confirmed), `POST notify_url` with the order
 * and its signature; delivered when the answer is `ok`, given up after 5 attempts.
 */
export function renderWebhook(event, attempt) {
  const invoice = event.invoice;
  if (event.kind !== 'status-changed' || invoice.status !== 'paid' || event.previousStatus === 'paid') {
    return undefined;
  }
  const own = JSON.parse(invoice.pluginData);
  const fields = {
    trade_id: invoice.id,
    order_id: invoice.merchantOrderId ?? '',
    amount: new RawNumber(own.amount),
    actual_amount: new RawNumber(invoice.amountDueDecimal),
    token: invoice.payTo,
    block_transaction_id: invoice.txnHash ?? '',
    signature: '',
    status: new RawNumber(String(STATUS_SUCCESS)),
  };
  const credential = own.credential ?? findCredential(TOKEN_KIND, settings().token_public_id).id;
  const digest = digestWithSecret(credential, 'md5', [
    { tag: 'bytes', val: new TextEncoder().encode(callbackSignString(fields)) },
    { tag: 'secret' },
  ]);
  fields.signature = hex(digest);
  return {
    request: {
      method: 'POST',
      url: event.url,
      headers: [['content-type', 'application/json']],
      body: new TextEncoder().encode(toJson(fields)),
    },
    accept: { tag: 'body-equals', val: 'ok' },
    retryAfterSecs: RETRY_DELAYS_SECS[attempt - 1],
  };
}

/** epusdt has no custodial balances: no ledger callbacks. */
export function renderLedgerWebhook(_event, _attempt) {
  return undefined;
}
