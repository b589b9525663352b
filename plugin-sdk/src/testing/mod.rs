//! Unit-test a plugin natively, without the server.
//!
//! [`Harness`] runs a [`Plugin`]'s router in-process against [`FakeHost`], an
//! in-memory host that follows the real host's scoping rules closely enough for
//! dialect tests: a request starts unauthenticated, `authenticate*` scopes it to
//! a merchant, and invoices are visible read-only when unauthenticated.
//!
//! ```
//! use polypay_plugin_sdk::prelude::*;
//! use polypay_plugin_sdk::testing::Harness;
//!
//! struct Ping;
//! impl Plugin for Ping {
//!     const NAME: &'static str = "ping";
//!     const VERSION: &'static str = "0.1.0";
//!     fn router() -> Router {
//!         Router::new().get("/ping/{who}", |req: &Request| {
//!             Response::json(200, &serde_json::json!({ "pong": req.param("who") }))
//!         })
//!     }
//! }
//!
//! let harness = Harness::<Ping>::new();
//! let response = harness.get("/ping/alice").send();
//! assert_eq!(response.status, 200);
//! assert_eq!(response.body_text(), r#"{"pong":"alice"}"#);
//! assert_eq!(harness.get("/nope").send().status, 404);
//! ```
//!
//! Seed data with the `FakeHost` methods (`add_merchant`, `issue`,
//! `set_now`, ...) and assert on what the plugin did through it
//! (`invoices()`, `logs()`).

mod money;

use crate::Plugin;
use crate::bindings::polypay::plugin::types::HostError;
use crate::host::{Host, chains, crypto, invoices, log, merchants, rate_limit, webhooks};
use crate::http::{Request, Response};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

/// What `P`'s OpenAPI document ([`Plugin::openapi`]) lacks: every route of its router
/// (as `"METHOD /pattern"`) with no operation in the document, or why the document is
/// not one (not JSON, no `openapi: "3.x"`, no `paths`). Empty when it documents every
/// route. A route's `{*rest}` is documented as `{rest}`. The host checks the document
/// fully (it must parse as OpenAPI 3) when it loads the plugin.
pub fn undocumented_routes<P: Plugin>() -> Vec<String> {
    let Some(text) = P::openapi() else {
        return vec!["the plugin ships no OpenAPI document".into()];
    };
    let document: serde_json::Value = match serde_json::from_str(text) {
        Ok(document) => document,
        Err(e) => return vec![format!("the OpenAPI document is not JSON: {e}")],
    };
    if !document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3."))
    {
        return vec!["the document has no `openapi: \"3.x.y\"`".into()];
    }
    let Some(paths) = document["paths"].as_object() else {
        return vec!["the document has no `paths`".into()];
    };
    let mut missing = Vec::new();
    for route in P::router().routes() {
        let item = paths.get(&route.path.replace("{*", "{"));
        for method in &route.methods {
            if item
                .and_then(|i| i.get(method.to_ascii_lowercase()))
                .is_none()
            {
                missing.push(format!("{method} {}", route.path));
            }
        }
    }
    missing
}

thread_local! {
    static INSTALLED: RefCell<Option<Rc<dyn Host>>> = const { RefCell::new(None) };
}

/// Runs `f` with the host installed by the harness on this thread.
pub(crate) fn with_installed_host<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    let host = INSTALLED.with(|h| h.borrow().clone()).expect(
        "no polypay host on this thread: host functions only work inside the component \
         or inside polypay_plugin_sdk::testing::Harness",
    );
    f(&*host)
}

/// Installs `host` for the duration of `f` (nesting restores the previous one).
pub fn with_host<R>(host: Rc<dyn Host>, f: impl FnOnce() -> R) -> R {
    let previous = INSTALLED.with(|h| h.replace(Some(host)));
    struct Restore(Option<Rc<dyn Host>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            INSTALLED.with(|h| *h.borrow_mut() = prev);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Drives a plugin's router and webhook rendering against a [`FakeHost`].
pub struct Harness<P: Plugin> {
    host: Rc<FakeHost>,
    _plugin: PhantomData<P>,
}

impl<P: Plugin> Default for Harness<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> Harness<P> {
    pub fn new() -> Self {
        Harness {
            host: Rc::new(FakeHost::new(P::NAME)),
            _plugin: PhantomData,
        }
    }

    /// The fake host, to seed data and inspect what the plugin did.
    pub fn host(&self) -> &FakeHost {
        &self.host
    }

    pub fn request(&self, method: &str, path_and_query: &str) -> TestRequest<'_, P> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        TestRequest {
            harness: self,
            request: Request {
                request_id: "test-request".into(),
                method: method.to_ascii_uppercase(),
                path: path.into(),
                query: query.into(),
                ..Default::default()
            },
        }
    }

    pub fn get(&self, path_and_query: &str) -> TestRequest<'_, P> {
        self.request("GET", path_and_query)
    }

    pub fn post(&self, path_and_query: &str) -> TestRequest<'_, P> {
        self.request("POST", path_and_query)
    }

    /// The manifest the plugin would give the host.
    pub fn manifest(&self) -> crate::Manifest {
        crate::__private::manifest::<P>()
    }

    /// Renders the webhook for `event` as the host's webhook worker would:
    /// authenticated as the invoice's merchant.
    pub fn render_webhook(
        &self,
        event: crate::host::webhooks::InvoiceEvent,
        attempt: u32,
    ) -> Option<crate::host::webhooks::WebhookDelivery> {
        self.host
            .begin_request(Some(event.invoice.merchant_id.clone()));
        with_host(self.host.clone(), || P::render_webhook(&event, attempt))
    }
}

