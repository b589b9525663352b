// The checkout page's wallet flow (host/checkout/src/wallet.js) against a scripted
// EIP-1193 provider: which requests it sends for each kind of invoice, and which message
// each wallet failure becomes. Run with `node --test` by host/tests/checkout_page.rs.
// (The same flow against a real chain, anvil, comes with the Trino plugin's end-to-end test.)

import assert from 'node:assert/strict'
import { test } from 'node:test'

const { payWithWallet, WalletError } = await import('../../host/checkout/src/wallet.js')
const { approveData, payData, transferData } = await import('../../host/checkout/src/abi.js')

const PAYER = '0x00000000000000000000000000000000000000bb'
const MERCHANT = '0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af'
const USDT = '0xdAC17F958D2ee523a2206206994597C13D831ec7'
const PAY_CONTRACT = '0x5FbDB2315678afecb367f032d93F642f64180aa3'
const word = (n) => '0x' + BigInt(n).toString(16).padStart(64, '0')

/** A provider that answers from `answers[method]` (a value or a function of params) and
 * records every request. */
function provider(answers) {
  const calls = []
  const ethereum = {
    async request({ method, params }) {
      calls.push({ method, params })
      const answer = answers[method]
      if (answer === undefined) throw Object.assign(new Error(`unexpected ${method}`), { code: -32601 })
      return typeof answer === 'function' ? answer(params) : answer
    },
  }
  globalThis.window = { ethereum }
  return calls
}

const base = {
  eth_requestAccounts: [PAYER],
  eth_chainId: '0xaa36a7', // 11155111
  eth_getBalance: word(10n ** 18n),
  eth_sendTransaction: '0x' + 'ab'.repeat(32),
}

const invoice = (fields) => ({
  chain_id: 11155111,
  strategy: 'fixed-address',
  pay_address: MERCHANT,
  token_address: null,
  payment_contract: null,
  pay_reference: 'inv-1',
  ...fields,
})

async function failure(promise) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof WalletError, `a WalletError, not ${e}`)
    return e.kind
  }
  assert.fail('the payment was expected to fail')
}

test('native invoice sends the value to the pay address', async () => {
  const calls = provider(base)
  await payWithWallet(invoice({}), '20000000000000000')
  const sent = calls.find((c) => c.method === 'eth_sendTransaction').params[0]
  assert.deepEqual(sent, { from: PAYER, to: MERCHANT, value: '0x470de4df820000' })
})

test('token invoice checks balanceOf and sends transfer(to, amount) to the token', async () => {
  const calls = provider({ ...base, eth_call: word(50_000_000) })
  await payWithWallet(invoice({ token_address: USDT }), '10500000')
  const sent = calls.find((c) => c.method === 'eth_sendTransaction').params[0]
  assert.deepEqual(sent, { from: PAYER, to: USDT, data: transferData(MERCHANT, 10500000n) })
})

test('contract-reference invoice approves the contract, waits, then calls pay', async () => {
  const calls = provider({
    ...base,
    eth_call: (params) => (params[0].data.startsWith('0xdd62ed3e') ? word(0) : word(50_000_000)),
    eth_getTransactionReceipt: { status: '0x1' },
  })
  const steps = []
  await payWithWallet(
    invoice({ strategy: 'contract-reference', token_address: USDT, payment_contract: PAY_CONTRACT }),
    '10500000',
    (step) => steps.push(step),
  )
  const sent = calls.filter((c) => c.method === 'eth_sendTransaction').map((c) => c.params[0])
  assert.deepEqual(sent, [
    { from: PAYER, to: USDT, data: approveData(PAY_CONTRACT, 10500000n) },
    { from: PAYER, to: PAY_CONTRACT, data: payData('inv-1', MERCHANT, 10500000n) },
  ])
  assert.deepEqual(steps, ['connect', 'network', 'balance', 'approve', 'approve_wait', 'confirm', 'sent'])
})

test('contract-reference invoice skips approve when the allowance covers the amount', async () => {
  const calls = provider({ ...base, eth_call: word(50_000_000) })
  await payWithWallet(
    invoice({ strategy: 'contract-reference', token_address: USDT, payment_contract: PAY_CONTRACT }),
    '10500000',
  )
  assert.equal(calls.filter((c) => c.method === 'eth_sendTransaction').length, 1)
})

test('wrong chain is switched, and a refused or failed switch is explained', async () => {
  let chain = '0x1'
  const calls = provider({
    ...base,
    eth_chainId: () => chain,
    wallet_switchEthereumChain: () => {
      chain = '0xaa36a7'
      return null
    },
  })
  await payWithWallet(invoice({}), '1')
  assert.deepEqual(calls.find((c) => c.method === 'wallet_switchEthereumChain').params, [{ chainId: '0xaa36a7' }])

  const refuse = (code) => () => {
    throw Object.assign(new Error('nope'), { code })
  }
  provider({ ...base, eth_chainId: '0x1', wallet_switchEthereumChain: refuse(4001) })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'switch_rejected')
  provider({ ...base, eth_chainId: '0x1', wallet_switchEthereumChain: refuse(4902) })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'unknown_chain')
  provider({ ...base, eth_chainId: '0x1', wallet_switchEthereumChain: refuse(-32603) })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'switch_failed')
})

test('user rejection, short balance, reverted approval and no wallet are told apart', async () => {
  const reject = () => {
    throw Object.assign(new Error('User rejected the request.'), { code: 4001 })
  }
  provider({ ...base, eth_requestAccounts: reject })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'rejected')
  provider({ ...base, eth_sendTransaction: reject })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'rejected')

  const calls = provider({ ...base, eth_getBalance: word(5) })
  assert.equal(await failure(payWithWallet(invoice({}), '6')), 'insufficient')
  assert.equal(calls.filter((c) => c.method === 'eth_sendTransaction').length, 0, 'nothing sent')
  provider({ ...base, eth_call: word(5) })
  assert.equal(await failure(payWithWallet(invoice({ token_address: USDT }), '6')), 'insufficient')

  provider({
    ...base,
    eth_call: (params) => (params[0].data.startsWith('0xdd62ed3e') ? word(0) : word(50)),
    eth_getTransactionReceipt: { status: '0x0' },
  })
  assert.equal(
    await failure(
      payWithWallet(
        invoice({ strategy: 'contract-reference', token_address: USDT, payment_contract: PAY_CONTRACT }),
        '6',
      ),
    ),
    'reverted',
  )

  provider({ ...base, eth_sendTransaction: () => Promise.reject(new Error('execution reverted')) })
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'failed')

  globalThis.window = {}
  assert.equal(await failure(payWithWallet(invoice({}), '1')), 'no_wallet')
})
