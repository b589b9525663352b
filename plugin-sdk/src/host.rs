//! The host capabilities a plugin may call, one module per WIT interface.
//!
//! Plugins call these functions (e.g. [`invoices::create`]) rather than the raw
//! imports in [`crate::bindings`]: inside the component they forward to the
//! polypay host; in a native `cargo test` they forward to the [`Host`]
//! installed by [`crate::testing::Harness`], so a plugin can be unit-tested
//! without the server. Types are the generated WIT types, re-exported in the
//! module of the interface that defines them.

use crate::bindings::polypay::plugin as wit;
use wit::types::HostError;

/// Everything a plugin can ask of its host, one method per WIT import.
///
/// Implemented by the real host inside a component and by
/// [`crate::testing::FakeHost`] in native tests. Every method has a default
/// that reports [`HostError::Unsupported`] (or a neutral value), so a test
/// double only needs the methods its test uses.
#[allow(unused_variables)]
pub trait Host {
    fn settings(&self) -> String {
        "{}".to_owned()
    }
    fn plugin_name(&self) -> String {
        "test-plugin".to_owned()
    }

    fn authenticate(
        &self,
        kind: &str,
        presented_secret: &str,
    ) -> Result<merchants::Credential, HostError> {
        Err(unsupported("merchants.authenticate"))
    }
    fn authenticate_signed(
        &self,
        kind: &str,
        public_id: &str,
        proof: &merchants::Proof,
    ) -> Result<merchants::Credential, HostError> {
        Err(unsupported("merchants.authenticate-signed"))
    }
    fn find_credential(
        &self,
        kind: &str,
        public_id: &str,
    ) -> Result<merchants::Credential, HostError> {
        Err(unsupported("merchants.find-credential"))
    }
    fn current_merchant(&self) -> Option<merchants::Merchant> {
        None
    }
    fn create_merchant(
        &self,
        merchant: &merchants::NewMerchant,
    ) -> Result<merchants::Merchant, HostError> {
        Err(unsupported("merchants.create-merchant"))
    }
    fn get_merchant(&self, id: &str) -> Result<merchants::Merchant, HostError> {
        Err(unsupported("merchants.get-merchant"))
    }
    fn update_merchant(
        &self,
        id: &str,
        update: &merchants::MerchantUpdate,
    ) -> Result<merchants::Merchant, HostError> {
        Err(unsupported("merchants.update-merchant"))
    }
    fn issue_credential(
        &self,
        merchant_id: &str,
        request: &merchants::CredentialRequest,
    ) -> Result<merchants::IssuedCredential, HostError> {
        Err(unsupported("merchants.issue-credential"))
    }
    fn rotate_credential(
        &self,
        credential_id: &str,
        format: &merchants::SecretFormat,
    ) -> Result<merchants::IssuedCredential, HostError> {
        Err(unsupported("merchants.rotate-credential"))
    }
    fn revoke_credential(&self, credential_id: &str) -> Result<(), HostError> {
        Err(unsupported("merchants.revoke-credential"))
    }
    fn list_credentials(&self, merchant_id: &str) -> Result<Vec<merchants::Credential>, HostError> {
        Err(unsupported("merchants.list-credentials"))
    }

