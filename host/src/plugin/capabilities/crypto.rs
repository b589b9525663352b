//! `crypto`: digests, constant-time comparison, and signatures by credential id.

use super::HostResult;
pub(crate) use crate::merchant::constant_time_eq;
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::crypto::Host;
use crate::plugin::bindings::polypay::plugin::merchants::{DigestAlgorithm, DigestPart};
use crate::plugin::state::PluginState;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

pub(crate) fn digest(algorithm: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
    match algorithm {
        DigestAlgorithm::Md5 => md5::Md5::digest(data).to_vec(),
        DigestAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
        DigestAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// The digest of `parts` concatenated, where parts may stand for `secret`.
pub(crate) fn digest_parts(
    algorithm: DigestAlgorithm,
    parts: &[DigestPart],
    secret: &[u8],
) -> Vec<u8> {
    let mut message = Vec::new();
    for part in parts {
        match part {
            DigestPart::Bytes(b) => message.extend_from_slice(b),
            DigestPart::Secret => message.extend_from_slice(secret),
            DigestPart::SecretDigestHex(a) => {
                message.extend_from_slice(hex::encode(digest(*a, secret)).as_bytes())
            }
        }
    }
    digest(algorithm, &message)
}

pub(crate) fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

impl Host for PluginState {
    async fn hmac_sha256_sign(
        &mut self,
        credential_id: String,
        message: Vec<u8>,
    ) -> HostResult<Vec<u8>> {
        Ok(self
            .with_secret(&credential_id, |secret| hmac_sha256(secret, &message))
            .await)
    }

    async fn hmac_sha256_verify(
        &mut self,
        credential_id: String,
        message: Vec<u8>,
        mac: Vec<u8>,
    ) -> HostResult<bool> {
        Ok(self
            .with_secret(&credential_id, |secret| {
                constant_time_eq(&hmac_sha256(secret, &message), &mac)
            })
            .await)
    }

    async fn digest_with_secret(
        &mut self,
        credential_id: String,
        algorithm: DigestAlgorithm,
        parts: Vec<DigestPart>,
    ) -> HostResult<Vec<u8>> {
        Ok(self
            .with_secret(&credential_id, |secret| {
                digest_parts(algorithm, &parts, secret)
            })
            .await)
    }

    async fn digest_with_secret_verify(
        &mut self,
        credential_id: String,
        algorithm: DigestAlgorithm,
        parts: Vec<DigestPart>,
        expected: Vec<u8>,
    ) -> HostResult<bool> {
        Ok(self
            .with_secret(&credential_id, |secret| {
                constant_time_eq(&digest_parts(algorithm, &parts, secret), &expected)
            })
            .await)
    }

    async fn digest(
        &mut self,
        algorithm: DigestAlgorithm,
        data: Vec<u8>,
    ) -> wasmtime::Result<Vec<u8>> {
        Ok(digest(algorithm, &data))
    }

    async fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> wasmtime::Result<bool> {
        Ok(constant_time_eq(&a, &b))
    }
}

impl PluginState {
    /// Runs `f` over the secret of a live credential of the authenticated
    /// merchant. The secret is opened here, used, and dropped: it never
    /// reaches the guest. Another merchant's credential is `not-found`.
    async fn with_secret<R>(
        &mut self,
        credential_id: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, HostError> {
        let scope = &self.scope;
        let storage = scope.storage()?;
        let me = scope.merchant()?;
        match storage.store.plugin_credential_owner(credential_id).await {
            Ok(Some(owner)) if owner == me => {}
            Ok(_) => return Err(HostError::NotFound),
            Err(e) => return Err(super::store_error(scope, e)),
        }
        match storage.merchants.secret_for_signing(credential_id).await {
            Ok(Some(secret)) => Ok(f(&secret)),
            Ok(None) => Err(HostError::NotFound),
            Err(e) => Err(super::store_failure(scope, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_md5_signature_of_pay_orders_is_expressible_as_digest_parts() {
        // sign = md5(md5(salt) . md5(secure_key)), hex of hex.
        let salt = b"abc";
        let key = b"secret-key";
        let expected = {
            let inner = format!(
                "{}{}",
                hex::encode(md5::Md5::digest(salt)),
                hex::encode(md5::Md5::digest(key))
            );
            md5::Md5::digest(inner.as_bytes()).to_vec()
        };
        let parts = [
            DigestPart::Bytes(hex::encode(md5::Md5::digest(salt)).into_bytes()),
            DigestPart::SecretDigestHex(DigestAlgorithm::Md5),
        ];
        assert_eq!(digest_parts(DigestAlgorithm::Md5, &parts, key), expected);
    }
}
