// Two languages, English and Simplified Chinese. The first visit follows the browser's
// languages; a choice made with the switch is remembered in localStorage.

import { computed, ref } from 'vue'

const STORAGE_KEY = 'polypay.checkout.lang'
export const LANGUAGES = [
  { code: 'en', label: 'English', short: 'EN' },
  { code: 'zh', label: '中文', short: '中文' },
]

const messages = {
  en: {
    page_title: 'Payment',
    default_title: 'Payment',
    loading: 'Loading invoice…',
    not_found: 'This payment link is not valid.',
    not_found_hint: 'Check the link, or ask the merchant for a new one.',
    load_failed: 'The invoice could not be loaded. Check your connection and try again.',
    retry: 'Try again',
    language: 'Language',
    amount: 'Amount',
    network: 'Network',
    chain_id: 'chain ID {id}',
    pay_to: 'Pay to',
    recipient: 'Recipient',
    payment_contract: 'Payment contract',
    token_contract: 'Token contract',
    copy: 'Copy',
    copied: 'Copied',
    copy_failed: 'Copy failed',
    copy_label: 'Copy {what}',
    qr_label: 'QR code for {what}',
    qr_hint: 'Scan with your wallet app',
    qr_page_hint: 'Scan to open this page in your wallet app’s browser',
    qr_address_hint: 'Scan to get the address',
    expires_in: 'Expires in',
    quote_valid_for: 'Exchange rate held for',
    quote_ended: 'Exchange rate quote ended',
    expired_at: 'Expired',
    pay_with_wallet: 'Pay with wallet',
    pay_with_dev_wallet: 'Pay with the dev wallet',
    dev_wallet_note: 'Development mode: a test account of the local chain pays this invoice. No real money moves.',
    dev_wallet_sent: 'Sent from the dev wallet ({tx}). Waiting for the network to see it…',
    dev_wallet_failed: 'The dev wallet could not pay.',
    exact_amount: 'Send exactly {amount} on {network}. Another amount, token or network may not be credited.',
    contract_note: 'This invoice is paid through the payment contract: use “Pay with wallet”. A plain transfer to the address is not credited.',
    status_pending: 'Waiting for payment',
    status_underpaid: 'Partly paid: {paid} of {amount} received. Pay the remaining {remaining}.',
    status_confirming: 'Payment received. Waiting for confirmations…',
    status_confirming_detail: '{n} confirmations are required.',
    status_paid: 'Payment complete',
    status_paid_detail: 'Thank you. Your payment has been received.',
    status_overpaid: 'More than the amount due was received; contact the merchant about the difference.',
    status_paid_late: 'Your payment arrived after the invoice expired and has been accepted as paid late.',
    status_expired: 'This invoice has expired',
    status_expired_detail: 'Do not send a payment. Ask the merchant for a new invoice.',
    status_cancelled: 'This invoice was cancelled',
    status_cancelled_detail: 'Do not send a payment.',
    redirecting: 'Returning to the merchant in {s} s…',
    return_now: 'Return to merchant',
    transaction: 'Transaction',
    invoice: 'Invoice',
    step_connect: 'Connect your wallet…',
    step_network: 'Checking the network…',
    step_balance: 'Checking your balance…',
    step_approve: 'Approve the payment contract to spend {amount} in your wallet…',
    step_approve_wait: 'Waiting for the approval to be mined…',
    step_confirm: 'Confirm the payment in your wallet…',
    step_sent: 'Payment sent. Waiting for the network to see it…',
    err_no_wallet: 'No wallet found in this browser. Install a wallet extension such as MetaMask, or scan the QR code with a wallet app.',
    err_no_account: 'The wallet did not share an account.',
    err_rejected: 'You cancelled the request in your wallet.',
    err_pending_request: 'Your wallet already has a request waiting. Open the wallet to continue.',
    err_unknown_chain: 'Your wallet does not know {network} (chain ID {id}). Add this network to your wallet, then try again.',
    err_switch_rejected: 'This invoice is on {network}. Switch your wallet to {network} to pay.',
    err_switch_failed: 'Your wallet could not switch to {network} (chain ID {id}). Switch it manually, then try again.',
    err_insufficient: 'Your balance is too low: this payment needs {amount}.',
    err_reverted: 'The transaction failed on chain. No payment was made.',
    err_unsupported: 'This invoice cannot be paid with a browser wallet. Use the address above.',
    err_failed: 'The payment could not be sent. Try again, or pay to the address above.',
    powered_by: 'Secure payment by polypay',
  },
  zh: {
    page_title: '支付',
    default_title: '支付订单',
    loading: '正在加载订单…',
    not_found: '支付链接无效。',
    not_found_hint: '请检查链接，或向商户索取新的支付链接。',
    load_failed: '无法加载订单，请检查网络后重试。',
    retry: '重试',
    language: '语言',
    amount: '金额',
    network: '网络',
    chain_id: '链 ID {id}',
    pay_to: '收款地址',
    recipient: '收款人',
    payment_contract: '支付合约',
    token_contract: '代币合约',
    copy: '复制',
    copied: '已复制',
    copy_failed: '复制失败',
    copy_label: '复制{what}',
    qr_label: '{what}的二维码',
    qr_hint: '使用钱包 App 扫码支付',
    qr_page_hint: '扫码在钱包 App 的浏览器中打开本页面',
    qr_address_hint: '扫码获取收款地址',
    expires_in: '剩余支付时间',
    quote_valid_for: '汇率锁定剩余',
    quote_ended: '汇率锁定已到期',
    expired_at: '已过期',
    pay_with_wallet: '使用钱包支付',
    pay_with_dev_wallet: '使用开发钱包支付',
    dev_wallet_note: '开发模式：由本地测试链上的测试账户支付此订单，不涉及真实资金。',
    dev_wallet_sent: '已从开发钱包发送（{tx}），等待链上确认…',
    dev_wallet_failed: '开发钱包付款失败。',
    exact_amount: '请在 {network} 上转入 {amount}，金额须完全一致。其他金额、代币或网络可能无法到账。',
    contract_note: '此订单须通过支付合约付款：请点击“使用钱包支付”。直接转账到该地址不会入账。',
    status_pending: '等待支付',
    status_underpaid: '部分支付：已收到 {paid}，应付 {amount}。请补付剩余的 {remaining}。',
    status_confirming: '已收到付款，等待区块确认…',
    status_confirming_detail: '需要 {n} 个区块确认。',
    status_paid: '支付成功',
    status_paid_detail: '谢谢，您的付款已到账。',
    status_overpaid: '实收金额超过应付金额，差额请联系商户处理。',
    status_paid_late: '您的付款在订单过期后到账，已按逾期支付入账。',
    status_expired: '订单已过期',
    status_expired_detail: '请勿再付款，请向商户重新获取订单。',
    status_cancelled: '订单已取消',
    status_cancelled_detail: '请勿付款。',
    redirecting: '{s} 秒后返回商户页面…',
    return_now: '返回商户',
    transaction: '交易',
    invoice: '订单',
    step_connect: '请连接钱包…',
    step_network: '正在检查网络…',
    step_balance: '正在检查余额…',
    step_approve: '请在钱包中授权支付合约使用 {amount}…',
    step_approve_wait: '等待授权交易上链…',
    step_confirm: '请在钱包中确认付款…',
    step_sent: '付款已发送，等待链上确认…',
    err_no_wallet: '未检测到浏览器钱包。请安装 MetaMask 等钱包插件，或使用钱包 App 扫描二维码付款。',
    err_no_account: '钱包未提供账户。',
    err_rejected: '您已在钱包中取消了请求。',
    err_pending_request: '钱包中已有待处理的请求，请打开钱包继续。',
    err_unknown_chain: '您的钱包未添加 {network}（链 ID {id}）。请先在钱包中添加该网络后重试。',
    err_switch_rejected: '此订单在 {network} 上。请将钱包切换到 {network} 后付款。',
    err_switch_failed: '钱包无法切换到 {network}（链 ID {id}）。请手动切换后重试。',
    err_insufficient: '余额不足：本次付款需要 {amount}。',
    err_reverted: '链上交易失败，未完成付款。',
    err_unsupported: '此订单无法使用浏览器钱包支付，请向上方地址付款。',
    err_failed: '付款未能发送。请重试，或向上方地址付款。',
    powered_by: '由 polypay 提供安全支付',
  },
}

function initialLocale() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY)
    if (saved && messages[saved]) return saved
  } catch {
    // Storage can be unavailable (private mode, blocked cookies): fall through.
  }
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language || 'en']
  for (const lang of preferred) {
    const code = String(lang).toLowerCase().split('-')[0]
    if (messages[code]) return code
  }
  return 'en'
}

export const locale = ref(initialLocale())

export function setLocale(code) {
  if (!messages[code]) return
  locale.value = code
  try {
    localStorage.setItem(STORAGE_KEY, code)
  } catch {
    // Not remembered, still switched.
  }
}

/** `t('key', { name: value })`: the message in the current language, `{name}` filled in. */
export function t(key, params = {}) {
  const text = messages[locale.value][key] ?? messages.en[key] ?? key
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all))
}

/** The BCP 47 tag for `<html lang>`. */
export const htmlLang = computed(() => (locale.value === 'zh' ? 'zh-CN' : 'en'))
