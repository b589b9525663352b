//! Merchants and their credentials, and the protection of merchant secrets.
//!
//! A merchant holds credentials; each credential has a `kind` label chosen by the dialect
//! that uses it ("api-key", "bearer", "secure-key", …), an optional public id presented in
//! clear beside a signature (an app id), and a secret.
//!
//! Secrets at rest: every secret is sealed with XChaCha20-Poly1305 under a key derived from
//! the operator's master key, with the credential id as associated data (a sealed secret
//! copied onto another row does not open). To find the credential a client presents without
//! decrypting every row, each row also carries `lookup_hash` = HMAC-SHA256 under a second
//! derived key of `kind ‖ 0x00 ‖ secret`: a database dump reveals neither the secret nor a
//! hash that can be brute-forced without the master key.
//!
//! The plaintext of a secret leaves this module exactly once, when it is issued, so that
//! the operator or the dialect can hand it to the merchant. Afterwards it is only used
//! inside the host (signing, verifying) by credential id.
//!
//! Credentials belong to a plugin. A merchant may serve one plugin (`merchant.plugin`:
//! created by that plugin, or by the operator with `--plugin`) or, created by the operator
//! without a plugin, every plugin. Either way each credential records the plugin it was
//! issued for, so an operator merchant used by two dialects holds two independent
//! credential sets: a plugin authenticates requests with its own credentials (and with the
//! operator's generic ones, issued without a plugin), and lists, signs with, rotates and
//! revokes only its own. The operator replaces one plugin's set with [`Merchants::rotate`].

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// The operator's 32-byte master key.
#[derive(Clone)]
pub struct MasterKey {
    seal_key: [u8; 32],
    lookup_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a master key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("master key file {path}: {source}")]
    Invalid {
        path: String,
        source: InvalidMasterKey,
    },
}

/// Text that is not a master key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMasterKey {
    #[error("not hex: {0}")]
    NotHex(String),
    #[error("expected 32 bytes (64 hex characters), got {0}")]
    Length(usize),
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, InvalidMasterKey> {
        let bytes =
            hex::decode(text.trim()).map_err(|e| InvalidMasterKey::NotHex(e.to_string()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| InvalidMasterKey::Length(b.len()))?;
        Ok(MasterKey::from_bytes(&key))
    }

    pub fn from_bytes(key: &[u8; 32]) -> MasterKey {
        MasterKey {
            seal_key: derive(key, b"polypay/credential-seal/v1"),
            lookup_key: derive(key, b"polypay/credential-lookup/v1"),
        }
    }

    /// A fresh random key, hex encoded.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        hex::encode(key)
    }

    /// Reads the key from `path`, or creates the file with a new key when it does not exist
    /// (returns `true` as the second value then, so the caller can warn).
    pub fn load_or_generate(path: &Path) -> Result<(MasterKey, bool), MasterKeyError> {
        let display = path.display().to_string();
        let (text, created) =
            read_or_create_secret_file(path, MasterKey::generate_hex).map_err(|source| {
                MasterKeyError::Io {
                    path: display.clone(),
                    source,
                }
            })?;
        let key = MasterKey::from_hex(&text).map_err(|source| MasterKeyError::Invalid {
            path: display,
            source,
        })?;
        Ok((key, created))
    }

    /// Seals `secret` for the credential `credential_id`: nonce ‖ ciphertext+tag.
    pub fn seal(&self, credential_id: &str, secret: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.seal_key).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: credential_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a secret sealed by [`MasterKey::seal`] for the same credential id.
    pub fn open(&self, credential_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 24 + 16 {
            return Err(SecretError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        XChaCha20Poly1305::new((&self.seal_key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: credential_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Corrupt)
    }

    /// The keyed lookup hash of a secret of a given kind, hex.
    pub fn lookup_hash(&self, kind: &str, secret: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.lookup_key)
            .expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(secret);
        hex::encode(mac.finalize().into_bytes())
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Reads the secret in the file at `path` (trimmed), or creates the file, readable by its
/// owner only, with `generate()` when it does not exist; `true` as the second value then.
/// Development mode keeps its generated master key and admin token this way.
pub fn read_or_create_secret_file(
    path: &Path,
    generate: impl FnOnce() -> String,
) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = generate();
            write_private(path, &text)?;
            Ok((text, true))
        }
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// A stored secret could not be opened: wrong master key or a tampered row.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("a sealed secret does not open with this master key (wrong key or tampered row)")]
    Corrupt,
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// How the secret (or public id) of a new credential is generated: `prefix` followed by
/// a random body in `encoding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SecretFormat {
    /// Prepended verbatim, e.g. `wopay_live_`; at most 64 bytes.
    pub prefix: String,
    pub encoding: SecretEncoding,
    /// Random bytes (hex) or characters (alphanumeric), 16 to 128; ignored for UUIDs.
    pub len: usize,
}

/// The random body of a [`SecretFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretEncoding {
    /// A random UUIDv4 in its hyphenated form.
    Uuid,
    /// `len` random bytes, lower-case hex.
    Hex,
    /// `len` random characters from `[A-Za-z0-9]`.
    Alphanumeric,
}

