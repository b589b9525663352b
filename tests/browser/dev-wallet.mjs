// A payer on the checkout page of a `polypay dev` setup pays with the dev wallet button,
// in headless Chromium, without any browser wallet. Run by host/tests/dev_command.rs
// with a JSON scenario as the only argument:
//
//   { payUrl, returnUrl, screenshots, expect: { title, amount, symbol } }
//
// Protocol with the Rust test, on stdout, one line each:
//   `PAID <hash>`  the page showed the invoice paid, by this transaction;
//   `DONE`         the page returned the payer to the demo shop.
// `dev-checkout.png` (the open invoice with the dev wallet button) is the README's
// screenshot. Every wait is a Playwright wait with a timeout. Exits non-zero with the
// reason on failure.

import assert from 'node:assert/strict'
import { launch, openInvoice, setup, waitPaid, watchedPage } from './payer.mjs'

const TIMEOUT = 30_000
const { scenario, log, shot } = setup('dev-wallet-browser')
const browser = await launch()

try {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 480, height: 1000 } })
  context.setDefaultTimeout(TIMEOUT)
  const { page, problems } = await watchedPage(context)

  // 1. The open invoice, with the dev wallet offered.
  await openInvoice(page, scenario.payUrl, scenario.expect)
  const button = page.getByTestId('pay-with-dev-wallet')
  assert.equal((await button.innerText()).trim(), 'Pay with the dev wallet')
  await page.getByText('Development mode').waitFor()
  await shot(page, 'dev-checkout.png')
  log('invoice shown with the dev wallet button')

  // 2. Pay: the server's dev wallet sends approve + pay; the page follows the status.
  await button.click()
  await page.getByTestId('dev-wallet-sent').waitFor()
  await waitPaid(page)
  assert.equal(await page.getByTestId('pay-with-dev-wallet').count(), 0, 'no button once paid')
  const hash = (await page.getByTestId('txn-hash').innerText()).trim()
  assert.match(hash, /^0x[0-9a-f]{64}$/)
  await shot(page, 'dev-checkout-paid.png')
  process.stdout.write(`PAID ${hash}\n`)

  // 3. Back to the demo shop.
  await page.waitForURL(scenario.returnUrl, { timeout: 30_000 })
  await page.getByText('Demo shop').waitFor()
  assert.deepEqual(problems, [])
  process.stdout.write('DONE\n')
} catch (e) {
  log(`FAILED: ${e.stack || e}`)
  process.exitCode = 1
} finally {
  await browser.close()
}
