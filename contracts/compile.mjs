// Compiles contracts/src/*.sol with the solc-js version pinned in the root
// package.json and writes one artifact per contract to contracts/artifacts/
// (`{ contractName, sourceName, compiler, abi, bytecode }`). Run from the
// repository root: `npm run compile-contracts` (see contracts/README.md).
// The output is deterministic: re-running it without source changes leaves
// the artifacts byte-for-byte identical.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')

const here = path.dirname(fileURLToPath(import.meta.url))
const srcDir = path.join(here, 'src')
const outDir = path.join(here, 'artifacts')

const sources = {}
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[`src/${file}`] = { content: fs.readFileSync(path.join(srcDir, file), 'utf8') }
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    // Paris keeps the bytecode free of PUSH0/MCOPY so any EVM chain polypay
    // targets (and any anvil hardfork) can run it.
    evmVersion: 'paris',
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: the bytecode then depends only on the source text.
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
}

const output = JSON.parse(solc.compile(JSON.stringify(input)))
const errors = (output.errors ?? []).filter((e) => e.severity === 'error')
for (const e of output.errors ?? []) console.error(e.formattedMessage)
if (errors.length > 0) process.exit(1)

fs.mkdirSync(outDir, { recursive: true })
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  for (const [contractName, c] of Object.entries(contracts)) {
    if (c.evm.bytecode.object.length === 0) continue // interfaces
    const artifact = {
      contractName,
      sourceName,
      compiler: `solc-js ${solc.version()}`,
      abi: c.abi,
      bytecode: `0x${c.evm.bytecode.object}`,
    }
    const file = path.join(outDir, `${contractName}.json`)
    fs.writeFileSync(file, JSON.stringify(artifact, null, 2) + '\n')
    console.log(`wrote ${path.relative(process.cwd(), file)}`)
  }
}