    fn create_invoice(
        &self,
        invoice: &invoices::NewInvoice,
    ) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.create"))
    }
    fn create_invoice_idempotent(
        &self,
        invoice: &invoices::NewInvoice,
        idempotency_key: &str,
    ) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.create-idempotent"))
    }
    fn get_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.get"))
    }
    fn find_invoice_by_order_id(
        &self,
        merchant_order_id: &str,
    ) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.find-by-order-id"))
    }
    fn list_invoices(
        &self,
        filter: &invoices::InvoiceFilter,
        page: &invoices::PageSelector,
        limit: u32,
    ) -> Result<invoices::InvoicePage, HostError> {
        Err(unsupported("invoices.list"))
    }
    fn invoice_stats(
        &self,
        filter: &invoices::InvoiceFilter,
    ) -> Result<invoices::InvoiceStats, HostError> {
        Err(unsupported("invoices.stats"))
    }
    fn cancel_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.cancel"))
    }
    fn mark_invoice_submitted(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.mark-submitted"))
    }
    fn requote_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.requote"))
    }
    fn set_invoice_plugin_data(
        &self,
        id: &str,
        plugin_data: &str,
    ) -> Result<invoices::Invoice, HostError> {
        Err(unsupported("invoices.set-plugin-data"))
    }

    fn networks(&self) -> Vec<chains::NetworkInfo> {
        Vec::new()
    }
    fn chain_status(&self, network: &str) -> Result<chains::ChainStatus, HostError> {
        Err(unsupported("chains.status"))
    }
    fn quote(
        &self,
        currency: &str,
        fiat_amount: &str,
        chain: &str,
        asset: &str,
    ) -> Result<rates::RateQuote, HostError> {
        Err(unsupported("rates.quote"))
    }

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Err(unsupported("kv.get"))
    }
    fn kv_set(&self, key: &str, value: &[u8], ttl_secs: Option<u32>) -> Result<(), HostError> {
        Err(unsupported("kv.set"))
    }
    fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
    ) -> Result<bool, HostError> {
        Err(unsupported("kv.set-if-absent"))
    }
    fn kv_increment(&self, key: &str, delta: i64, ttl_secs: Option<u32>) -> Result<i64, HostError> {
        Err(unsupported("kv.increment"))
    }
    fn kv_delete(&self, key: &str) -> Result<(), HostError> {
        Err(unsupported("kv.delete"))
    }
    fn rate_limit_check(
        &self,
        bucket: &str,
        limit: u32,
        window_ms: u64,
    ) -> Result<rate_limit::Decision, HostError> {
        Err(unsupported("rate-limit.check"))
    }

    fn now(&self) -> i64 {
        0
    }
    fn random_bytes(&self, len: u32) -> Vec<u8> {
        vec![0; len as usize]
    }

    fn hmac_sha256_sign(&self, credential_id: &str, message: &[u8]) -> Result<Vec<u8>, HostError> {
        Err(unsupported("crypto.hmac-sha256-sign"))
    }
    fn hmac_sha256_verify(
        &self,
        credential_id: &str,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool, HostError> {
        Err(unsupported("crypto.hmac-sha256-verify"))
    }
    fn digest_with_secret(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
    ) -> Result<Vec<u8>, HostError> {
        Err(unsupported("crypto.digest-with-secret"))
    }
    fn digest_with_secret_verify(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
        expected: &[u8],
    ) -> Result<bool, HostError> {
        Err(unsupported("crypto.digest-with-secret-verify"))
    }
    fn digest(&self, algorithm: crypto::DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        panic!("crypto.digest is not provided by this test host")
    }
    fn constant_time_eq(&self, a: &[u8], b: &[u8]) -> bool {
        a == b
    }

    fn log(&self, level: log::Level, message: &str, fields: &[(String, String)]) {}

    fn webhook_stats(&self, days: u32) -> Result<webhooks::DeliveryStats, HostError> {
        Err(unsupported("webhooks.stats"))
    }
    fn send_test_webhook(&self, url: &str) -> Result<String, HostError> {
        Err(unsupported("webhooks.send-test"))
    }

    fn money_to_base_units(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        Err(unsupported("money.to-base-units"))
    }
    fn money_to_decimal(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        Err(unsupported("money.to-decimal"))
    }
    fn ledger_create_user(&self, user: &ledger::NewUser) -> Result<ledger::User, HostError> {
        Err(unsupported("ledger.create-user"))
    }
    fn ledger_get_user(&self, id: &str) -> Result<ledger::User, HostError> {
        Err(unsupported("ledger.get-user"))
    }
    fn ledger_update_user(
        &self,
        id: &str,
        update: &ledger::UserUpdate,
    ) -> Result<ledger::User, HostError> {
        Err(unsupported("ledger.update-user"))
    }
    fn ledger_merchant_user(&self, merchant_id: &str) -> Result<ledger::User, HostError> {
        Err(unsupported("ledger.merchant-user"))
    }
    fn ledger_balances(&self, user_id: &str) -> Result<Vec<ledger::Balance>, HostError> {
        Err(unsupported("ledger.balances"))
    }
    fn ledger_deposit_address(&self, user_id: &str, chain: &str) -> Result<String, HostError> {
        Err(unsupported("ledger.deposit-address"))
    }
    fn ledger_deposits(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ledger::Deposit>, HostError> {
        Err(unsupported("ledger.deposits"))
    }
    fn ledger_create_order(&self, order: &ledger::NewOrder) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.create-order"))
    }
    fn ledger_get_order(&self, id: &str) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.get-order"))
    }
    fn ledger_find_order(
        &self,
        payee_user_id: &str,
        client_order_id: &str,
    ) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.find-order"))
    }
    fn ledger_list_orders(
        &self,
        filter: &ledger::OrderFilter,
        limit: u32,
    ) -> Result<Vec<ledger::Order>, HostError> {
        Err(unsupported("ledger.list-orders"))
    }
    fn ledger_pay(&self, order_id: &str) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.pay"))
    }
    fn ledger_settle(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.settle"))
    }
    fn ledger_unlock(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.unlock"))
    }
    fn ledger_refund(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.refund"))
    }
    fn ledger_cancel(&self, order_id: &str) -> Result<ledger::Order, HostError> {
        Err(unsupported("ledger.cancel"))
    }
    fn two_factor_enrol_totp(
        &self,
        subject: &str,
        issuer: &str,
        label: &str,
    ) -> Result<String, HostError> {
        Err(unsupported("two-factor.enrol-totp"))
    }
    fn two_factor_import_totp(&self, subject: &str, secret_base32: &str) -> Result<(), HostError> {
        Err(unsupported("two-factor.import-totp"))
    }
    fn two_factor_has_totp(&self, subject: &str) -> Result<bool, HostError> {
        Err(unsupported("two-factor.has-totp"))
    }
    fn two_factor_remove_totp(&self, subject: &str) -> Result<(), HostError> {
        Err(unsupported("two-factor.remove-totp"))
    }
    fn two_factor_verify_totp(
        &self,
        subject: &str,
        context: &str,
        code: &str,
    ) -> Result<two_factor::Verification, HostError> {
        Err(unsupported("two-factor.verify-totp"))
    }
    fn two_factor_send_code(
        &self,
        subject: &str,
        context: &str,
        channel: two_factor::Channel,
        destination: &str,
    ) -> Result<String, HostError> {
        Err(unsupported("two-factor.send-code"))
    }
    fn two_factor_verify_code(
        &self,
        subject: &str,
        context: &str,
        challenge_id: &str,
        code: &str,
    ) -> Result<two_factor::Verification, HostError> {
        Err(unsupported("two-factor.verify-code"))
    }
    fn two_factor_context_state(
        &self,
        subject: &str,
        context: &str,
    ) -> Result<two_factor::FailureCount, HostError> {
        Err(unsupported("two-factor.context-state"))
    }
}

