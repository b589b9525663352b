// What the payer scripts (wallet-payment.mjs, dev-wallet.mjs) share: Chromium launched
// the same way, screenshots into the scenario's folder, a page whose console errors and
// uncaught exceptions are collected, and the checks of an open invoice as first shown.

import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const CHROMIUM = process.env.POLYPAY_CHROMIUM || '/usr/bin/chromium'

/** The scenario (the JSON argument), a logger prefixed with `name`, and a screenshot
 * function writing into `scenario.screenshots`. */
export function setup(name) {
  const scenario = JSON.parse(process.argv[2])
  mkdirSync(scenario.screenshots, { recursive: true })
  const log = (message) => process.stderr.write(`${name}: ${message}\n`)
  const shot = (page, file) => page.screenshot({ path: join(scenario.screenshots, file), fullPage: true })
  return { scenario, log, shot }
}

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 60_000,
  })
}

/** A new page of `context`; `problems` fills with its console errors and exceptions. */
export async function watchedPage(context) {
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
  return { page, problems }
}

/** Opens `url` and checks the open invoice: title, amount and symbol, status pending. */
export async function openInvoice(page, url, expect) {
  await page.goto(url)
  await page.getByTestId('amount').waitFor()
  assert.equal(await page.getByTestId('title').innerText(), expect.title)
  assert.equal(
    (await page.getByTestId('amount').innerText()).replace(/\s+/g, ' ').trim(),
    `${expect.amount} ${expect.symbol}`,
  )
  assert.equal(await page.getByTestId('status').getAttribute('data-phase'), 'pending')
}

/** Waits for the page to show the invoice paid. */
export async function waitPaid(page) {
  await page.locator('[data-testid=status][data-phase=paid]').waitFor({ timeout: 60_000 })
  assert.match(await page.getByTestId('status').innerText(), /Payment complete/)
}
