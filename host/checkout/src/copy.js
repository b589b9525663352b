// Copying text to the clipboard, with a short-lived state for the button that did it.

import { onBeforeUnmount, ref } from 'vue'

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text)
    return
  }
  // Plain-HTTP pages have no Clipboard API; the selection-based copy still works there.
  const area = document.createElement('textarea')
  area.value = text
  area.setAttribute('readonly', '')
  area.style.position = 'fixed'
  area.style.opacity = '0'
  document.body.appendChild(area)
  area.select()
  const ok = document.execCommand('copy')
  area.remove()
  if (!ok) throw new Error('copy refused')
}

/** `{ state, copy }`: `state` is 'idle', 'copied' or 'failed' (for two seconds). */
export function useCopy() {
  const state = ref('idle')
  let timer
  async function copy(text) {
    try {
      await writeClipboard(text)
      state.value = 'copied'
    } catch {
      state.value = 'failed'
    }
    clearTimeout(timer)
    timer = setTimeout(() => (state.value = 'idle'), 2000)
  }
  onBeforeUnmount(() => clearTimeout(timer))
  return { state, copy }
}
