// What {{name}} decides without the host: reading credentials from a request, and the
// callback's body. No host imports here, so `node --test` runs it as is.

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(headers) {
  const value = headers.find(([name]) => name === 'authorization')?.[1] ?? '';
  const m = /^Bearer ([^\s]+)$/.exec(value);
  return m ? m[1] : null;
}

/** A JSON response. */
export function json(status, value) {
  return {
    status,
    headers: [['content-type', 'application/json']],
    body: new TextEncoder().encode(JSON.stringify(value)),
  };
}

/** The callback body for an invoice (amounts stay decimal strings: never floats). */
export function callbackBody(invoice) {
  return JSON.stringify({
    invoice_id: invoice.id,
    order_id: invoice.merchantOrderId ?? null,
    status: invoice.status,
    amount: invoice.amountDueDecimal,
    asset: invoice.asset,
    txn_hash: invoice.txnHash ?? null,
  });
}

/** Lower-case hex of bytes. */
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