fn unsupported(what: &str) -> HostError {
    HostError::Unsupported(format!("{what} is not provided by this host"))
}

/// The real host: the component's imports.
#[cfg(target_arch = "wasm32")]
struct ComponentHost;

#[cfg(target_arch = "wasm32")]
impl Host for ComponentHost {
    fn settings(&self) -> String {
        wit::context::settings()
    }
    fn plugin_name(&self) -> String {
        wit::context::plugin_name()
    }
    fn authenticate(&self, kind: &str, secret: &str) -> Result<merchants::Credential, HostError> {
        wit::merchants::authenticate(kind, secret)
    }
    fn authenticate_signed(
        &self,
        kind: &str,
        public_id: &str,
        proof: &merchants::Proof,
    ) -> Result<merchants::Credential, HostError> {
        wit::merchants::authenticate_signed(kind, public_id, proof)
    }
    fn find_credential(
        &self,
        kind: &str,
        public_id: &str,
    ) -> Result<merchants::Credential, HostError> {
        wit::merchants::find_credential(kind, public_id)
    }
    fn current_merchant(&self) -> Option<merchants::Merchant> {
        wit::merchants::current()
    }
    fn create_merchant(
        &self,
        merchant: &merchants::NewMerchant,
    ) -> Result<merchants::Merchant, HostError> {
        wit::merchants::create_merchant(merchant)
    }
    fn get_merchant(&self, id: &str) -> Result<merchants::Merchant, HostError> {
        wit::merchants::get_merchant(id)
    }
    fn update_merchant(
        &self,
        id: &str,
        update: &merchants::MerchantUpdate,
    ) -> Result<merchants::Merchant, HostError> {
        wit::merchants::update_merchant(id, update)
    }
    fn issue_credential(
        &self,
        merchant_id: &str,
        request: &merchants::CredentialRequest,
    ) -> Result<merchants::IssuedCredential, HostError> {
        wit::merchants::issue_credential(merchant_id, request)
    }
    fn rotate_credential(
        &self,
        credential_id: &str,
        format: &merchants::SecretFormat,
    ) -> Result<merchants::IssuedCredential, HostError> {
        wit::merchants::rotate_credential(credential_id, format)
    }
    fn revoke_credential(&self, credential_id: &str) -> Result<(), HostError> {
        wit::merchants::revoke_credential(credential_id)
    }
    fn list_credentials(&self, merchant_id: &str) -> Result<Vec<merchants::Credential>, HostError> {
        wit::merchants::list_credentials(merchant_id)
    }
    fn create_invoice(
        &self,
        invoice: &invoices::NewInvoice,
    ) -> Result<invoices::Invoice, HostError> {
        wit::invoices::create(invoice)
    }
    fn create_invoice_idempotent(
        &self,
        invoice: &invoices::NewInvoice,
        idempotency_key: &str,
    ) -> Result<invoices::Invoice, HostError> {
        wit::invoices::create_idempotent(invoice, idempotency_key)
    }
    fn get_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        wit::invoices::get(id)
    }
    fn find_invoice_by_order_id(&self, order_id: &str) -> Result<invoices::Invoice, HostError> {
        wit::invoices::find_by_order_id(order_id)
    }
    fn list_invoices(
        &self,
        filter: &invoices::InvoiceFilter,
        page: &invoices::PageSelector,
        limit: u32,
    ) -> Result<invoices::InvoicePage, HostError> {
        wit::invoices::list(filter, page, limit)
    }
    fn invoice_stats(
        &self,
        filter: &invoices::InvoiceFilter,
    ) -> Result<invoices::InvoiceStats, HostError> {
        wit::invoices::stats(filter)
    }
    fn cancel_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        wit::invoices::cancel(id)
    }
    fn mark_invoice_submitted(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        wit::invoices::mark_submitted(id)
    }
    fn requote_invoice(&self, id: &str) -> Result<invoices::Invoice, HostError> {
        wit::invoices::requote(id)
    }
    fn set_invoice_plugin_data(
        &self,
        id: &str,
        plugin_data: &str,
    ) -> Result<invoices::Invoice, HostError> {
        wit::invoices::set_plugin_data(id, plugin_data)
    }
    fn networks(&self) -> Vec<chains::NetworkInfo> {
        wit::chains::networks()
    }
    fn chain_status(&self, network: &str) -> Result<chains::ChainStatus, HostError> {
        wit::chains::status(network)
    }
    fn quote(
        &self,
        currency: &str,
        fiat_amount: &str,
        chain: &str,
        asset: &str,
    ) -> Result<rates::RateQuote, HostError> {
        wit::rates::quote(currency, fiat_amount, chain, asset)
    }
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        wit::kv::get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8], ttl_secs: Option<u32>) -> Result<(), HostError> {
        wit::kv::set(key, value, ttl_secs)
    }
    fn kv_set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
    ) -> Result<bool, HostError> {
        wit::kv::set_if_absent(key, value, ttl_secs)
    }
    fn kv_increment(&self, key: &str, delta: i64, ttl_secs: Option<u32>) -> Result<i64, HostError> {
        wit::kv::increment(key, delta, ttl_secs)
    }
    fn kv_delete(&self, key: &str) -> Result<(), HostError> {
        wit::kv::delete(key)
    }
    fn rate_limit_check(
        &self,
        bucket: &str,
        limit: u32,
        window_ms: u64,
    ) -> Result<rate_limit::Decision, HostError> {
        wit::rate_limit::check(bucket, limit, window_ms)
    }
    fn now(&self) -> i64 {
        wit::clock::now()
    }
    fn random_bytes(&self, len: u32) -> Vec<u8> {
        wit::random::bytes(len)
    }
    fn hmac_sha256_sign(&self, credential_id: &str, message: &[u8]) -> Result<Vec<u8>, HostError> {
        wit::crypto::hmac_sha256_sign(credential_id, message)
    }
    fn hmac_sha256_verify(
        &self,
        credential_id: &str,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool, HostError> {
        wit::crypto::hmac_sha256_verify(credential_id, message, mac)
    }
    fn digest_with_secret(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
    ) -> Result<Vec<u8>, HostError> {
        wit::crypto::digest_with_secret(credential_id, algorithm, parts)
    }
    fn digest_with_secret_verify(
        &self,
        credential_id: &str,
        algorithm: crypto::DigestAlgorithm,
        parts: &[crypto::DigestPart],
        expected: &[u8],
    ) -> Result<bool, HostError> {
        wit::crypto::digest_with_secret_verify(credential_id, algorithm, parts, expected)
    }
    fn digest(&self, algorithm: crypto::DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        wit::crypto::digest(algorithm, data)
    }
    fn constant_time_eq(&self, a: &[u8], b: &[u8]) -> bool {
        wit::crypto::constant_time_eq(a, b)
    }
    fn log(&self, level: log::Level, message: &str, fields: &[(String, String)]) {
        wit::log::log(level, message, fields)
    }
    fn webhook_stats(&self, days: u32) -> Result<webhooks::DeliveryStats, HostError> {
        wit::webhooks::stats(days)
    }
    fn send_test_webhook(&self, url: &str) -> Result<String, HostError> {
        wit::webhooks::send_test(url)
    }
    fn money_to_base_units(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        wit::money::to_base_units(chain, asset, amount)
    }
    fn money_to_decimal(
        &self,
        chain: &str,
        asset: &str,
        amount: &str,
    ) -> Result<String, HostError> {
        wit::money::to_decimal(chain, asset, amount)
    }
    fn ledger_create_user(&self, user: &ledger::NewUser) -> Result<ledger::User, HostError> {
        wit::ledger::create_user(user)
    }
    fn ledger_get_user(&self, id: &str) -> Result<ledger::User, HostError> {
        wit::ledger::get_user(id)
    }
    fn ledger_update_user(
        &self,
        id: &str,
        update: &ledger::UserUpdate,
    ) -> Result<ledger::User, HostError> {
        wit::ledger::update_user(id, update)
    }
    fn ledger_merchant_user(&self, merchant_id: &str) -> Result<ledger::User, HostError> {
        wit::ledger::merchant_user(merchant_id)
    }
    fn ledger_balances(&self, user_id: &str) -> Result<Vec<ledger::Balance>, HostError> {
        wit::ledger::balances(user_id)
    }
    fn ledger_deposit_address(&self, user_id: &str, chain: &str) -> Result<String, HostError> {
        wit::ledger::deposit_address(user_id, chain)
    }
    fn ledger_deposits(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<ledger::Deposit>, HostError> {
        wit::ledger::deposits(user_id, limit)
    }
    fn ledger_create_order(&self, order: &ledger::NewOrder) -> Result<ledger::Order, HostError> {
        wit::ledger::create_order(order)
    }
    fn ledger_get_order(&self, id: &str) -> Result<ledger::Order, HostError> {
        wit::ledger::get_order(id)
    }
    fn ledger_find_order(
        &self,
        payee_user_id: &str,
        client_order_id: &str,
    ) -> Result<ledger::Order, HostError> {
        wit::ledger::find_order(payee_user_id, client_order_id)
    }
    fn ledger_list_orders(
        &self,
        filter: &ledger::OrderFilter,
        limit: u32,
    ) -> Result<Vec<ledger::Order>, HostError> {
        wit::ledger::list_orders(filter, limit)
    }
    fn ledger_pay(&self, order_id: &str) -> Result<ledger::Order, HostError> {
        wit::ledger::pay(order_id)
    }
    fn ledger_settle(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        wit::ledger::settle(order_id, items)
    }
    fn ledger_unlock(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        wit::ledger::unlock(order_id, items)
    }
    fn ledger_refund(
        &self,
        order_id: &str,
        items: &[ledger::ItemAmount],
    ) -> Result<ledger::Order, HostError> {
        wit::ledger::refund(order_id, items)
    }
    fn ledger_cancel(&self, order_id: &str) -> Result<ledger::Order, HostError> {
        wit::ledger::cancel(order_id)
    }
    fn two_factor_enrol_totp(
        &self,
        subject: &str,
        issuer: &str,
        label: &str,
    ) -> Result<String, HostError> {
        wit::two_factor::enrol_totp(subject, issuer, label)
    }
    fn two_factor_import_totp(&self, subject: &str, secret_base32: &str) -> Result<(), HostError> {
        wit::two_factor::import_totp(subject, secret_base32)
    }
    fn two_factor_has_totp(&self, subject: &str) -> Result<bool, HostError> {
        wit::two_factor::has_totp(subject)
    }
    fn two_factor_remove_totp(&self, subject: &str) -> Result<(), HostError> {
        wit::two_factor::remove_totp(subject)
    }
    fn two_factor_verify_totp(
        &self,
        subject: &str,
        context: &str,
        code: &str,
    ) -> Result<two_factor::Verification, HostError> {
        wit::two_factor::verify_totp(subject, context, code)
    }
    fn two_factor_send_code(
        &self,
        subject: &str,
        context: &str,
        channel: two_factor::Channel,
        destination: &str,
    ) -> Result<String, HostError> {
        wit::two_factor::send_code(subject, context, channel, destination)
    }
    fn two_factor_verify_code(
        &self,
        subject: &str,
        context: &str,
        challenge_id: &str,
        code: &str,
    ) -> Result<two_factor::Verification, HostError> {
        wit::two_factor::verify_code(subject, context, challenge_id, code)
    }
    fn two_factor_context_state(
        &self,
        subject: &str,
        context: &str,
    ) -> Result<two_factor::FailureCount, HostError> {
        wit::two_factor::context_state(subject, context)
    }
}

/// Runs `f` against the current host.
#[cfg(target_arch = "wasm32")]
pub(crate) fn with_host<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    f(&ComponentHost)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn with_host<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    crate::testing::with_installed_host(f)
}

