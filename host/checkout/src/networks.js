// Display names of well-known EVM networks by chain id; other networks show the name the
// operator gave them in the host's config.

const NAMES = {
  1: 'Ethereum',
  5: 'Goerli',
  10: 'OP Mainnet',
  56: 'BNB Smart Chain',
  97: 'BNB Smart Chain Testnet',
  137: 'Polygon',
  250: 'Fantom',
  8453: 'Base',
  42161: 'Arbitrum One',
  43114: 'Avalanche C-Chain',
  80002: 'Polygon Amoy',
  11155111: 'Sepolia',
}

export function networkName(view) {
  if (view.chain_id != null && NAMES[view.chain_id]) return NAMES[view.chain_id]
  const name = String(view.network || '')
  return name.charAt(0).toUpperCase() + name.slice(1)
}
