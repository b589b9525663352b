// Development mode only (the view's `dev_wallet` is true): asks the server to pay this
// invoice from its dev wallet, an unlocked account of the local development chain, the
// way `polypay dev pay` does. The page then follows the invoice's status as for any
// payment: the chain listener, not this answer, decides that it is paid.

/** Pays what is due; resolves with `{ tx_hash, amount }`, throws an Error with the reason. */
export async function payWithDevWallet(base, invoiceId) {
  const response = await fetch(`${base}/api/checkout/${encodeURIComponent(invoiceId)}/dev-pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: '{}',
    cache: 'no-store',
  })
  const body = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`)
  return body
}