/// `context`: the plugin's settings and name.
pub mod context {
    use super::with_host;

    /// The plugin's `settings` table as JSON text.
    pub fn settings_json() -> String {
        with_host(|h| h.settings())
    }

    /// The plugin's settings deserialized into `T`.
    pub fn settings<T: serde::de::DeserializeOwned>() -> Result<T, serde_json::Error> {
        serde_json::from_str(&settings_json())
    }

    /// The name this plugin is mounted under.
    pub fn plugin_name() -> String {
        with_host(|h| h.plugin_name())
    }
}

/// `merchants`: authentication, merchants and credentials.
pub mod merchants {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::merchants::{
        Credential, CredentialRequest, DigestAlgorithm, DigestPart, DigestProof, HmacProof,
        IssuedCredential, Merchant, MerchantUpdate, NewMerchant, Proof, SecretEncoding,
        SecretFormat,
    };
    pub use crate::bindings::polypay::plugin::plugin_types::CredentialTemplate;

    impl SecretFormat {
        /// A random UUIDv4, e.g. a Trino-style bearer token.
        pub fn uuid_v4() -> Self {
            SecretFormat {
                prefix: String::new(),
                encoding: SecretEncoding::UuidV4,
                bytes: 0,
            }
        }
        /// `prefix` then lower-case hex of `bytes` random bytes.
        pub fn hex(prefix: &str, bytes: u32) -> Self {
            SecretFormat {
                prefix: prefix.to_owned(),
                encoding: SecretEncoding::Hex,
                bytes,
            }
        }
        /// `prefix` then `chars` random characters of `[0-9A-Za-z]`.
        pub fn alphanumeric(prefix: &str, chars: u32) -> Self {
            SecretFormat {
                prefix: prefix.to_owned(),
                encoding: SecretEncoding::Alphanumeric,
                bytes: chars,
            }
        }
    }

