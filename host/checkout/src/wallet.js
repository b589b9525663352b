// Paying through an injected EIP-1193 wallet (`window.ethereum`).
//
// The flow: ask for an account, make sure the wallet is on the invoice's chain (switch if
// not), check the balance so a payer learns of a shortfall before signing anything, then
// send the payment the invoice's strategy calls for:
//   - contract-reference: ERC20 approve(paymentContract, amount) if the allowance is short,
//     wait for it to be mined, then paymentContract.pay(pay_reference, recipient, amount);
//   - otherwise a native transfer, or an ERC20 transfer(to, amount).
// Every failure becomes a WalletError whose `kind` the page translates; the page never
// shows a raw provider error alone.
//
// The page does not treat a sent transaction as payment: the host's chain listener
// decides, and the page follows the invoice's status.

import { allowanceData, approveData, balanceOfData, decodeUint, payData, transferData } from './abi.js'

/** A failure the page explains to the payer; `kind` selects the message. */
export class WalletError extends Error {
  constructor(kind, detail = '') {
    super(detail || kind)
    this.kind = kind
    this.detail = detail
  }
}

const USER_REJECTED = 4001
const UNAUTHORIZED = 4100
const UNKNOWN_CHAIN = 4902
const REQUEST_PENDING = -32002

const hexChainId = (id) => '0x' + BigInt(id).toString(16)
const hexQuantity = (value) => '0x' + BigInt(value).toString(16)

/** The injected provider, if any. */
export function injectedProvider() {
  return typeof window !== 'undefined' && window.ethereum && typeof window.ethereum.request === 'function'
    ? window.ethereum
    : null
}

function errorCode(e) {
  // Some wallets wrap the EIP-1193 error (e.g. `{ data: { originalError } }`).
  return e?.code ?? e?.data?.originalError?.code ?? e?.cause?.code
}

/** Maps a provider error to a WalletError (`fallback` names what was being done). */
function classify(e, fallback = 'failed') {
  if (e instanceof WalletError) return e
  const code = errorCode(e)
  if (code === USER_REJECTED || code === UNAUTHORIZED) return new WalletError('rejected')
  if (code === REQUEST_PENDING) return new WalletError('pending_request')
  return new WalletError(fallback, e?.message ? String(e.message) : String(e))
}

async function request(provider, method, params, fallback) {
  try {
    return await provider.request(params === undefined ? { method } : { method, params })
  } catch (e) {
    throw classify(e, fallback)
  }
}

async function ensureChain(provider, chainId) {
  const wanted = hexChainId(chainId)
  const current = await request(provider, 'eth_chainId', undefined)
  if (BigInt(current) === BigInt(wanted)) return
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: wanted }] })
  } catch (e) {
    const code = errorCode(e)
    if (code === UNKNOWN_CHAIN) throw new WalletError('unknown_chain')
    if (code === USER_REJECTED) throw new WalletError('switch_rejected')
    throw new WalletError('switch_failed', e?.message ? String(e.message) : '')
  }
  const after = await request(provider, 'eth_chainId', undefined)
  if (BigInt(after) !== BigInt(wanted)) throw new WalletError('switch_failed')
}

async function tokenCall(provider, token, data) {
  const result = await request(provider, 'eth_call', [{ to: token, data }, 'latest'])
  try {
    return decodeUint(result)
  } catch (e) {
    throw new WalletError('failed', e.message)
  }
}

async function waitForReceipt(provider, hash, { interval = 1500, timeout = 10 * 60 * 1000 } = {}) {
  const deadline = Date.now() + timeout
  while (Date.now() < deadline) {
    const receipt = await request(provider, 'eth_getTransactionReceipt', [hash])
    if (receipt) {
      if (receipt.status !== undefined && BigInt(receipt.status) === 0n) throw new WalletError('reverted', hash)
      return receipt
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
  throw new WalletError('failed', `transaction ${hash} was not mined in time`)
}

/**
 * Pays `invoice` (the host's checkout view) with the injected wallet. `amount` is the
 * base-unit amount to pay (the remaining due). `onStep(step, detail)` reports progress:
 * 'connect', 'network', 'balance', 'approve', 'approve_wait', 'confirm', 'sent'.
 * Resolves with the payment transaction's hash; throws a WalletError.
 */
export async function payWithWallet(invoice, amount, onStep = () => {}) {
  const provider = injectedProvider()
  if (!provider) throw new WalletError('no_wallet')
  if (invoice.chain_id == null) throw new WalletError('unsupported')
  const value = BigInt(amount)

  onStep('connect')
  const accounts = await request(provider, 'eth_requestAccounts', undefined)
  const from = Array.isArray(accounts) ? accounts[0] : undefined
  if (!from) throw new WalletError('no_account')

  onStep('network')
  await ensureChain(provider, invoice.chain_id)

  onStep('balance')
  const token = invoice.token_address
  const balance = token
    ? await tokenCall(provider, token, balanceOfData(from))
    : BigInt(await request(provider, 'eth_getBalance', [from, 'latest']))
  if (balance < value) throw new WalletError('insufficient')

  let tx
  if (invoice.strategy === 'contract-reference') {
    if (!token || !invoice.payment_contract) throw new WalletError('unsupported')
    const allowance = await tokenCall(provider, token, allowanceData(from, invoice.payment_contract))
    if (allowance < value) {
      onStep('approve')
      const approveHash = await request(provider, 'eth_sendTransaction', [
        { from, to: token, data: approveData(invoice.payment_contract, value) },
      ])
      onStep('approve_wait', approveHash)
      await waitForReceipt(provider, approveHash)
    }
    tx = { from, to: invoice.payment_contract, data: payData(invoice.pay_reference, invoice.pay_address, value) }
  } else if (token) {
    tx = { from, to: token, data: transferData(invoice.pay_address, value) }
  } else {
    tx = { from, to: invoice.pay_address, value: hexQuantity(value) }
  }
  onStep('confirm')
  const hash = await request(provider, 'eth_sendTransaction', [tx])
  onStep('sent', hash)
  return hash
}
