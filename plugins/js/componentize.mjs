// Compiles a JavaScript plugin to a polypay component with componentize-js:
//
//   node plugins/js/componentize.mjs <entry.js> <out.wasm> [<wit dir>]
//
// The component targets the `plugin` world of the WIT directory (default: the contract
// in development, plugin-sdk/wit/0.2.0). componentize-js embeds StarlingMonkey, whose
// `fetch()` and incoming-handler support import wasi:http; both are disabled, so the
// component imports only polypay's interfaces and the WASI subset the host links
// (io, clocks, random, cli, an empty filesystem) and loads under the host's sandbox.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [entry, out, wit] = process.argv.slice(2);
if (!entry || !out) {
  console.error('usage: node plugins/js/componentize.mjs <entry.js> <out.wasm> [<wit dir>]');
  process.exit(2);
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { component } = await componentize({
  sourcePath: resolve(entry),
  witPath: resolve(wit ?? `${root}/plugin-sdk/wit/0.2.0`),
  worldName: 'plugin',
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir(dirname(resolve(out)), { recursive: true });
await writeFile(resolve(out), component);