/// A request being built by a test; [`TestRequest::send`] serves it.
pub struct TestRequest<'h, P: Plugin> {
    harness: &'h Harness<P>,
    request: Request,
}

impl<P: Plugin> TestRequest<'_, P> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    pub fn json<T: serde::Serialize>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serializable test body");
        self.header("content-type", "application/json").body(body)
    }

    /// Serves the request like the host would: unknown path → 404, wrong
    /// method → 405, otherwise the plugin handles it on a fresh request scope.
    pub fn send(self) -> Response {
        let router = P::router();
        let mut request = self.request;
        let Some((route, params)) = router.resolve(&request.method, &request.path) else {
            let any_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .iter()
                .any(|m| router.resolve(m, &request.path).is_some());
            return Response::new(if any_method { 405 } else { 404 });
        };
        request.route = route;
        request.params = params;
        self.harness.host.begin_request(None);
        with_host(self.harness.host.clone(), || router.dispatch(&request))
    }
}

#[derive(Default)]
struct State {
    merchants: Vec<merchants::Merchant>,
    credentials: Vec<(merchants::Credential, String, bool)>,
    invoices: Vec<invoices::Invoice>,
    /// (merchant, idempotency key) → (the request as created, invoice id).
    idempotency: HashMap<(String, String), (String, String)>,
    kv: HashMap<String, (Vec<u8>, Option<i64>)>,
    windows: HashMap<String, (i64, u32)>,
    logs: Vec<(log::Level, String)>,
    networks: Vec<chains::NetworkInfo>,
    webhook_stats: Option<webhooks::DeliveryStats>,
    authenticated: Option<String>,
    default_merchant: Option<String>,
    settings: String,
    seq: u64,
}

/// An in-memory [`Host`] for plugin unit tests.
pub struct FakeHost {
    name: String,
    now: Cell<i64>,
    rng: Cell<u64>,
    state: RefCell<State>,
}

impl FakeHost {
    pub fn new(plugin_name: &str) -> Self {
        FakeHost {
            name: plugin_name.to_owned(),
            now: Cell::new(1_700_000_000_000),
            rng: Cell::new(0x9e37_79b9_7f4a_7c15),
            state: RefCell::new(State {
                settings: "{}".into(),
                ..Default::default()
            }),
        }
    }

    /// Sets the plugin's settings JSON.
    pub fn set_settings(&self, settings: serde_json::Value) {
        self.state.borrow_mut().settings = settings.to_string();
    }

    /// Sets the clock (ms since the Unix epoch).
    pub fn set_now(&self, now_ms: i64) {
        self.now.set(now_ms);
    }

    /// Adds a merchant and returns its id.
    pub fn add_merchant(&self, name: &str) -> String {
        let mut s = self.state.borrow_mut();
        s.seq += 1;
        let id = format!("merchant-{}", s.seq);
        s.merchants.push(merchants::Merchant {
            id: id.clone(),
            name: name.into(),
            plugin_data: "{}".into(),
            created_at: self.now.get(),
        });
        id
    }

    /// Makes `merchant_id` the operator default merchant (unauthenticated invoice creation).
    pub fn set_default_merchant(&self, merchant_id: &str) {
        self.state.borrow_mut().default_merchant = Some(merchant_id.into());
    }

    /// Adds a credential with a known secret; returns the credential id.
    pub fn add_credential(
        &self,
        merchant_id: &str,
        kind: &str,
        public_id: Option<&str>,
        secret: &str,
    ) -> String {
        let mut s = self.state.borrow_mut();
        s.seq += 1;
        let id = format!("credential-{}", s.seq);
        s.credentials.push((
            merchants::Credential {
                id: id.clone(),
                merchant_id: merchant_id.into(),
                kind: kind.into(),
                public_id: public_id.map(str::to_owned),
                created_at: self.now.get(),
            },
            secret.into(),
            true,
        ));
        id
    }

    /// Adds a configured network. Its assets' decimals are what `money`, `price.decimal`
    /// and the invoices' `-decimal` fields use; `money` and `price.decimal` refuse an
    /// asset no added network has, like the host (an invoice priced in base units of an
    /// unknown asset is accepted, with 6 decimals, so tests need not configure networks).
    pub fn add_network(&self, network: chains::NetworkInfo) {
        self.state.borrow_mut().networks.push(network);
    }

    /// What `webhooks.stats` answers (for any `days`, which it echoes). Without it, all
    /// counts are zero.
    pub fn set_webhook_stats(&self, stats: webhooks::DeliveryStats) {
        self.state.borrow_mut().webhook_stats = Some(stats);
    }

    /// The decimals of `asset` on `chain`, or the host's `unsupported`.
    fn asset_decimals(&self, chain: &str, asset: &str) -> Result<u8, HostError> {
        let s = self.state.borrow();
        let network = s
            .networks
            .iter()
            .find(|n| n.name == chain)
            .ok_or_else(|| HostError::Unsupported(format!("unknown chain `{chain}`")))?;
        network
            .assets
            .iter()
            .find(|a| a.symbol == asset)
            .map(|a| a.decimals)
            .ok_or_else(|| {
                HostError::Unsupported(format!("chain `{chain}` has no asset `{asset}`"))
            })
    }

