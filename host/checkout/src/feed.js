// The invoice as the host serves it to payers: `GET <base>/api/checkout/{id}` once, then
// live through server-sent events (`…/events`, event name `invoice`), falling back to
// polling the JSON every few seconds when EventSource is missing or keeps failing.
//
// `<base>` is whatever precedes `/pay/{id}` in the page's own URL, so the page works
// behind a reverse proxy that mounts polypay under a path prefix.

const POLL_MS = 3000
const MAX_SSE_ERRORS = 3

/** The invoice id and API base from a page path such as `/shop/pay/abc`. */
export function locate(pathname = window.location.pathname) {
  const match = /^(.*)\/pay\/([^/]+)\/?$/.exec(pathname)
  if (!match) return null
  return { base: match[1], invoiceId: decodeURIComponent(match[2]) }
}

export class NotFound extends Error {}

export async function fetchInvoice(base, invoiceId) {
  const response = await fetch(`${base}/api/checkout/${encodeURIComponent(invoiceId)}`, {
    headers: { accept: 'application/json' },
    cache: 'no-store',
  })
  if (response.status === 404) throw new NotFound(invoiceId)
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  return response.json()
}

/**
 * Follows the invoice: calls `onInvoice(view)` for every update. Returns a function that
 * stops following. `isFinal(view)` says when no further update matters (the stream and
 * the polling stop).
 */
export function follow(base, invoiceId, { onInvoice, onError, isFinal }) {
  let stopped = false
  let source = null
  let timer = null

  const deliver = (view) => {
    if (stopped) return
    onInvoice(view)
    if (isFinal(view)) stop()
  }

  const poll = async () => {
    if (stopped) return
    try {
      deliver(await fetchInvoice(base, invoiceId))
    } catch (e) {
      onError?.(e)
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS)
  }

  const stream = () => {
    let errors = 0
    source = new EventSource(`${base}/api/checkout/${encodeURIComponent(invoiceId)}/events`)
    source.addEventListener('invoice', (event) => {
      errors = 0
      try {
        deliver(JSON.parse(event.data))
      } catch (e) {
        onError?.(e)
      }
    })
    source.onerror = () => {
      // EventSource reconnects by itself; give up on it when it cannot stay connected.
      errors += 1
      if (stopped) return
      if (source.readyState === EventSource.CLOSED || errors >= MAX_SSE_ERRORS) {
        source.close()
        source = null
        timer = setTimeout(poll, POLL_MS)
      }
    }
  }

  function stop() {
    stopped = true
    source?.close()
    clearTimeout(timer)
  }

  if (typeof window.EventSource === 'function') stream()
  else timer = setTimeout(poll, POLL_MS)
  return stop
}