    pub fn authenticate(kind: &str, presented_secret: &str) -> Result<Credential, HostError> {
        with_host(|h| h.authenticate(kind, presented_secret))
    }
    pub fn authenticate_signed(
        kind: &str,
        public_id: &str,
        proof: &Proof,
    ) -> Result<Credential, HostError> {
        with_host(|h| h.authenticate_signed(kind, public_id, proof))
    }
    pub fn find_credential(kind: &str, public_id: &str) -> Result<Credential, HostError> {
        with_host(|h| h.find_credential(kind, public_id))
    }
    pub fn current() -> Option<Merchant> {
        with_host(|h| h.current_merchant())
    }
    pub fn create_merchant(merchant: &NewMerchant) -> Result<Merchant, HostError> {
        with_host(|h| h.create_merchant(merchant))
    }
    pub fn get_merchant(id: &str) -> Result<Merchant, HostError> {
        with_host(|h| h.get_merchant(id))
    }
    pub fn update_merchant(id: &str, update: &MerchantUpdate) -> Result<Merchant, HostError> {
        with_host(|h| h.update_merchant(id, update))
    }
    pub fn issue_credential(
        merchant_id: &str,
        request: &CredentialRequest,
    ) -> Result<IssuedCredential, HostError> {
        with_host(|h| h.issue_credential(merchant_id, request))
    }
    pub fn rotate_credential(
        credential_id: &str,
        format: &SecretFormat,
    ) -> Result<IssuedCredential, HostError> {
        with_host(|h| h.rotate_credential(credential_id, format))
    }
    pub fn revoke_credential(credential_id: &str) -> Result<(), HostError> {
        with_host(|h| h.revoke_credential(credential_id))
    }
    pub fn list_credentials(merchant_id: &str) -> Result<Vec<Credential>, HostError> {
        with_host(|h| h.list_credentials(merchant_id))
    }
}

/// `invoices`: create, read, list and change invoices within the plugin's scope.
pub mod invoices {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::invoices::{
        AssetVolume, DeliveryState, FiatPrice, FiatQuote, Invoice, InvoiceFilter, InvoicePage,
        InvoiceStats, InvoiceStatus, MatchKind, MatchStrategy, NewInvoice, PageSelector, Price,
        WebhookSummary,
    };