    /// All invoices, in creation order.
    pub fn invoices(&self) -> Vec<invoices::Invoice> {
        self.state.borrow().invoices.clone()
    }

    /// Changes an invoice as the chain would (status, paid amount, tx hash).
    pub fn update_invoice(&self, id: &str, f: impl FnOnce(&mut invoices::Invoice)) {
        let mut s = self.state.borrow_mut();
        let invoice = s
            .invoices
            .iter_mut()
            .find(|i| i.id == id)
            .expect("known invoice id");
        f(invoice);
        // The host formats the decimal forms from the base units: keep them in step.
        for (units, decimal) in [
            (&invoice.amount_due, &mut invoice.amount_due_decimal),
            (&invoice.amount_paid, &mut invoice.amount_paid_decimal),
        ] {
            if let Ok(formatted) = money::to_decimal(units, invoice.decimals) {
                *decimal = formatted;
            }
        }
    }

    /// Log lines the plugin wrote.
    pub fn logs(&self) -> Vec<(log::Level, String)> {
        self.state.borrow().logs.clone()
    }

    fn begin_request(&self, merchant: Option<String>) {
        self.state.borrow_mut().authenticated = merchant;
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut s = self.state.borrow_mut();
        s.seq += 1;
        format!("{prefix}-{}", s.seq)
    }

    fn authenticated(&self) -> Result<String, HostError> {
        self.state
            .borrow()
            .authenticated
            .clone()
            .ok_or(HostError::Unauthorized)
    }

    fn secret_of(&self, credential_id: &str) -> Result<String, HostError> {
        let me = self.authenticated()?;
        let s = self.state.borrow();
        let (c, secret, _) = s
            .credentials
            .iter()
            .find(|(c, _, live)| c.id == credential_id && *live)
            .ok_or(HostError::NotFound)?;
        if c.merchant_id != me {
            return Err(HostError::NotFound);
        }
        Ok(secret.clone())
    }

    fn own_invoice(&self, id: &str) -> Result<usize, HostError> {
        let me = self.authenticated()?;
        let s = self.state.borrow();
        s.invoices
            .iter()
            .position(|i| i.id == id && i.merchant_id == me)
            .ok_or(HostError::NotFound)
    }

    fn visible(&self, invoice: &invoices::Invoice) -> bool {
        match &self.state.borrow().authenticated {
            Some(me) => &invoice.merchant_id == me,
            None => true,
        }
    }

