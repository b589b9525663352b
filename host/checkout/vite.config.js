// Built by host/build.rs (`npm run build -- --outDir $OUT_DIR/checkout`) and embedded in
// the polypay binary, which serves index.html at /pay/{invoice_id} and the files under
// /pay/assets/. The relative base makes the page work under any path prefix.
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  base: './',
  plugins: [vue()],
  build: {
    target: 'es2020',
    assetsDir: 'assets',
    // No inlined data: URLs, so the host's Content-Security-Policy can stay strict.
    assetsInlineLimit: 0,
    // The page is small; one chunk is fastest to load.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
})