    pub fn create(invoice: &NewInvoice) -> Result<Invoice, HostError> {
        with_host(|h| h.create_invoice(invoice))
    }
    /// Creates the invoice at most once per `idempotency_key` (for the plugin and
    /// merchant): a repeated request returns the invoice the first one created; a
    /// different request with the same key is a `conflict`. Use the merchant's order id.
    pub fn create_idempotent(
        invoice: &NewInvoice,
        idempotency_key: &str,
    ) -> Result<Invoice, HostError> {
        with_host(|h| h.create_invoice_idempotent(invoice, idempotency_key))
    }
    pub fn get(id: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.get_invoice(id))
    }
    pub fn find_by_order_id(merchant_order_id: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.find_invoice_by_order_id(merchant_order_id))
    }
    pub fn list(
        filter: &InvoiceFilter,
        page: &PageSelector,
        limit: u32,
    ) -> Result<InvoicePage, HostError> {
        with_host(|h| h.list_invoices(filter, page, limit))
    }
    pub fn stats(filter: &InvoiceFilter) -> Result<InvoiceStats, HostError> {
        with_host(|h| h.invoice_stats(filter))
    }
    pub fn cancel(id: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.cancel_invoice(id))
    }
    pub fn mark_submitted(id: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.mark_invoice_submitted(id))
    }
    /// Re-prices an unpaid fiat-priced invoice at the current rate; the amount it
    /// replaces still pays in full for the host's grace period (see the WIT).
    pub fn requote(id: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.requote_invoice(id))
    }
    pub fn set_plugin_data(id: &str, plugin_data: &str) -> Result<Invoice, HostError> {
        with_host(|h| h.set_invoice_plugin_data(id, plugin_data))
    }

    impl Price {
        /// A price in the invoice's asset's own units, e.g. `Price::decimal("99.99")`
        /// for 99.99 USDT: the host converts it exactly with the asset's decimals and
        /// refuses (`invalid`) what it cannot convert exactly (more fractional digits
        /// than the asset has, signs, exponents, whitespace, ...; see the WIT
        /// `types.decimal`). Pass the amount as the merchant sent it: never through a
        /// float.
        pub fn decimal(amount: impl Into<String>) -> Price {
            Price::Decimal(amount.into())
        }

        /// An exact price in base units, e.g. `Price::base_units("99990000")`.
        pub fn base_units(amount: impl Into<String>) -> Price {
            Price::BaseUnits(amount.into())
        }
    }

    /// A filter that matches every invoice in scope.
    pub fn any() -> InvoiceFilter {
        InvoiceFilter {
            statuses: Vec::new(),
            chain: None,
            asset: None,
            created_from: None,
            created_to: None,
            merchant_order_id_prefix: None,
        }
    }
}

/// `chains`: configured networks and their live status.
pub mod chains {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::chains::{
        AssetInfo, ChainStatus, NetworkInfo, PaymentContract,
    };

    pub fn networks() -> Vec<NetworkInfo> {
        with_host(|h| h.networks())
    }
    pub fn status(network: &str) -> Result<ChainStatus, HostError> {
        with_host(|h| h.chain_status(network))
    }
}

/// `rates`: fiat quotes.
pub mod rates {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::rates::RateQuote;

    pub fn quote(
        currency: &str,
        fiat_amount: &str,
        chain: &str,
        asset: &str,
    ) -> Result<RateQuote, HostError> {
        with_host(|h| h.quote(currency, fiat_amount, chain, asset))
    }
}

/// `kv`: the plugin's own key-value store.
pub mod kv {
    use super::{HostError, with_host};

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
        with_host(|h| h.kv_get(key))
    }
    pub fn set(key: &str, value: &[u8], ttl_secs: Option<u32>) -> Result<(), HostError> {
        with_host(|h| h.kv_set(key, value, ttl_secs))
    }
    pub fn set_if_absent(
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
    ) -> Result<bool, HostError> {
        with_host(|h| h.kv_set_if_absent(key, value, ttl_secs))
    }
    pub fn increment(key: &str, delta: i64, ttl_secs: Option<u32>) -> Result<i64, HostError> {
        with_host(|h| h.kv_increment(key, delta, ttl_secs))
    }
    pub fn delete(key: &str) -> Result<(), HostError> {
        with_host(|h| h.kv_delete(key))
    }
}

/// `rate-limit`: fixed-window counters.
pub mod rate_limit {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::rate_limit::Decision;

    pub fn check(bucket: &str, limit: u32, window_ms: u64) -> Result<Decision, HostError> {
        with_host(|h| h.rate_limit_check(bucket, limit, window_ms))
    }
}

/// `clock`: the host's wall clock.
pub mod clock {
    use super::with_host;

    /// Milliseconds since the Unix epoch.
    pub fn now() -> i64 {
        with_host(|h| h.now())
    }
}

/// `random`: secure randomness and the id formats dialects need.
pub mod random {
    use super::with_host;

    pub fn bytes(len: u32) -> Vec<u8> {
        with_host(|h| h.random_bytes(len))
    }

    /// A random UUIDv4 in hyphenated lower-case form.
    pub fn uuid_v4() -> String {
        let mut b = bytes(16);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = crate::hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// A random string of `len` characters from `0-9A-Za-z`, unbiased.
    pub fn alphanumeric(len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut out = String::with_capacity(len);
        while out.len() < len {
            for byte in bytes(len as u32 * 2) {
                // 62 * 4 = 248: reject the top values so every symbol is equally likely.
                if byte < 248 && out.len() < len {
                    out.push(ALPHABET[(byte % 62) as usize] as char);
                }
            }
        }
        out
    }

    /// A uniformly random integer in `0..bound` (`bound` > 0).
    pub fn below(bound: u64) -> u64 {
        assert!(bound > 0, "random::below(0)");
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let b = bytes(8);
            let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            if v < zone {
                return v % bound;
            }
        }
    }
}

