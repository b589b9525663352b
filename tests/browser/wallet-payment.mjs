// A payer with a browser wallet pays an invoice on the hosted checkout page, against a
// real chain. Run by host/tests/trino_checkout_e2e.rs with a JSON scenario as the only
// argument:
//
//   { payUrl, rpcUrl, payer, returnUrl, screenshots, expect: { title, amount, symbol } }
//
// The wallet is an EIP-1193 provider injected as `window.ethereum` before the page loads.
// It is backed by the anvil node at `rpcUrl`: the account is `payer` (one of anvil's
// unlocked development accounts, so anvil signs), every other request goes to the node.
//
// Protocol with the Rust test, on stdout, one line each:
//   `TX <to> <hash>`  every transaction the wallet sent (the test mines further blocks
//                     once it sees the payment);
//   `DONE`            the page showed the payment as complete and returned the payer.
// Every wait is a Playwright wait with a timeout. Exits non-zero with the reason on failure.

import assert from 'node:assert/strict'
import { launch, openInvoice, setup, waitPaid, watchedPage } from './payer.mjs'

const TIMEOUT = 30_000
const { scenario, log, shot } = setup('wallet-browser')

/** A JSON-RPC call to the node; a node error is thrown as an EIP-1193 error. */
let rpcId = 0
async function rpc(method, params = []) {
  const response = await fetch(scenario.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
  })
  const reply = await response.json()
  if (reply.error) throw reply.error
  return reply.result
}

const browser = await launch()

try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 480, height: 1000 } })
  context.setDefaultTimeout(TIMEOUT)

  // The wallet's back end, in this process: accounts and chain switching are the
  // wallet's own; everything else is the node's.
  const chainId = await rpc('eth_chainId')
  const sent = []
  await context.exposeFunction('__walletRequest', async (method, params) => {
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return { result: [scenario.payer] }
      case 'wallet_switchEthereumChain':
        return BigInt(params[0].chainId) === BigInt(chainId)
          ? { result: null }
          : { error: { code: 4902, message: 'unknown chain' } }
      default:
        try {
          const result = await rpc(method, params)
          if (method === 'eth_sendTransaction') {
            sent.push(result)
            process.stdout.write(`TX ${params[0].to} ${result}\n`)
          }
          return { result }
        } catch (error) {
          return { error: { code: error.code ?? -32603, message: error.message ?? String(error) } }
        }
    }
  })
  // The page's side of the wallet: window.ethereum, before any of the page's scripts.
  await context.addInitScript(() => {
    window.ethereum = {
      isMetaMask: false,
      async request({ method, params }) {
        const reply = await window.__walletRequest(method, params ?? [])
        if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code })
        return reply.result
      },
      on() {},
      removeListener() {},
    }
  })

  const { page, problems } = await watchedPage(context)

  // 1. The invoice as the payer first sees it.
  await openInvoice(page, scenario.payUrl, scenario.expect)
  await shot(page, 'trino-before-payment.png')
  log('invoice shown, waiting for payment')

  // 2. Pay with the wallet: approve the payment contract, then pay(invoice, recipient, amount).
  await page.getByTestId('pay-with-wallet').click()

  // 3. The host's listener sees the payment; once deep enough the page shows it paid.
  await waitPaid(page)
  assert.equal(await page.getByTestId('pay-with-wallet').count(), 0)
  assert.equal(sent.length, 2, 'the wallet sent approve, then pay')
  assert.equal(await page.getByTestId('txn-hash').innerText(), sent[1])
  await shot(page, 'trino-after-payment.png')
  log('payment shown as complete')

  // 4. Back to the merchant.
  await page.waitForURL(scenario.returnUrl, { timeout: 30_000 })
  assert.deepEqual(problems, [])
  process.stdout.write('DONE\n')
} catch (e) {
  log(`FAILED: ${e.stack || e}`)
  process.exitCode = 1
} finally {
  await browser.close()
}
