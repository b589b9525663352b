// Drives the hosted checkout page in headless Chromium, as a payer would see it.
// Run by host/tests/checkout_page.rs, which starts the real server, creates the invoices
// and passes a JSON scenario as the only argument:
//
//   { base, returnUrl, screenshots,
//     invoices: { pending, expired, late, overdue, cancelled, unknown },
//     expect: { amountDisplay, fiat, symbol, network, payAddress, paymentUri } }
//
// The pending invoice is priced in fiat: `fiat` is its price as shown ("10.50 USD").
//
// Protocol with the Rust test, on stdout: the line `READY_FOR_PAYMENT` once the open
// invoice has been checked; the Rust side then settles the invoice as paid, and this
// script waits for the page to show it and to redirect. Likewise `READY_FOR_LATE_PAYMENT`
// once the page of the expired invoice `late` follows it: the Rust side pays it late
// (inside its monitoring window), and the page must show it paid and redirect. Every wait is a Playwright wait
// with a timeout, never a sleep. Exits non-zero with the reason on any failure.

import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const scenario = JSON.parse(process.argv[2])
const { base, invoices, expect: want } = scenario
const CHROMIUM = process.env.POLYPAY_CHROMIUM || '/usr/bin/chromium'
const TIMEOUT = 15_000

mkdirSync(scenario.screenshots, { recursive: true })
const shot = (page, name) => page.screenshot({ path: join(scenario.screenshots, name), fullPage: true })
const log = (message) => process.stderr.write(`checkout-browser: ${message}\n`)

// Playwright launches every browser with a fresh temporary profile (its own
// --user-data-dir), so no state leaks between runs.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  timeout: 60_000,
})

/** A page whose console errors, uncaught exceptions and CSP violations fail the run. */
async function openPage(locale, { viewport = { width: 480, height: 1000 }, allow = [] } = {}) {
  const context = await browser.newContext({ locale, viewport, deviceScaleFactor: 1 })
  context.setDefaultTimeout(TIMEOUT)
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !allow.some((re) => re.test(m.text()))) problems.push(`console: ${m.text()} (${m.location().url})`)
  })
  return { context, page, problems }
}

const payUrl = (id) => `${base}/pay/${encodeURIComponent(id)}`

