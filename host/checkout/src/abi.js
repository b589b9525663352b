// A tiny Solidity ABI encoder: exactly the calls the checkout page makes, nothing more.
// Selectors are the first 4 bytes of keccak256(signature); the host's unit tests check
// each one below against keccak256 and its integration tests compare the calldata with
// alloy's encoder, so a typo here cannot reach a payer's wallet.

export const SELECTORS = {
  'transfer(address,uint256)': 'a9059cbb',
  'approve(address,uint256)': '095ea7b3',
  'balanceOf(address)': '70a08231',
  'allowance(address,address)': 'dd62ed3e',
  'pay(string,address,uint256)': '0a90e179',
}

const WORD = 64 // hex characters in one 32-byte word

function word(hex) {
  if (hex.length > WORD) throw new Error('value does not fit in 32 bytes')
  return hex.padStart(WORD, '0')
}

/** A 20-byte address, left-padded to a word. */
export function encodeAddress(address) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new Error(`not an address: ${address}`)
  return word(address.slice(2).toLowerCase())
}

/** A uint256 from a BigInt or a decimal string of base units. */
export function encodeUint(value) {
  const n = BigInt(value)
  if (n < 0n || n >= 1n << 256n) throw new Error(`not a uint256: ${value}`)
  return word(n.toString(16))
}

function utf8Hex(text) {
  return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, '0')).join('')
}

/** The tail of a dynamic `string`: its byte length, then the bytes padded to whole words. */
function encodeStringTail(text) {
  const hex = utf8Hex(text)
  const padded = hex.padEnd(Math.ceil(hex.length / WORD) * WORD, '0')
  return encodeUint(hex.length / 2) + padded
}

function call(signature, body) {
  return '0x' + SELECTORS[signature] + body
}

export const transferData = (to, amount) =>
  call('transfer(address,uint256)', encodeAddress(to) + encodeUint(amount))

export const approveData = (spender, amount) =>
  call('approve(address,uint256)', encodeAddress(spender) + encodeUint(amount))

export const balanceOfData = (owner) => call('balanceOf(address)', encodeAddress(owner))

export const allowanceData = (owner, spender) =>
  call('allowance(address,address)', encodeAddress(owner) + encodeAddress(spender))

/** `pay(string invoice_id, address recipient, uint256 amount)` of the payment contract. */
export function payData(invoiceId, recipient, amount) {
  // Three head words; the string's head is the offset of its tail (3 * 32 bytes).
  const head = encodeUint(3 * 32) + encodeAddress(recipient) + encodeUint(amount)
  return call('pay(string,address,uint256)', head + encodeStringTail(invoiceId))
}

/** A uint256 returned by eth_call (`0x` + one word), as a BigInt. */
export function decodeUint(hex) {
  if (typeof hex !== 'string' || !/^0x[0-9a-fA-F]*$/.test(hex)) throw new Error('malformed eth_call result')
  if (hex.length < 2 + WORD) throw new Error('empty eth_call result: is the token contract on this network?')
  return BigInt(hex.slice(0, 2 + WORD))
}