/// `crypto`: signatures and digests by credential id; secrets stay in the host.
pub mod crypto {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::merchants::{DigestAlgorithm, DigestPart};

    pub fn hmac_sha256_sign(credential_id: &str, message: &[u8]) -> Result<Vec<u8>, HostError> {
        with_host(|h| h.hmac_sha256_sign(credential_id, message))
    }
    pub fn hmac_sha256_verify(
        credential_id: &str,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool, HostError> {
        with_host(|h| h.hmac_sha256_verify(credential_id, message, mac))
    }
    pub fn digest_with_secret(
        credential_id: &str,
        algorithm: DigestAlgorithm,
        parts: &[DigestPart],
    ) -> Result<Vec<u8>, HostError> {
        with_host(|h| h.digest_with_secret(credential_id, algorithm, parts))
    }
    pub fn digest_with_secret_verify(
        credential_id: &str,
        algorithm: DigestAlgorithm,
        parts: &[DigestPart],
        expected: &[u8],
    ) -> Result<bool, HostError> {
        with_host(|h| h.digest_with_secret_verify(credential_id, algorithm, parts, expected))
    }
    pub fn digest(algorithm: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
        with_host(|h| h.digest(algorithm, data))
    }
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        with_host(|h| h.constant_time_eq(a, b))
    }
}

/// `log`: structured log lines in the host's log.
pub mod log {
    use super::with_host;
    pub use crate::bindings::polypay::plugin::log::Level;

    pub fn log(level: Level, message: &str, fields: &[(String, String)]) {
        with_host(|h| h.log(level, message, fields))
    }
    pub fn info(message: &str) {
        log(Level::Info, message, &[])
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message, &[])
    }
    pub fn error(message: &str) {
        log(Level::Error, message, &[])
    }
}

/// `webhooks`: the merchant's view of callback delivery.
pub mod webhooks {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::plugin_types::{
        Acceptance, EventKind, InvoiceEvent, OutgoingRequest, WebhookDelivery,
    };
    pub use crate::bindings::polypay::plugin::webhooks::DeliveryStats;

    impl DeliveryStats {
        /// Callbacks whose delivery has finished: delivered or given up.
        pub fn finished(&self) -> u64 {
            self.delivered + self.failed
        }

        /// Delivered share of the finished callbacks, `0.0..=1.0`; `None` before any
        /// finished. (A ratio for a report, not money: computed here, in the plugin.)
        pub fn success_rate(&self) -> Option<f64> {
            let finished = self.finished();
            (finished > 0).then(|| self.delivered as f64 / finished as f64)
        }

        /// Mean attempts a finished callback took; `None` before any finished.
        pub fn average_attempts(&self) -> Option<f64> {
            let finished = self.finished();
            (finished > 0).then(|| self.finished_attempts as f64 / finished as f64)
        }
    }

    /// Delivery statistics of the authenticated merchant's callbacks (this plugin's
    /// only) over the last `days` days (1 to 365).
    pub fn stats(days: u32) -> Result<DeliveryStats, HostError> {
        with_host(|h| h.webhook_stats(days))
    }
    pub fn send_test(url: &str) -> Result<String, HostError> {
        with_host(|h| h.send_test_webhook(url))
    }
}

/// `money`: amounts in an asset's own units, converted by the host.
///
/// The same conversion as [`invoices::Price::decimal`] and the invoice's
/// `amount_due_decimal` / `amount_paid_decimal`: check a merchant's amount before
/// creating anything (to answer in the dialect's own error shape), or render an amount
/// in a callback. Unknown chain or asset: `unsupported`; an amount the host cannot
/// convert exactly: `invalid`, with a text naming the problem.
///
/// ```
/// # use polypay_plugin_sdk::testing::FakeHost;
/// # use polypay_plugin_sdk::chains::{AssetInfo, NetworkInfo};
/// # let host = std::rc::Rc::new(FakeHost::new("p"));
/// # host.add_network(NetworkInfo { name: "tron".into(), family: "tron".into(), chain_id: None,
/// #     required_confirmations: 19, payment_contracts: Vec::new(),
/// #     assets: vec![AssetInfo { symbol: "USDT".into(), decimals: 6, contract: None }] });
/// # polypay_plugin_sdk::testing::with_host(host, || {
/// use polypay_plugin_sdk::{HostError, money};
///
/// assert_eq!(money::to_base_units("tron", "USDT", "0.1").unwrap(), "100000");
/// assert_eq!(money::to_decimal("tron", "USDT", "100000").unwrap(), "0.1");
/// assert!(matches!(money::to_base_units("tron", "USDT", "0.1234567"), Err(HostError::Invalid(_))));
/// # });
/// ```
pub mod money {
    use super::{HostError, with_host};

    /// `amount` ("99.99") of `asset` on `chain` in base units ("99990000").
    pub fn to_base_units(chain: &str, asset: &str, amount: &str) -> Result<String, HostError> {
        with_host(|h| h.money_to_base_units(chain, asset, amount))
    }

    /// `base_units` ("99990000") of `asset` on `chain` in the asset's units ("99.99"),
    /// canonical: no leading zeros, no trailing fractional zeros.
    pub fn to_decimal(chain: &str, asset: &str, base_units: &str) -> Result<String, HostError> {
        with_host(|h| h.money_to_decimal(chain, asset, base_units))
    }
}

