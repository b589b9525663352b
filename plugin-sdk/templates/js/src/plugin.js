// {{name}}: a polypay dialect plugin. The host calls three exports:
// - manifest(): the routes the plugin claims and the credentials its merchants get;
// - handle(request): one HTTP request, on a fresh instance;
// - renderWebhook(event, attempt): the callback for an invoice event (or none);
// - renderLedgerWebhook(event, attempt): the callback for a ledger order event (or none).
// Everything else (merchants, invoices, signing with secrets) is a host import from the
// `polypay:plugin` contract; a failed host call throws, its `payload` the host-error.

import { authenticate, listCredentials } from 'polypay:plugin/merchants@0.2.0';
import { hmacSha256Sign } from 'polypay:plugin/crypto@0.2.0';
import { bearerToken, callbackBody, hex, json } from './rules.js';
import { OPENAPI } from './openapi.js';

const KIND = 'api-key';
const HELLO = '/v1/hello';

export function manifest() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    routes: [{ methods: ['GET'], path: HELLO }],
    settingsSchema: undefined,
    // What `polypay merchant create --plugin {{name}}` issues: one API key.
    credentials: [{ kind: KIND, secret: { prefix: '', encoding: 'hex', bytes: 32 }, publicId: undefined }],
    // The OpenAPI 3 document the host serves at /polypay/plugins/{{name}}/openapi.json.
    openapi: JSON.stringify(OPENAPI),
  };
}

export function handle(request) {
  if (request.route === HELLO) return hello(request);
  return json(404, { error: 'not found' });
}

/** An authenticated route: who is calling. */
function hello(request) {
  const token = bearerToken(request.headers);
  if (token === null) return json(401, { error: 'missing bearer token' });
  let credential;
  try {
    credential = authenticate(KIND, token);
  } catch (e) {
    const tag = e?.payload?.tag;
    if (tag === 'unauthorized' || tag === 'not-found') return json(401, { error: 'unknown token' });
    throw e;
  }
  return json(200, { merchant_id: credential.merchantId });
}

/** Every status change of an invoice with a notify url: POSTed, signed with the API key. */
export function renderWebhook(event, attempt) {
  if (event.kind !== 'status-changed') return undefined;
  const credential = listCredentials(event.invoice.merchantId).find((c) => c.kind === KIND);
  if (credential === undefined) return undefined;
  const body = new TextEncoder().encode(callbackBody(event.invoice));
  const signature = hex(hmacSha256Sign(credential.id, body));
  return {
    request: {
      method: 'POST',
      url: event.url,
      headers: [
        ['content-type', 'application/json'],
        ['x-signature', `sha256=${signature}`],
      ],
      body,
    },
    accept: { tag: 'any-success' },
    // Up to 5 attempts, 10 s, 20 s, 40 s, 80 s apart.
    retryAfterSecs: attempt < 5 ? 10 * 2 ** (attempt - 1) : undefined,
  };
}

/** Callbacks of the custodial ledger's orders; this plugin uses no ledger. */
export function renderLedgerWebhook(_event, _attempt) {
  return undefined;
}
