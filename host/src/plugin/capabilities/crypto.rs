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
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finalize()
}

/// Most secret-bearing parts one digest may name. Real signature schemes name the secret
/// once or twice; each part costs the host a copy (and, for `secret-digest-hex`, a digest).
pub(crate) const MAX_SECRET_PARTS: usize = 16;

/// Largest message (all parts, secrets expanded) the host digests for a guest: signed
/// payment-API messages are small, and the work must stay bounded whatever the guest asks.
pub(crate) const MAX_DIGEST_INPUT: usize = 1 << 20;

/// Checks the parts of a digest over a credential's secret. Refused: no parts, an empty
/// `bytes` part (leave it out), no secret-bearing part (such a "proof" proves nothing
/// about the secret), more than [`MAX_SECRET_PARTS`] secret-bearing parts, or a message
/// longer than [`MAX_DIGEST_INPUT`] once `secret_len` bytes are substituted.
pub(crate) fn check_secret_parts(parts: &[DigestPart], secret_len: usize) -> Result<(), HostError> {
    if parts.is_empty() {
        return Err(HostError::Invalid(
            "a digest over a secret needs parts".into(),
        ));
    }
    let mut secret_parts = 0usize;
    let mut total = 0usize;
    for part in parts {
        total = total.saturating_add(match part {
            DigestPart::Bytes(b) if b.is_empty() => {
                return Err(HostError::Invalid(
                    "empty `bytes` parts are refused: leave them out".into(),
                ));
            }
            DigestPart::Bytes(b) => b.len(),
            DigestPart::Secret => {
                secret_parts += 1;
                secret_len
            }
            DigestPart::SecretDigestHex(a) => {
                secret_parts += 1;
                2 * digest_len(*a)
            }
        });
    }
    if secret_parts == 0 {
        return Err(HostError::Invalid(
            "a digest over a secret needs a `secret` or `secret-digest-hex` part".into(),
        ));
    }
    if secret_parts > MAX_SECRET_PARTS {
        return Err(HostError::Invalid(format!(
            "at most {MAX_SECRET_PARTS} secret-bearing parts per digest"
        )));
    }
    if total > MAX_DIGEST_INPUT {
        return Err(HostError::Invalid(format!(
            "a digest over a secret covers at most {MAX_DIGEST_INPUT} bytes"
        )));
    }
    Ok(())
}

fn digest_len(algorithm: DigestAlgorithm) -> usize {
    match algorithm {
        DigestAlgorithm::Md5 => 16,
        DigestAlgorithm::Sha256 => 32,
        DigestAlgorithm::Sha512 => 64,
    }
}

/// The digest of `parts` concatenated, where parts may stand for `secret`, after
/// [`check_secret_parts`]. Streamed into the hasher: no message is assembled, and the
/// digest of the secret is computed once per algorithm however often it is named.
pub(crate) fn digest_parts(
    algorithm: DigestAlgorithm,
    parts: &[DigestPart],
    secret: &[u8],
) -> Result<Vec<u8>, HostError> {
    check_secret_parts(parts, secret.len())?;
    let mut hasher = Hasher::new(algorithm);
    let mut secret_hex: [Option<String>; 3] = Default::default();
    for part in parts {
        match part {
            DigestPart::Bytes(b) => hasher.update(b),
            DigestPart::Secret => hasher.update(secret),
            DigestPart::SecretDigestHex(a) => {
                let slot = &mut secret_hex[*a as usize];
                let hex = slot.get_or_insert_with(|| hex::encode(digest(*a, secret)));
                hasher.update(hex.as_bytes());
            }
        }
    }
    Ok(hasher.finalize())
}

/// One of the digests the WIT names, fed incrementally.
enum Hasher {
    Md5(md5::Md5),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
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
            .await
            .and_then(|r| r))
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
                digest_parts(algorithm, &parts, secret).map(|d| constant_time_eq(&d, &expected))
            })
            .await
            .and_then(|r| r))
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
    /// merchant that this plugin issued. The secret is opened here, used, and
    /// dropped: it never reaches the guest. Another merchant's credential,
    /// another plugin's, or the operator's generic one is `not-found`.
    async fn with_secret<R>(
        &mut self,
        credential_id: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, HostError> {
        let scope = &self.scope;
        let storage = scope.storage()?;
        let me = scope.merchant()?;
        match storage
            .store
            .plugin_credential_owner(scope.plugin_name(), credential_id)
            .await
        {
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
        assert_eq!(
            digest_parts(DigestAlgorithm::Md5, &parts, key).unwrap(),
            expected
        );
    }

    #[test]
    fn digests_over_a_secret_must_name_it_and_stay_bounded() {
        let secret = b"0123456789abcdef";
        let refused = |parts: &[DigestPart]| {
            matches!(
                digest_parts(DigestAlgorithm::Sha256, parts, secret),
                Err(HostError::Invalid(_))
            )
        };
        assert!(refused(&[]), "no parts");
        assert!(
            refused(&[DigestPart::Bytes(b"x".to_vec())]),
            "no secret part"
        );
        assert!(
            refused(&[DigestPart::Bytes(Vec::new()), DigestPart::Secret]),
            "an empty part"
        );
        assert!(
            refused(&vec![DigestPart::Secret; MAX_SECRET_PARTS + 1]),
            "too many secret parts"
        );
        assert!(
            refused(&[
                DigestPart::Bytes(vec![b'a'; MAX_DIGEST_INPUT]),
                DigestPart::Secret
            ]),
            "too long"
        );
        let twice = [
            DigestPart::SecretDigestHex(DigestAlgorithm::Sha512),
            DigestPart::Bytes(b"|".to_vec()),
            DigestPart::SecretDigestHex(DigestAlgorithm::Sha512),
        ];
        let hex = hex::encode(Sha512::digest(secret));
        assert_eq!(
            digest_parts(DigestAlgorithm::Sha256, &twice, secret).unwrap(),
            Sha256::digest(format!("{hex}|{hex}").as_bytes()).to_vec()
        );
    }
}
