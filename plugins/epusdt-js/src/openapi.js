// The OpenAPI 3 document of the epusdt dialect, served by the host at
// /polypay/plugins/epusdt-js/openapi.json (the manifest's `openapi` field).
const envelope = (data) => ({
  type: 'object',
  properties: {
    status_code: { type: 'integer', description: '200 on success, else an epusdt error code (401, 10002, 10003, 10004, 10006, 10008, 10009, 400); HTTP status is 200 either way' },
    message: { type: 'string' },
    data: data ?? { nullable: true },
    request_id: { type: 'string' },
  },
});

const transaction = {
  type: 'object',
  properties: {
    trade_id: { type: 'string' },
    order_id: { type: 'string' },
    amount: { type: 'number', description: 'CNY, as the merchant sent it' },
    actual_amount: { type: 'number', description: 'USDT to pay (unique on the receiving address)' },
    token: { type: 'string', description: 'the receiving address' },
    expiration_time: { type: 'integer', description: 'Unix seconds' },
    payment_url: { type: 'string' },
  },
};

export const OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'epusdt',
    version: '0.1.0',
    description:
      'The epusdt merchant API. Requests and callbacks are signed with md5 of the parameters sorted by key, joined `k=v&k=v`, followed by the merchant token. The callback is POSTed to `notify_url` once the order is paid and is accepted when the body is `ok`.',
  },
  paths: {
    '/api/v1/order/create-transaction': {
      post: {
        summary: 'Create a transaction',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['order_id', 'amount', 'notify_url', 'signature'],
                properties: {
                  order_id: { type: 'string', description: 'the merchant order id, at most 32 characters' },
                  amount: { type: 'number', description: 'CNY, at most 2 decimals' },
                  notify_url: { type: 'string' },
                  redirect_url: { type: 'string' },
                  trade_type: { type: 'string', description: 'optional (BEpusdt): usdt.trc20 or usdt.erc20' },
                  signature: { type: 'string', description: 'md5 hex, see the description' },
                },
              },
            },
          },
        },
        responses: {
          200: { description: 'The transaction, or an error code', content: { 'application/json': { schema: envelope(transaction) } } },
        },
      },
    },
    '/pay/check-status/{trade_id}': {
      get: {
        summary: 'The status of a transaction: 1 waiting, 2 paid, 3 expired',
        parameters: [{ name: 'trade_id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: {
            description: 'Its status, or an error code',
            content: {
              'application/json': {
                schema: envelope({ type: 'object', properties: { trade_id: { type: 'string' }, status: { type: 'integer' } } }),
              },
            },
          },
        },
      },
    },
  },
};
