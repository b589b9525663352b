// Builds {{name}}.wasm, a polypay plugin component, from src/plugin.js:
//
//   npm run build                      # the contract in ./wit
//   POLYPAY_WIT=/path/to/wit npm run build
//
// The component targets the `plugin` world of the polypay contract (the directory holding
// plugin.wit, e.g. polypay's plugin-sdk/wit/0.2.0). The engine's `fetch()` and HTTP
// handler are disabled: they would import wasi:http, which the host does not provide (a
// plugin has no network; it asks the host for everything).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const { component } = await componentize({
  sourcePath: 'src/plugin.js',
  witPath: process.env.POLYPAY_WIT ?? 'wit',
  worldName: 'plugin',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile('{{name}}.wasm', component);
console.log(`{{name}}.wasm: ${component.length} bytes`);