/// A secret format that would give weak or unwieldy secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakSecretFormat {
    #[error("secret prefix is at most 64 bytes")]
    LongPrefix,
    #[error("secret length must be {min} to {max}")]
    Length { min: usize, max: usize },
}

impl SecretFormat {
    /// Secrets shorter than this are guessable; longer ones are not useful.
    const LEN: std::ops::RangeInclusive<usize> = 16..=128;

    pub fn uuid() -> Self {
        SecretFormat {
            prefix: String::new(),
            encoding: SecretEncoding::Uuid,
            len: 0,
        }
    }

    pub fn hex(len: usize) -> Self {
        SecretFormat {
            prefix: String::new(),
            encoding: SecretEncoding::Hex,
            len,
        }
    }

    pub fn alphanumeric(prefix: &str, len: usize) -> Self {
        SecretFormat {
            prefix: prefix.to_string(),
            encoding: SecretEncoding::Alphanumeric,
            len,
        }
    }

    /// Refuses formats that give weak or unwieldy secrets.
    pub fn validate(&self) -> Result<(), WeakSecretFormat> {
        if self.prefix.len() > 64 {
            return Err(WeakSecretFormat::LongPrefix);
        }
        if self.encoding != SecretEncoding::Uuid && !Self::LEN.contains(&self.len) {
            return Err(WeakSecretFormat::Length {
                min: *Self::LEN.start(),
                max: *Self::LEN.end(),
            });
        }
        Ok(())
    }

    /// A fresh random value in this format.
    pub fn generate(&self) -> String {
        let mut rng = rand::rng();
        let body = match self.encoding {
            SecretEncoding::Uuid => uuid::Uuid::new_v4().to_string(),
            SecretEncoding::Hex => {
                let mut bytes = vec![0u8; self.len];
                rng.fill_bytes(&mut bytes);
                hex::encode(bytes)
            }
            SecretEncoding::Alphanumeric => {
                use rand::Rng;
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                (0..self.len)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                    .collect()
            }
        };
        format!("{}{body}", self.prefix)
    }
}

/// What credential a merchant gets: its kind, how its secret looks, and whether it has a
/// public id (and how that looks). Dialect plugins declare theirs in their manifest; the
/// default for merchants created without a plugin is one `api-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CredentialSpec {
    pub kind: String,
    pub secret: SecretFormat,
    pub public_id: Option<SecretFormat>,
}

impl CredentialSpec {
    pub fn default_set() -> Vec<CredentialSpec> {
        vec![CredentialSpec {
            kind: "api-key".into(),
            secret: SecretFormat::hex(32),
            public_id: None,
        }]
    }
}

pub use crate::store::merchants::{Credential, Merchant};

/// A credential at the one moment its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IssuedCredential {
    pub id: String,
    /// The plugin it is issued for; `None`: the operator's generic credential.
    pub plugin: Option<String>,
    pub kind: String,
    pub public_id: Option<String>,
    pub secret: String,
}