/// `ledger`: custodial users, balances, deposits and orders paid from balances (the
/// host keeps the money; see the WIT docs of `ledger` for the rules and error tokens).
///
/// Amounts go in as decimals in the asset's units ("0.1575") and come back both as base
/// units and host-formatted decimals. A plugin renders ledger callbacks in
/// [`crate::Plugin::render_ledger_webhook`].
pub mod ledger {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::ledger::{
        Balance, Contact, Deposit, DepositStatus, ItemAmount, LedgerAction, LedgerEvent,
        MovedAmount, NewOrder, NewOrderItem, NewUser, Order, OrderFilter, OrderItem, OrderStatus,
        PayType, User, UserUpdate,
    };

    pub fn create_user(user: &NewUser) -> Result<User, HostError> {
        with_host(|h| h.ledger_create_user(user))
    }
    pub fn get_user(id: &str) -> Result<User, HostError> {
        with_host(|h| h.ledger_get_user(id))
    }
    pub fn update_user(id: &str, update: &UserUpdate) -> Result<User, HostError> {
        with_host(|h| h.ledger_update_user(id, update))
    }
    pub fn merchant_user(merchant_id: &str) -> Result<User, HostError> {
        with_host(|h| h.ledger_merchant_user(merchant_id))
    }
    pub fn balances(user_id: &str) -> Result<Vec<Balance>, HostError> {
        with_host(|h| h.ledger_balances(user_id))
    }
    pub fn deposit_address(user_id: &str, chain: &str) -> Result<String, HostError> {
        with_host(|h| h.ledger_deposit_address(user_id, chain))
    }
    pub fn deposits(user_id: &str, limit: u32) -> Result<Vec<Deposit>, HostError> {
        with_host(|h| h.ledger_deposits(user_id, limit))
    }
    pub fn create_order(order: &NewOrder) -> Result<Order, HostError> {
        with_host(|h| h.ledger_create_order(order))
    }
    pub fn get_order(id: &str) -> Result<Order, HostError> {
        with_host(|h| h.ledger_get_order(id))
    }
    pub fn find_order(payee_user_id: &str, client_order_id: &str) -> Result<Order, HostError> {
        with_host(|h| h.ledger_find_order(payee_user_id, client_order_id))
    }
    pub fn list_orders(filter: &OrderFilter, limit: u32) -> Result<Vec<Order>, HostError> {
        with_host(|h| h.ledger_list_orders(filter, limit))
    }
    pub fn pay(order_id: &str) -> Result<Order, HostError> {
        with_host(|h| h.ledger_pay(order_id))
    }
    pub fn settle(order_id: &str, items: &[ItemAmount]) -> Result<Order, HostError> {
        with_host(|h| h.ledger_settle(order_id, items))
    }
    pub fn unlock(order_id: &str, items: &[ItemAmount]) -> Result<Order, HostError> {
        with_host(|h| h.ledger_unlock(order_id, items))
    }
    pub fn refund(order_id: &str, items: &[ItemAmount]) -> Result<Order, HostError> {
        with_host(|h| h.ledger_refund(order_id, items))
    }
    pub fn cancel(order_id: &str) -> Result<Order, HostError> {
        with_host(|h| h.ledger_cancel(order_id))
    }
}

/// `two-factor`: TOTP and one-time codes confirming an action of one of the plugin's
/// users (see the WIT interface for the rules: three failures per context exhaust it, a
/// code works once).
pub mod two_factor {
    use super::{HostError, with_host};
    pub use crate::bindings::polypay::plugin::two_factor::{Channel, FailureCount, Verification};

    /// Creates the subject's TOTP seed; returns its `otpauth://` URI, this one time.
    pub fn enrol_totp(subject: &str, issuer: &str, label: &str) -> Result<String, HostError> {
        with_host(|h| h.two_factor_enrol_totp(subject, issuer, label))
    }
    /// Imports an existing base32 seed for the subject.
    pub fn import_totp(subject: &str, secret_base32: &str) -> Result<(), HostError> {
        with_host(|h| h.two_factor_import_totp(subject, secret_base32))
    }
    pub fn has_totp(subject: &str) -> Result<bool, HostError> {
        with_host(|h| h.two_factor_has_totp(subject))
    }
    pub fn remove_totp(subject: &str) -> Result<(), HostError> {
        with_host(|h| h.two_factor_remove_totp(subject))
    }
    /// Checks a TOTP code of the subject in `context`.
    pub fn verify_totp(
        subject: &str,
        context: &str,
        code: &str,
    ) -> Result<Verification, HostError> {
        with_host(|h| h.two_factor_verify_totp(subject, context, code))
    }
    /// Sends a one-time code; returns the challenge id (decimal 64-bit).
    pub fn send_code(
        subject: &str,
        context: &str,
        channel: Channel,
        destination: &str,
    ) -> Result<String, HostError> {
        with_host(|h| h.two_factor_send_code(subject, context, channel, destination))
    }
    /// Checks a one-time code against its challenge.
    pub fn verify_code(
        subject: &str,
        context: &str,
        challenge_id: &str,
        code: &str,
    ) -> Result<Verification, HostError> {
        with_host(|h| h.two_factor_verify_code(subject, context, challenge_id, code))
    }
    /// The failures recorded in a context.
    pub fn context_state(subject: &str, context: &str) -> Result<FailureCount, HostError> {
        with_host(|h| h.two_factor_context_state(subject, context))
    }
}