    fn filtered(&self, filter: &invoices::InvoiceFilter) -> Vec<invoices::Invoice> {
        let me = self.state.borrow().authenticated.clone();
        let mut out: Vec<_> = self
            .state
            .borrow()
            .invoices
            .iter()
            .filter(|i| me.as_deref().is_none_or(|m| i.merchant_id == m))
            .filter(|i| filter.statuses.is_empty() || filter.statuses.contains(&i.status))
            .filter(|i| filter.chain.as_ref().is_none_or(|c| &i.chain == c))
            .filter(|i| filter.asset.as_ref().is_none_or(|a| &i.asset == a))
            .filter(|i| filter.created_from.is_none_or(|t| i.created_at >= t))
            .filter(|i| filter.created_to.is_none_or(|t| i.created_at < t))
            .filter(|i| {
                filter.merchant_order_id_prefix.as_ref().is_none_or(|p| {
                    i.merchant_order_id
                        .as_deref()
                        .is_some_and(|o| o.starts_with(p.as_str()))
                })
            })
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

fn digest(algorithm: crypto::DigestAlgorithm, data: &[u8]) -> Vec<u8> {
    match algorithm {
        crypto::DigestAlgorithm::Md5 => Md5::digest(data).to_vec(),
        crypto::DigestAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
        crypto::DigestAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Most secret-bearing parts and largest message of a digest over a secret: the real
/// host's limits.
const MAX_SECRET_PARTS: usize = 16;
const MAX_DIGEST_INPUT: usize = 1 << 20;

/// The digest of `parts` concatenated, under the real host's rules: no empty list, no
/// empty `bytes` part, at least one and at most [`MAX_SECRET_PARTS`] secret-bearing
/// parts, at most [`MAX_DIGEST_INPUT`] bytes in all.
fn digest_parts(
    algorithm: crypto::DigestAlgorithm,
    parts: &[crypto::DigestPart],
    secret: &str,
) -> Result<Vec<u8>, HostError> {
    let invalid = |why: &str| Err(HostError::Invalid(why.to_owned()));
    if parts.is_empty() {
        return invalid("a digest over a secret needs parts");
    }
    let mut message = Vec::new();
    let mut secret_parts = 0;
    for part in parts {
        match part {
            crypto::DigestPart::Bytes(b) if b.is_empty() => {
                return invalid("empty `bytes` parts are refused: leave them out");
            }
            crypto::DigestPart::Bytes(b) => message.extend_from_slice(b),
            crypto::DigestPart::Secret => {
                secret_parts += 1;
                message.extend_from_slice(secret.as_bytes())
            }
            crypto::DigestPart::SecretDigestHex(a) => {
                secret_parts += 1;
                message.extend_from_slice(crate::hex(&digest(*a, secret.as_bytes())).as_bytes())
            }
        }
        if message.len() > MAX_DIGEST_INPUT {
            return invalid("a digest over a secret covers at most 1 MiB");
        }
    }
    if secret_parts == 0 {
        return invalid("a digest over a secret needs a `secret` or `secret-digest-hex` part");
    }
    if secret_parts > MAX_SECRET_PARTS {
        return invalid("at most 16 secret-bearing parts per digest");
    }
    Ok(digest(algorithm, &message))
}

fn hmac(secret: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

impl Host for FakeHost {
    fn settings(&self) -> String {
        self.state.borrow().settings.clone()
    }
    fn plugin_name(&self) -> String {
        self.name.clone()
    }

    fn authenticate(
        &self,
        kind: &str,
        presented_secret: &str,
    ) -> Result<merchants::Credential, HostError> {
        let found = self
            .state
            .borrow()
            .credentials
            .iter()
            .find(|(c, secret, live)| *live && c.kind == kind && secret == presented_secret)
            .map(|(c, _, _)| c.clone());
        let credential = found.ok_or(HostError::Unauthorized)?;
        self.state.borrow_mut().authenticated = Some(credential.merchant_id.clone());
        Ok(credential)
    }

    fn authenticate_signed(
        &self,
        kind: &str,
        public_id: &str,
        proof: &merchants::Proof,
    ) -> Result<merchants::Credential, HostError> {
        let found = self
            .state
            .borrow()
            .credentials
            .iter()
            .find(|(c, _, live)| {
                *live && c.kind == kind && c.public_id.as_deref() == Some(public_id)
            })
            .map(|(c, secret, _)| (c.clone(), secret.clone()));
        let (credential, secret) = found.ok_or(HostError::Unauthorized)?;
        let ok = match proof {
            merchants::Proof::HmacSha256(p) => hmac(&secret, &p.message) == p.mac,
            merchants::Proof::Digest(p) => {
                digest_parts(p.algorithm, &p.parts, &secret)? == p.expected
            }
        };
        if !ok {
            return Err(HostError::Unauthorized);
        }
        self.state.borrow_mut().authenticated = Some(credential.merchant_id.clone());
        Ok(credential)
    }

    fn find_credential(
        &self,
        kind: &str,
        public_id: &str,
    ) -> Result<merchants::Credential, HostError> {
        self.state
            .borrow()
            .credentials
            .iter()
            .find(|(c, _, live)| {
                *live && c.kind == kind && c.public_id.as_deref() == Some(public_id)
            })
            .map(|(c, _, _)| c.clone())
            .ok_or(HostError::NotFound)
    }

    fn current_merchant(&self) -> Option<merchants::Merchant> {
        let me = self.state.borrow().authenticated.clone()?;
        self.state
            .borrow()
            .merchants
            .iter()
            .find(|m| m.id == me)
            .cloned()
    }

    fn create_merchant(
        &self,
        merchant: &merchants::NewMerchant,
    ) -> Result<merchants::Merchant, HostError> {
        if self.state.borrow().authenticated.is_some() {
            return Err(HostError::Forbidden);
        }
        let id = self.add_merchant(&merchant.name);
        let mut s = self.state.borrow_mut();
        let m = s
            .merchants
            .iter_mut()
            .find(|m| m.id == id)
            .expect("just added");
        m.plugin_data = merchant.plugin_data.clone().unwrap_or_else(|| "{}".into());
        let m = m.clone();
        s.authenticated = Some(id);
        Ok(m)
    }

    fn get_merchant(&self, id: &str) -> Result<merchants::Merchant, HostError> {
        if self.authenticated()? != id {
            return Err(HostError::Forbidden);
        }
        self.state
            .borrow()
            .merchants
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .ok_or(HostError::NotFound)
    }

    fn update_merchant(
        &self,
        id: &str,
        update: &merchants::MerchantUpdate,
    ) -> Result<merchants::Merchant, HostError> {
        if self.authenticated()? != id {
            return Err(HostError::Forbidden);
        }
        let mut s = self.state.borrow_mut();
        let m = s
            .merchants
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or(HostError::NotFound)?;
        if let Some(name) = &update.name {
            m.name = name.clone();
        }
        if let Some(data) = &update.plugin_data {
            m.plugin_data = data.clone();
        }
        Ok(m.clone())
    }

    fn issue_credential(
        &self,
        merchant_id: &str,
        request: &merchants::CredentialRequest,
    ) -> Result<merchants::IssuedCredential, HostError> {
        if self.authenticated()? != merchant_id {
            return Err(HostError::Forbidden);
        }
        let secret = self.generate_secret(&request.format);
        let id = self.add_credential(
            merchant_id,
            &request.kind,
            request.public_id.as_deref(),
            &secret,
        );
        let credential = self
            .state
            .borrow()
            .credentials
            .iter()
            .find(|(c, _, _)| c.id == id)
            .expect("added")
            .0
            .clone();
        Ok(merchants::IssuedCredential { credential, secret })
    }

    fn rotate_credential(
        &self,
        credential_id: &str,
        format: &merchants::SecretFormat,
    ) -> Result<merchants::IssuedCredential, HostError> {
        let me = self.authenticated()?;
        let secret = self.generate_secret(format);
        let mut s = self.state.borrow_mut();
        let entry = s
            .credentials
            .iter_mut()
            .find(|(c, _, live)| c.id == credential_id && *live && c.merchant_id == me)
            .ok_or(HostError::NotFound)?;
        entry.1 = secret.clone();
        Ok(merchants::IssuedCredential {
            credential: entry.0.clone(),
            secret,
        })
    }

    fn revoke_credential(&self, credential_id: &str) -> Result<(), HostError> {
        let me = self.authenticated()?;
        let mut s = self.state.borrow_mut();
        let entry = s
            .credentials
            .iter_mut()
            .find(|(c, _, _)| c.id == credential_id && c.merchant_id == me)
            .ok_or(HostError::NotFound)?;
        entry.2 = false;
        Ok(())
    }

    fn list_credentials(&self, merchant_id: &str) -> Result<Vec<merchants::Credential>, HostError> {
        if self.authenticated()? != merchant_id {
            return Err(HostError::Forbidden);
        }
        Ok(self
            .state
            .borrow()
            .credentials
            .iter()
            .filter(|(c, _, live)| *live && c.merchant_id == merchant_id)
            .map(|(c, _, _)| c.clone())
            .collect())
    }

    fn create_invoice_idempotent(
        &self,
        new: &invoices::NewInvoice,
        idempotency_key: &str,
    ) -> Result<invoices::Invoice, HostError> {
        if idempotency_key.is_empty() || idempotency_key.len() > 128 {
            return Err(HostError::Invalid(
                "idempotency key must be 1 to 128 bytes".into(),
            ));
        }
        let merchant_id = self
            .state
            .borrow()
            .authenticated
            .clone()
            .or_else(|| self.state.borrow().default_merchant.clone())
            .ok_or(HostError::Unauthorized)?;
        let request = format!("{new:?}");
        let key = (merchant_id, idempotency_key.to_owned());
        let earlier = self.state.borrow().idempotency.get(&key).cloned();
        if let Some((earlier_request, id)) = earlier {
            if earlier_request != request {
                return Err(HostError::Conflict(format!(
                    "idempotency key `{idempotency_key}` was used for a different request"
                )));
            }
            return self.get_invoice(&id);
        }
        let invoice = self.create_invoice(new)?;
        self.state
            .borrow_mut()
            .idempotency
            .insert(key, (request, invoice.id.clone()));
        Ok(invoice)
    }

    fn create_invoice(&self, new: &invoices::NewInvoice) -> Result<invoices::Invoice, HostError> {
        let merchant_id = match self.state.borrow().authenticated.clone() {
            Some(m) => m,
            None => self
                .state
                .borrow()
                .default_merchant
                .clone()
                .ok_or(HostError::Unauthorized)?,
        };
        if let Some(order) = &new.merchant_order_id {
            let s = self.state.borrow();
            if s.invoices.iter().any(|i| {
                i.merchant_id == merchant_id && i.merchant_order_id.as_ref() == Some(order)
            }) {
                return Err(HostError::Conflict(format!(
                    "merchant order id {order} exists"
                )));
            }
        }
        let decimals = self.asset_decimals(&new.chain, &new.asset);
        let (amount_due, fiat) = match &new.price {
            invoices::Price::BaseUnits(a) => (money::base_units(a)?, None),
            invoices::Price::Decimal(a) => (money::to_base_units(a, decimals.clone()?)?, None),
            // No rate source in the fake host: the fiat digits stand for the base units.
            invoices::Price::Fiat(f) => (
                money::base_units(&f.amount.replace('.', ""))?,
                Some(f.clone()),
            ),
        };
        let decimals = decimals.unwrap_or(6);
        if amount_due == "0" {
            return Err(HostError::Invalid(
                "amount must be greater than zero".into(),
            ));
        }
        let id = self.next_id("invoice");
        let now = self.now.get();
        let (pay_to, matching) = match &new.matching {
            invoices::MatchStrategy::ContractReference(a) => {
                (a.clone(), invoices::MatchKind::ContractReference)
            }
            invoices::MatchStrategy::UniqueAmount(a) => {
                (a.clone(), invoices::MatchKind::UniqueAmount)
            }
            invoices::MatchStrategy::DerivedAddress(_) => (
                "0x000000000000000000000000000000000000f4e3".into(),
                invoices::MatchKind::DerivedAddress,
            ),
            invoices::MatchStrategy::FixedAddress(a) => {
                (a.clone(), invoices::MatchKind::FixedAddress)
            }
        };
        let invoice = invoices::Invoice {
            id: id.clone(),
            merchant_id,
            merchant_order_id: new.merchant_order_id.clone(),
            status: invoices::InvoiceStatus::Pending,
            underpaid: false,
            overpaid: false,
            paid_late: false,
            submitted_at: None,
            chain: new.chain.clone(),
            asset: new.asset.clone(),
            decimals,
            amount_due_decimal: money::format_units(&amount_due, decimals),
            amount_paid_decimal: "0".into(),
            payer_address: None,
            // The fake host's quote: rate 1, valid for two minutes.
            fiat_quote: fiat.as_ref().map(|_| invoices::FiatQuote {
                rate: "1".into(),
                source: "fake".into(),
                quoted_at: now,
                valid_until: now + 120_000,
            }),
            amount_due,
            amount_paid: "0".into(),
            fiat,
            matching,
            pay_to,
            payment_reference: (matching == invoices::MatchKind::ContractReference)
                .then(|| id.clone()),
            txn_hash: None,
            confirmations: 0,
            required_confirmations: 12,
            created_at: now,
            expires_at: now + i64::from(new.expires_in_secs) * 1000,
            paid_at: None,
            updated_at: now,
            notify_url: new.notify_url.clone(),
            return_url: new.return_url.clone(),
            payment_page_url: format!("http://polypay.test/pay/{id}"),
            plugin_data: new.plugin_data.clone().unwrap_or_else(|| "{}".into()),
            webhook: invoices::WebhookSummary {
                state: invoices::DeliveryState::None,
                attempts: 0,
                last_attempt_at: None,
            },
        };
        self.state.borrow_mut().invoices.push(invoice.clone());
        Ok(invoice)
    }

    fn get_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        let found = self
            .state
            .borrow()
            .invoices
            .iter()
            .find(|i| i.id == id)
            .cloned();
        found.filter(|i| self.visible(i)).ok_or(HostError::NotFound)
    }

    fn find_invoice_by_order_id(&self, order_id: &str) -> Result<invoices::Invoice, HostError> {
        let found = self
            .state
            .borrow()
            .invoices
            .iter()
            .rev()
            .find(|i| i.merchant_order_id.as_deref() == Some(order_id) && self.visible(i))
            .cloned();
        found.ok_or(HostError::NotFound)
    }

    fn list_invoices(
        &self,
        filter: &invoices::InvoiceFilter,
        page: &invoices::PageSelector,
        limit: u32,
    ) -> Result<invoices::InvoicePage, HostError> {
        self.authenticated()?;
        if limit == 0 || limit > 1000 {
            return Err(HostError::Invalid("limit must be 1..=1000".into()));
        }
        let all = self.filtered(filter);
        let limit = limit as usize;
        let start = match page {
            invoices::PageSelector::First => 0,
            invoices::PageSelector::Number(n) => (n.max(&1) - 1) as usize * limit,
            invoices::PageSelector::After(id) => all
                .iter()
                .position(|i| &i.id == id)
                .map_or(all.len(), |p| p + 1),
            invoices::PageSelector::Before(id) => all
                .iter()
                .position(|i| &i.id == id)
                .map_or(0, |p| p.saturating_sub(limit)),
        };
        let end = match page {
            invoices::PageSelector::Before(id) => all.iter().position(|i| &i.id == id).unwrap_or(0),
            _ => (start + limit).min(all.len()),
        };
        let items: Vec<_> = all.get(start..end).unwrap_or(&[]).to_vec();
        let next_cursor = (end < all.len())
            .then(|| items.last().map(|i| i.id.clone()))
            .flatten();
        Ok(invoices::InvoicePage {
            total: all.len() as u64,
            pages: all.len().div_ceil(limit) as u32,
            items,
            next_cursor,
        })
    }

    fn invoice_stats(
        &self,
        filter: &invoices::InvoiceFilter,
    ) -> Result<invoices::InvoiceStats, HostError> {
        self.authenticated()?;
        let all = self.filtered(filter);
        let count =
            |s: invoices::InvoiceStatus| all.iter().filter(|i| i.status == s).count() as u64;
        Ok(invoices::InvoiceStats {
            total: all.len() as u64,
            pending: count(invoices::InvoiceStatus::Pending),
            confirming: count(invoices::InvoiceStatus::Confirming),
            paid: count(invoices::InvoiceStatus::Paid),
            expired: count(invoices::InvoiceStatus::Expired),
            cancelled: count(invoices::InvoiceStatus::Cancelled),
            volumes: Vec::new(),
        })
    }

    fn cancel_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        let index = self.own_invoice(id)?;
        let mut s = self.state.borrow_mut();
        let invoice = &mut s.invoices[index];
        if invoice.status != invoices::InvoiceStatus::Pending {
            return Err(HostError::Conflict(
                "only a pending invoice can be cancelled".into(),
            ));
        }
        invoice.status = invoices::InvoiceStatus::Cancelled;
        Ok(invoice.clone())
    }

    /// No rate source in the fake host: a re-quote keeps the amount (the fiat digits
    /// stand for the base units), under the real host's conditions.
    fn requote_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        let found = self.state.borrow().invoices.iter().position(|i| i.id == id);
        let index = found
            .filter(|&i| {
                let invoice = self.state.borrow().invoices[i].clone();
                self.visible(&invoice)
            })
            .ok_or(HostError::NotFound)?;
        let now = self.now.get();
        let mut s = self.state.borrow_mut();
        let invoice = &mut s.invoices[index];
        let requotable = invoice.status == invoices::InvoiceStatus::Pending
            && invoice.amount_paid == "0"
            && invoice.fiat.is_some()
            && now < invoice.expires_at;
        if !requotable {
            return Err(HostError::Conflict(
                "only a pending, unpaid, fiat-priced invoice can be re-quoted".into(),
            ));
        }
        invoice.updated_at = now;
        if let Some(quote) = &mut invoice.fiat_quote {
            quote.quoted_at = now;
            quote.valid_until = now + 120_000;
        }
        Ok(invoice.clone())
    }

    fn mark_invoice_submitted(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        let now = self.now.get();
        let mut s = self.state.borrow_mut();
        let invoice = s
            .invoices
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(HostError::NotFound)?;
        invoice.submitted_at.get_or_insert(now);
        Ok(invoice.clone())
    }

    fn set_invoice_plugin_data(
        &self,
        id: &str,
        plugin_data: &str,
    ) -> Result<invoices::Invoice, HostError> {
        let index = self.own_invoice(id)?;
        let mut s = self.state.borrow_mut();
        s.invoices[index].plugin_data = plugin_data.into();
        Ok(s.invoices[index].clone())
    }

    fn networks(&self) -> Vec<chains::NetworkInfo> {
        self.state.borrow().networks.clone()
    }

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let now = self.now.get();
        Ok(self
            .state
            .borrow()
            .kv
            .get(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(v, _)| v.clone()))
    }
    fn kv_set(&self, key: &str, value: &[u8], ttl_secs: Option<u32>) -> Result<(), HostError> {
        let expiry = ttl_secs.map(|t| self.now.get() + i64::from(t) * 1000);
        self.state
            .borrow_mut()
            .kv
            .insert(key.into(), (value.to_vec(), expiry));
        Ok(())
    }
    fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
    ) -> Result<bool, HostError> {
        if self.kv_get(key)?.is_some() {
            return Ok(false);
        }
        self.kv_set(key, value, ttl_secs)?;
        Ok(true)
    }
    fn kv_increment(&self, key: &str, delta: i64, ttl_secs: Option<u32>) -> Result<i64, HostError> {
        let current = match self.kv_get(key)? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| HostError::Invalid(format!("{key} does not hold an integer")))?,
            None => 0,
        };
        let next = current + delta;
        self.kv_set(key, next.to_string().as_bytes(), ttl_secs)?;
        Ok(next)
    }
    fn kv_delete(&self, key: &str) -> Result<(), HostError> {
        self.state.borrow_mut().kv.remove(key);
        Ok(())
    }

    fn rate_limit_check(
        &self,
        bucket: &str,
        limit: u32,
        window_ms: u64,
    ) -> Result<rate_limit::Decision, HostError> {
        let now = self.now.get();
        let window = window_ms as i64;
        let mut s = self.state.borrow_mut();
        let entry = s.windows.entry(bucket.into()).or_insert((now, 0));
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        Ok(rate_limit::Decision {
            allowed: entry.1 <= limit,
            remaining: limit.saturating_sub(entry.1),
            reset_after_ms: (entry.0 + window - now) as u64,
        })
    }

    fn now(&self) -> i64 {
        self.now.get()
    }

    fn random_bytes(&self, len: u32) -> Vec<u8> {
        // xorshift64*: deterministic, so tests are reproducible.
        (0..len)
            .map(|_| {
                let mut x = self.rng.get();
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.rng.set(x);
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    fn hmac_sha256_sign(&self, credential_id: &str, message: &[u8]) -> Result<Vec<u8>, HostError> {
        Ok(hmac(&self.secret_of(credential_id)?, message))
    }
    fn hmac_sha256_verify(
        &self,
        credential_id: &str,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool, HostError> {
        Ok(hmac(&self.secret_of(credential_id)?, message) == mac)
    }
    fn digest_with_secret(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
    ) -> Result<Vec<u8>, HostError> {
        digest_parts(algorithm, parts, &self.secret_of(credential_id)?)
    }
    fn digest_with_secret_verify(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
        expected: &[u8],
    ) -> Result<bool, HostError> {
        Ok(digest_parts(algorithm, parts, &self.secret_of(credential_id)?)? == expected)
    }
    fn digest(&self, algorithm: crypto::DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        digest(algorithm, data)
    }

    fn log(&self, level: log::Level, message: &str, _fields: &[(String, String)]) {
        self.state.borrow_mut().logs.push((level, message.into()));
    }

    fn webhook_stats(&self, days: u32) -> Result<webhooks::DeliveryStats, HostError> {
        self.authenticated()?;
        if !(1..=365).contains(&days) {
            return Err(HostError::Invalid("days must be 1 to 365".into()));
        }
        let seeded = self.state.borrow().webhook_stats;
        Ok(match seeded {
            Some(stats) => webhooks::DeliveryStats { days, ..stats },
            None => webhooks::DeliveryStats {
                days,
                total: 0,
                delivered: 0,
                failed: 0,
                pending: 0,
                average_latency_ms: None,
                attempts: 0,
                finished_attempts: 0,
            },
        })
    }

    fn money_to_base_units(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        money::to_base_units(amount, self.asset_decimals(chain, asset)?)
    }

    fn money_to_decimal(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        money::to_decimal(amount, self.asset_decimals(chain, asset)?)
    }
}

impl FakeHost {
    fn generate_secret(&self, format: &merchants::SecretFormat) -> String {
        let body = match format.encoding {
            merchants::SecretEncoding::Hex => crate::hex(&self.random_bytes(format.bytes)),
            merchants::SecretEncoding::Alphanumeric => self
                .random_bytes(format.bytes)
                .iter()
                .map(|b| {
                    const A: &[u8] =
                        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                    A[(*b % 62) as usize] as char
                })
                .collect(),
            merchants::SecretEncoding::UuidV4 => with_host(
                Rc::new(FakeRandom(self.rng.get())),
                crate::host::random::uuid_v4,
            ),
        };
        self.rng.set(self.rng.get().wrapping_add(1));
        format!("{}{body}", format.prefix)
    }
}

/// A host that only provides randomness (used while generating UUID secrets).
struct FakeRandom(u64);

impl Host for FakeRandom {
    fn random_bytes(&self, len: u32) -> Vec<u8> {
        let host = FakeHost::new("random");
        host.rng.set(self.0);
        host.random_bytes(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::invoices::{MatchStrategy, NewInvoice, Price};
    use crate::host::merchants::{DigestProof, Proof};

    fn new_invoice(amount: &str) -> NewInvoice {
        NewInvoice {
            merchant_order_id: Some("o-1".into()),
            price: Price::BaseUnits(amount.into()),
            chain: "ethereum".into(),
            asset: "USDT".into(),
            matching: MatchStrategy::FixedAddress("0xabc".into()),
            expires_in_secs: 60,
            notify_url: None,
            return_url: None,
            plugin_data: None,
        }
    }

    #[test]
    fn the_fake_host_creates_once_per_idempotency_key_like_the_real_one() {
        let host = FakeHost::new("p");
        let merchant = host.add_merchant("Shop");
        host.set_default_merchant(&merchant);
        let first = host
            .create_invoice_idempotent(&new_invoice("100"), "o-1")
            .unwrap();
        let again = host
            .create_invoice_idempotent(&new_invoice("100"), "o-1")
            .unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(host.invoices().len(), 1);
        assert!(matches!(
            host.create_invoice_idempotent(&new_invoice("200"), "o-1"),
            Err(HostError::Conflict(_))
        ));
        assert!(matches!(
            host.create_invoice_idempotent(&new_invoice("100"), ""),
            Err(HostError::Invalid(_))
        ));
    }

    #[test]
    fn decimal_prices_and_amounts_follow_the_networks_decimals() {
        let host = FakeHost::new("p");
        let merchant = host.add_merchant("Shop");
        host.set_default_merchant(&merchant);
        let priced = |amount: &str| NewInvoice {
            price: Price::decimal(amount),
            merchant_order_id: None,
            ..new_invoice("1")
        };
        assert!(
            matches!(
                host.create_invoice(&priced("99.99")),
                Err(HostError::Unsupported(_))
            ),
            "no network configured: the asset's decimals are unknown"
        );
        host.add_network(chains::NetworkInfo {
            name: "ethereum".into(),
            family: "evm".into(),
            chain_id: Some(1),
            required_confirmations: 12,
            assets: vec![chains::AssetInfo {
                symbol: "USDT".into(),
                decimals: 6,
                contract: None,
            }],
            payment_contracts: Vec::new(),
        });
        let invoice = host.create_invoice(&priced("99.99")).unwrap();
        assert_eq!(
            (
                invoice.amount_due.as_str(),
                invoice.amount_due_decimal.as_str()
            ),
            ("99990000", "99.99")
        );
        assert!(matches!(
            host.create_invoice(&priced("0.0000001")),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            host.create_invoice(&priced("0")),
            Err(HostError::Invalid(_))
        ));
        host.update_invoice(&invoice.id, |i| i.amount_paid = "100000000".into());
        assert_eq!(host.invoices()[0].amount_paid_decimal, "100");
    }

    #[test]
    fn webhook_stats_are_seeded_and_divided_in_the_plugin() {
        let host = Rc::new(FakeHost::new("p"));
        let merchant = host.add_merchant("Shop");
        host.set_webhook_stats(webhooks::DeliveryStats {
            days: 0,
            total: 5,
            delivered: 3,
            failed: 1,
            pending: 1,
            average_latency_ms: None,
            attempts: 7,
            finished_attempts: 6,
        });
        assert!(matches!(
            host.webhook_stats(7),
            Err(HostError::Unauthorized)
        ));
        host.begin_request(Some(merchant));
        assert!(matches!(host.webhook_stats(0), Err(HostError::Invalid(_))));
        let stats = host.webhook_stats(7).unwrap();
        assert_eq!((stats.days, stats.finished()), (7, 4));
        assert_eq!(stats.success_rate(), Some(0.75));
        assert_eq!(stats.average_attempts(), Some(1.5));
    }

    /// As the real host: a digest "proof" must involve the secret.
    #[test]
    fn digest_proofs_without_the_secret_are_refused_like_the_host_does() {
        let host = FakeHost::new("p");
        let merchant = host.add_merchant("shop");
        host.add_credential(&merchant, "signing", Some("app-1"), "0123456789abcdef");
        let proof = |parts: Vec<crypto::DigestPart>, message: &[u8]| {
            Proof::Digest(DigestProof {
                algorithm: crypto::DigestAlgorithm::Sha256,
                parts,
                expected: digest(crypto::DigestAlgorithm::Sha256, message),
            })
        };
        let forged = proof(vec![crypto::DigestPart::Bytes(b"x".to_vec())], b"x");
        assert!(matches!(
            host.authenticate_signed("signing", "app-1", &forged),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            host.authenticate_signed("signing", "app-1", &proof(Vec::new(), b"")),
            Err(HostError::Invalid(_))
        ));
        let empty_part = proof(
            vec![
                crypto::DigestPart::Bytes(Vec::new()),
                crypto::DigestPart::Secret,
            ],
            b"0123456789abcdef",
        );
        assert!(matches!(
            host.authenticate_signed("signing", "app-1", &empty_part),
            Err(HostError::Invalid(_))
        ));
        let genuine = proof(
            vec![
                crypto::DigestPart::Bytes(b"x".to_vec()),
                crypto::DigestPart::Secret,
            ],
            b"x0123456789abcdef",
        );
        assert!(
            host.authenticate_signed("signing", "app-1", &genuine)
                .is_ok()
        );
    }
}