/// A new merchant with the credentials issued for it.
#[derive(Debug, Clone, Serialize)]
pub struct NewMerchant {
    pub merchant: Merchant,
    pub credentials: Vec<IssuedCredential>,
}

/// Merchant operations over the store, holding the master key.
#[derive(Clone)]
pub struct Merchants {
    store: Store,
    key: MasterKey,
}

/// Errors of merchant operations a caller can cause.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant {0} not found")]
    NotFound(String),
    #[error("merchant name must be 1 to 200 characters")]
    InvalidName,
    #[error(
        "merchant {merchant} belongs to plugin `{owner}`: it holds no credentials of another plugin"
    )]
    OtherPlugin { merchant: String, owner: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Merchants {
    pub fn new(store: Store, key: MasterKey) -> Merchants {
        Merchants { store, key }
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// Creates a merchant and issues one credential per spec, in one transaction. With
    /// `plugin` the merchant belongs to that plugin alone, its credentials are that plugin's,
    /// and `plugin_data` is what the plugin keeps about it; without, it is an operator
    /// merchant that every plugin may serve, with generic credentials (`plugin_data` is then
    /// the operator's own note, which no plugin reads).
    pub async fn create(
        &self,
        name: &str,
        plugin: Option<&str>,
        plugin_data: serde_json::Value,
        specs: &[CredentialSpec],
    ) -> Result<NewMerchant, MerchantError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(MerchantError::InvalidName);
        }
        let now = crate::store::now_ms();
        let merchant = Merchant {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            plugin: plugin.map(str::to_string),
            profile: if plugin.is_some() {
                serde_json::json!({})
            } else {
                plugin_data.clone()
            },
            disabled: false,
            created_at: now,
        };
        let issued: Vec<_> = specs.iter().map(|spec| self.issue(plugin, spec)).collect();
        let mut tx = self.store.begin().await?;
        crate::store::merchants::insert_merchant(&mut tx, &merchant).await?;
        if let Some(plugin) = plugin {
            crate::store::merchants::set_plugin_data(
                &mut tx,
                &merchant.id,
                plugin,
                &plugin_data,
                now,
            )
            .await?;
        }
        for (_, row) in &issued {
            crate::store::merchants::insert_credential(&mut tx, &merchant.id, row, now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(NewMerchant {
            merchant,
            credentials: issued.into_iter().map(|(c, _)| c).collect(),
        })
    }

    /// Replaces the credentials a merchant holds for `plugin` (`None`: the operator's
    /// generic ones): revokes the live ones and issues a fresh set per spec, in one
    /// transaction. Public ids (app ids) are kept: clients configure them once. Other
    /// plugins' credentials are untouched. A merchant that belongs to a plugin holds that
    /// plugin's credentials only.
    pub async fn rotate(
        &self,
        merchant_id: &str,
        plugin: Option<&str>,
        specs: &[CredentialSpec],
    ) -> Result<Vec<IssuedCredential>, MerchantError> {
        let mut tx = self.store.begin().await?;
        let merchant = crate::store::merchants::get_merchant(&mut tx, merchant_id)
            .await?
            .ok_or_else(|| MerchantError::NotFound(merchant_id.into()))?;
        if let Some(owner) = &merchant.plugin
            && plugin != Some(owner.as_str())
        {
            return Err(MerchantError::OtherPlugin {
                merchant: merchant.id,
                owner: owner.clone(),
            });
        }
        let live = crate::store::merchants::live_credentials(&mut tx, &merchant.id, plugin).await?;
        let now = crate::store::now_ms();
        crate::store::merchants::revoke_credentials(&mut tx, &merchant.id, plugin, now).await?;
        let mut issued = Vec::new();
        for spec in specs {
            let keep_public = live
                .iter()
                .find(|c| c.kind == spec.kind)
                .and_then(|c| c.public_id.clone());
            let (mut credential, mut row) = self.issue(plugin, spec);
            if keep_public.is_some() {
                credential.public_id = keep_public.clone();
                row.public_id = keep_public;
            }
            crate::store::merchants::insert_credential(&mut tx, &merchant.id, &row, now).await?;
            issued.push(credential);
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(issued)
    }

    pub async fn list(&self) -> Result<Vec<(Merchant, Vec<Credential>)>, MerchantError> {
        Ok(crate::store::merchants::list_merchants_with_credentials(self.store.pool()).await?)
    }

    /// Finds the live credential of `kind` whose secret is `presented` among those `plugin`
    /// may authenticate with (its own and the operator's generic ones), and its merchant.
    pub async fn authenticate(
        &self,
        plugin: &str,
        kind: &str,
        presented: &str,
    ) -> Result<Option<(Merchant, Credential)>, MerchantError> {
        let hash = self.key.lookup_hash(kind, presented.as_bytes());
        let Some((merchant, credential, sealed)) =
            crate::store::merchants::find_by_lookup_hash(self.store.pool(), plugin, kind, &hash)
                .await?
        else {
            return Ok(None);
        };
        // The keyed hash already matched; opening the sealed secret and comparing it in
        // constant time also proves the row was not altered.
        let secret = self.key.open(&credential.id, &sealed)?;
        if !constant_time_eq(&secret, presented.as_bytes()) || merchant.disabled {
            return Ok(None);
        }
        Ok(Some((merchant, credential)))
    }

    /// The plaintext secret of a credential, for host-side signing only. Never hand the
    /// result to a plugin or a client.
    pub async fn secret_for_signing(
        &self,
        credential_id: &str,
    ) -> Result<Option<Vec<u8>>, MerchantError> {
        let Some(sealed) =
            crate::store::merchants::sealed_secret(self.store.pool(), credential_id).await?
        else {
            return Ok(None);
        };
        Ok(Some(self.key.open(credential_id, &sealed)?))
    }

    fn issue(
        &self,
        plugin: Option<&str>,
        spec: &CredentialSpec,
    ) -> (IssuedCredential, crate::store::merchants::CredentialRow) {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = spec.secret.generate();
        let public_id = spec.public_id.as_ref().map(SecretFormat::generate);
        let row = crate::store::merchants::CredentialRow {
            id: id.clone(),
            plugin: plugin.map(str::to_owned),
            kind: spec.kind.clone(),
            public_id: public_id.clone(),
            lookup_hash: self.key.lookup_hash(&spec.kind, secret.as_bytes()),
            sealed: self.key.seal(&id, secret.as_bytes()),
        };
        (
            IssuedCredential {
                id,
                plugin: plugin.map(str::to_owned),
                kind: spec.kind.clone(),
                public_id,
                secret,
            },
            row,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_for_its_credential_and_key() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal("cred-1", b"s3cret");
        assert_eq!(key.open("cred-1", &sealed).unwrap(), b"s3cret");
        assert!(key.open("cred-2", &sealed).is_err());
        assert!(
            MasterKey::from_bytes(&[8; 32])
                .open("cred-1", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("cred-1", &tampered).is_err());
    }

    #[test]
    fn lookup_hash_depends_on_kind_secret_and_key() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let h = key.lookup_hash("api-key", b"abc");
        assert_eq!(h, key.lookup_hash("api-key", b"abc"));
        assert_ne!(h, key.lookup_hash("bearer", b"abc"));
        assert_ne!(h, key.lookup_hash("api-key", b"abd"));
        assert_ne!(
            h,
            MasterKey::from_bytes(&[9; 32]).lookup_hash("api-key", b"abc")
        );
    }

    #[test]
    fn master_key_hex_must_be_32_bytes() {
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(MasterKey::from_hex("zz").is_err());
    }

    #[test]
    fn secret_formats_generate_what_they_say() {
        assert_eq!(SecretFormat::uuid().generate().len(), 36);
        let hex = SecretFormat::hex(16).generate();
        assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        let alnum = SecretFormat::alphanumeric("wopay_live_", 24).generate();
        assert!(alnum.starts_with("wopay_live_") && alnum.len() == 35);
        assert!(
            alnum["wopay_live_".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }

    #[test]
    fn generated_master_key_file_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let (a, created) = MasterKey::load_or_generate(&path).unwrap();
        assert!(created);
        let (b, created) = MasterKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(a.lookup_hash("k", b"x"), b.lookup_hash("k", b"x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
