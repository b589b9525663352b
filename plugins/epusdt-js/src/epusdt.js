// The epusdt dialect's pure rules: reading a request body (with the literal text of its
// numbers), the string a signature covers, amounts, statuses and the envelope. No host
// imports here, so `node --test` runs it as is.

/** A JSON number written from its decimal text, never through a float. */
export class RawNumber {
  constructor(text) {
    this.text = text;
  }
}

/** JSON text of `value`; `RawNumber`s are written verbatim. */
export function toJson(value) {
  if (value instanceof RawNumber) return value.text;
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (typeof value === 'object') {
    const fields = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Why a body could not be read (epusdt's 10009, "cannot parse the parameters"). */
export class BodyError extends Error {}

/**
 * The top-level members of a JSON object body: `{ key: { value, raw } }`, where `raw` is
 * the literal text of a number value (so `42.50` stays "42.50"). The last of duplicate
 * keys wins, as in `JSON.parse` and Go's decoder.
 */
export function readBody(text) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BodyError('body is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BodyError('body is not a JSON object');
  }
  const raws = topLevelNumberLiterals(text);
  const members = {};
  for (const [key, value] of Object.entries(parsed)) {
    members[key] = { value, raw: typeof value === 'number' ? raws.get(key) : undefined };
  }
  return members;
}

/** Literal text of each top-level number member of the (valid) JSON object `text`. */
function topLevelNumberLiterals(text) {
  const out = new Map();
  let depth = 0;
  let i = 0;
  let key = null;
  let expectValue = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && !expectValue) key = JSON.parse(text.slice(i, j + 1));
      expectValue = false;
      i = j + 1;
    } else if (c === '{' || c === '[') {
      depth += 1;
      expectValue = false;
      i += 1;
    } else if (c === '}' || c === ']') {
      depth -= 1;
      i += 1;
    } else if (c === ':') {
      expectValue = depth === 1;
      i += 1;
    } else if (c === ',') {
      expectValue = false;
      i += 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i;
      while (j < text.length && /[-+0-9.eE]/.test(text[j])) j += 1;
      if (depth === 1 && expectValue) out.set(key, text.slice(i, j));
      expectValue = false;
      i = j;
    } else {
      i += 1;
    }
  }
  return out;
}

/**
 * A plain decimal literal (`42`, `42.50`, `0.5`) in canonical form: no leading zeros, no
 * trailing fractional zeros (what Go's `FormatFloat(f, 'f', -1, 64)` prints for the same
 * value, which is what epusdt signs). Null for anything else: a sign, an exponent, more
 * than 15 significant digits (beyond what a float64 carries exactly).
 */
export function canonicalDecimal(literal) {
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(literal);
  if (!m) return null;
  const whole = m[1];
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  const digits = (whole === '0' ? '' : whole) + fraction;
  if (digits.replace(/^0+/, '').length > 15) return null;
  return fraction ? `${whole}.${fraction}` : whole;
}

/** A CNY amount as epusdt takes it: > 0, at most 2 decimals; its canonical text or null. */
export function cnyAmount(literal) {
  const text = canonicalDecimal(literal);
  if (text === null || /^0(\.0*)?$/.test(text)) return null;
  const fraction = text.split('.')[1] ?? '';
  if (fraction.length > 2 || text.split('.')[0].length > 12) return null;
  return text;
}

/**
 * The strings epusdt's MD5 covers for a request: `k=v` of every member but `signature`,
 * sorted by key, joined with `&` (the secret token is appended by the host). Members
 * that are null are left out; numbers are signed in canonical form. The documented form
 * leaves out empty strings too, while epusdt's server signs them as `k=`: both are
 * returned (the second only when they differ) and either is accepted.
 * Null when a member cannot be signed (an object, array, boolean, or a number with an
 * exponent), which epusdt answers as a signature error.
 */
export function requestSignStrings(members) {
  const pairs = [];
  for (const key of Object.keys(members).sort()) {
    if (key === 'signature') continue;
    const { value, raw } = members[key];
    if (value === null) continue;
    if (typeof value === 'string') {
      pairs.push([key, value]);
    } else if (typeof value === 'number') {
      const text = canonicalDecimal(raw.replace(/^-/, ''));
      if (text === null) return null;
      pairs.push([key, raw.startsWith('-') ? `-${text}` : text]);
    } else {
      return null;
    }
  }
  const join = (list) => list.map(([k, v]) => `${k}=${v}`).join('&');
  const documented = join(pairs.filter(([, v]) => v !== ''));
  const withEmpty = join(pairs);
  return documented === withEmpty ? [documented] : [documented, withEmpty];
}

/** The string a callback's MD5 covers (before the token): its fields but `signature`, sorted. */
export function callbackSignString(fields) {
  return Object.keys(fields)
    .filter((k) => k !== 'signature')
    .sort()
    .map((k) => {
      const v = fields[k];
      return `${k}=${v instanceof RawNumber ? v.text : String(v)}`;
    })
    .join('&');
}

/** epusdt order statuses. */
export const STATUS_WAITING = 1;
export const STATUS_SUCCESS = 2;
export const STATUS_EXPIRED = 3;

/**
 * Host lifecycle → epusdt status. `confirming` stays waiting: epusdt reports success
 * once, and a merchant ships on it.
 */
export function epusdtStatus(hostStatus) {
  switch (hostStatus) {
    case 'paid':
      return STATUS_SUCCESS;
    case 'expired':
    case 'cancelled':
      return STATUS_EXPIRED;
    default:
      return STATUS_WAITING;
  }
}

/** epusdt's error codes and their texts. */
export const ERRORS = {
  400: '系统错误',
  401: '签名认证错误',
  10002: '支付交易已存在，请勿重复创建',
  10003: '无可用钱包地址，无法发起支付',
  10004: '支付金额有误, 无法满足最小支付单位',
  10005: '无可用金额通道',
  10006: '汇率计算错误',
  10008: '订单不存在',
  10009: '无法解析参数',
};

/** The envelope of every answer: `{status_code, message, data, request_id}`. */
export function envelope(statusCode, message, data, requestId) {
  return toJson({ status_code: statusCode, message, data, request_id: requestId });
}

/** Lower-case hex of bytes. */
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Bytes of a hex string of even length; null if it is not one. */
export function unhex(text) {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