try {
  // 1. The open invoice, in English (the browser's language).
  {
    const { context, page, problems } = await openPage('en-US')
    const response = await page.goto(payUrl(invoices.pending))
    assert.equal(response.status(), 200)
    assert.match(response.headers()['content-security-policy'] ?? '', /default-src 'none'/)

    await page.getByTestId('amount').waitFor()
    assert.equal(await page.locator('html').getAttribute('lang'), 'en')
    assert.equal(
      (await page.getByTestId('amount').innerText()).replace(/\s+/g, ' ').trim(),
      `${want.amountDisplay} ${want.symbol}`,
    )
    assert.match(await page.getByTestId('network').innerText(), new RegExp(want.network))
    assert.equal(await page.getByTestId('pay-address').innerText(), want.payAddress)
    assert.equal(await page.getByTestId('title').innerText(), want.title)
    assert.equal(await page.getByTestId('status').getAttribute('data-phase'), 'pending')
    assert.match(await page.getByTestId('status').innerText(), /Waiting for payment/)

    const qr = page.getByTestId('qr')
    assert.equal(await qr.getAttribute('data-qr-text'), want.paymentUri)
    const qrBox = await qr.boundingBox()
    assert.ok(qrBox && qrBox.width >= 150, `QR code is visible (${JSON.stringify(qrBox)})`)
    assert.ok((await qr.locator('path').getAttribute('d')).length > 1000, 'QR code has modules')

    // The countdown shows mm:ss (or h:mm:ss) left and ticks.
    const countdown = page.getByTestId('countdown').locator('[role=timer]')
    const first = await countdown.innerText()
    assert.match(first, /^(\d+:)?[0-5]\d:[0-5]\d$/)
    assert.match(first, /^1[45]:[0-5]\d$/, `about 15 minutes left, got ${first}`)
    await page.waitForFunction(
      ([el, before]) => el.textContent.trim() !== before,
      [await countdown.elementHandle(), first],
    )

    // The fiat price beside the amount, and how long its quote holds (about 2 minutes).
    assert.equal(
      (await page.getByTestId('fiat').innerText()).replace(/\s+/g, ' ').trim(),
      `≈ ${want.fiat}`,
    )
    assert.match(await page.getByTestId('quote-countdown').innerText(), /Exchange rate held for/)
    const quoteLeft = await page.getByTestId('quote-countdown').locator('[role=timer]').innerText()
    assert.match(quoteLeft, /^0[12]:[0-5]\d$/, `about 2 minutes of quote left, got ${quoteLeft}`)

    await shot(page, 'checkout-pending-en.png')

    // No injected wallet: a clear message, no crash.
    await page.getByTestId('pay-with-wallet').click()
    await page.getByTestId('wallet-error').waitFor()
    assert.match(await page.getByTestId('wallet-error').innerText(), /No wallet found in this browser/)
    await shot(page, 'checkout-no-wallet-en.png')

    // Switch to Chinese: labels change, and the choice survives a reload.
    await page.locator('button[data-lang="zh"]').click()
    await page.getByText('使用钱包支付').waitFor()
    assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN')
    assert.match(await page.getByTestId('status').innerText(), /等待支付/)
    assert.match(await page.getByTestId('countdown').innerText(), /剩余支付时间/)
    await page.getByText('收款地址').waitFor()
    await shot(page, 'checkout-pending-zh.png')
    await page.setViewportSize({ width: 360, height: 740 })
    assert.equal(
      await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth),
      false,
      'no horizontal scrolling on a narrow screen',
    )
    await shot(page, 'checkout-pending-mobile-zh.png')
    await page.setViewportSize({ width: 480, height: 1000 })
    const stream = page.waitForRequest((r) => r.url().endsWith(`/api/checkout/${invoices.pending}/events`))
    await page.reload()
    await page.getByText('使用钱包支付').waitFor()
    assert.equal(await page.locator('button[data-lang="zh"]').getAttribute('aria-pressed'), 'true')
    await page.locator('button[data-lang="en"]').click()
    await page.getByText('Pay with wallet').waitFor()

    // 2. The host settles the invoice as paid: the page follows and returns the payer.
    await stream
    process.stdout.write('READY_FOR_PAYMENT\n')
    await page.locator('[data-testid=status][data-phase=paid]').waitFor({ timeout: 20_000 })
    assert.match(await page.getByTestId('status').innerText(), /Payment complete/)
    assert.equal(await page.getByTestId('pay-with-wallet').count(), 0)
    assert.equal(await page.getByTestId('txn-hash').innerText(), want.txnHash)
    await page.getByTestId('redirect').getByText(/Returning to the merchant in \d s/).waitFor()
    await shot(page, 'checkout-paid-en.png')
    await page.waitForURL(scenario.returnUrl, { timeout: 20_000 })
    await page.getByText('merchant return page').waitFor()
    assert.deepEqual(problems, [])
    await context.close()
    log('open invoice: shown, no-wallet message, zh switch, paid, redirected')
  }

  // 3. An expired invoice, with a Chinese browser: the expired state, no way to pay.
  {
    const { context, page, problems } = await openPage('zh-CN')
    await page.goto(payUrl(invoices.expired))
    await page.locator('[data-testid=status][data-phase=expired]').waitFor()
    assert.match(await page.getByTestId('status').innerText(), /订单已过期/)
    assert.equal(await page.getByTestId('pay-with-wallet').count(), 0)
    assert.equal(await page.getByTestId('qr').count(), 0)
    await shot(page, 'checkout-expired-zh.png')
    assert.deepEqual(problems, [])
    await context.close()
  }

  // 3b. An expired invoice still inside its monitoring window: the page keeps following
  // it, and a late payment is shown as paid (late) and returns the payer.
  {
    const { context, page, problems } = await openPage('en-US')
    const stream = page.waitForRequest((r) => r.url().endsWith(`/api/checkout/${invoices.late}/events`))
    await page.goto(payUrl(invoices.late))
    await page.locator('[data-testid=status][data-phase=expired]').waitFor()
    await stream
    process.stdout.write('READY_FOR_LATE_PAYMENT\n')
    await page.locator('[data-testid=status][data-phase=paid]').waitFor({ timeout: 20_000 })
    assert.match(await page.getByTestId('status').innerText(), /Payment complete/)
    assert.match(await page.getByTestId('status').innerText(), /arrived after the invoice expired/)
    await page.getByTestId('redirect').getByText(/Returning to the merchant in \d s/).waitFor()
    await shot(page, 'checkout-paid-late-en.png')
    await page.waitForURL(scenario.returnUrl, { timeout: 20_000 })
    assert.deepEqual(problems, [])
    await context.close()
    log('expired invoice paid late: followed, shown as paid late, redirected')
  }

  // 4. Past its deadline but not yet expired by the host: shown as expired all the same.
  {
    const { context, page, problems } = await openPage('en-US')
    await page.goto(payUrl(invoices.overdue))
    await page.locator('[data-testid=status][data-phase=expired]').waitFor()
    assert.match(await page.getByTestId('status').innerText(), /This invoice has expired/)
    assert.equal(await page.getByTestId('pay-with-wallet').count(), 0)
    assert.deepEqual(problems, [])
    await context.close()
  }

  // 5. A cancelled invoice, on a phone-sized screen.
  {
    const { context, page, problems } = await openPage('en-US', { viewport: { width: 360, height: 740 } })
    await page.goto(payUrl(invoices.cancelled))
    await page.locator('[data-testid=status][data-phase=cancelled]').waitFor()
    assert.match(await page.getByTestId('status').innerText(), /This invoice was cancelled/)
    assert.equal(await page.getByTestId('pay-with-wallet').count(), 0)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)
    assert.equal(overflow, false, 'no horizontal scrolling on a narrow screen')
    await shot(page, 'checkout-cancelled-mobile-en.png')
    assert.deepEqual(problems, [])
    await context.close()
  }

  // 6. An unknown invoice id: 404, and the page says the link is not valid.
  {
    const { context, page, problems } = await openPage('en-US', { allow: [/404/] })
    const response = await page.goto(payUrl(invoices.unknown))
    assert.equal(response.status(), 404)
    await page.getByTestId('not-found').waitFor()
    assert.match(await page.getByTestId('not-found').innerText(), /This payment link is not valid/)
    assert.deepEqual(problems, [])
    await context.close()
  }

  log('all checks passed')
} catch (e) {
  log(`FAILED: ${e.stack || e}`)
  process.exitCode = 1
} finally {
  await browser.close()
}
