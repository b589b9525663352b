//! `merchants`: authentication, merchants and credentials.
//!
//! A plugin reaches a merchant only if the merchant is enabled and was
//! created by this plugin or by the operator (`merchants.plugin` NULL).
//! Secrets are generated here, returned to the guest once at issue or
//! rotation, and stored only sealed (see `crate::merchant`).
//!
//! What is kept per plugin, so that dialects sharing an operator merchant
//! cannot reach each other's:
//! - credentials: each records the plugin it was issued for. A plugin
//!   authenticates (`authenticate`, `authenticate-signed`, `find-credential`)
//!   with its own and with the operator's generic ones; it lists, signs with
//!   (`crypto`), rotates and revokes only its own. Another plugin's credential
//!   is `not-found`, exactly like one that does not exist.
//! - `plugin-data`: one document per (merchant, plugin).
//! - the name of an operator merchant is the operator's: `update-merchant`
//!   may rename only a merchant the plugin owns (`forbidden` otherwise).
//!
//! A digest proof must involve the secret (see `crypto::check_secret_parts`):
//! a proof built from public parts only would authenticate anyone who knows a
//! public id.

use super::crypto::{check_secret_parts, constant_time_eq, digest_parts, hmac_sha256};
use super::{HostResult, guest, store_error, store_failure};
use crate::merchant::{self, MerchantError};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::merchants::{
    Credential, CredentialRequest, Host, IssuedCredential, Merchant, MerchantUpdate, NewMerchant,
    Proof, SecretEncoding, SecretFormat,
};
use crate::plugin::bindings::polypay::plugin::plugin_types::CredentialTemplate;
use crate::plugin::state::{CallKind, CallScope, PluginState};
use crate::store::merchants::CredentialRow;

/// Longest secret, public id or kind the host accepts from a guest.
const MAX_PRESENTED: usize = 1024;

fn visible(scope: &CallScope, m: &merchant::Merchant) -> bool {
    !m.disabled && m.plugin.as_deref().is_none_or(|p| p == scope.plugin_name())
}

/// The guest's view of a merchant: its name and what this plugin keeps about it.
pub(crate) fn merchant_to_wit(
    m: &merchant::Merchant,
    plugin_data: Option<serde_json::Value>,
) -> Merchant {
    Merchant {
        id: m.id.clone(),
        name: m.name.clone(),
        plugin_data: plugin_data
            .unwrap_or_else(|| serde_json::json!({}))
            .to_string(),
        created_at: m.created_at,
    }
}

/// Merchant `id` as this plugin sees it, if it exists.
async fn merchant_view(
    scope: &CallScope,
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<Merchant>, crate::store::StoreError> {
    let Some(m) = crate::store::merchants::get_merchant(conn, id).await? else {
        return Ok(None);
    };
    let data = crate::store::merchants::plugin_data(conn, id, scope.plugin_name()).await?;
    Ok(Some(merchant_to_wit(&m, data)))
}

fn credential_to_wit(c: &merchant::Credential) -> Credential {
    Credential {
        id: c.id.clone(),
        merchant_id: c.merchant_id.clone(),
        kind: c.kind.clone(),
        public_id: c.public_id.clone(),
        created_at: c.created_at,
    }
}

const KIND_RULE: &str = "credential kind must be 1-64 characters of [A-Za-z0-9_-]";

fn is_valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_kind(kind: &str) -> Result<(), HostError> {
    if is_valid_kind(kind) {
        Ok(())
    } else {
        Err(HostError::Invalid(KIND_RULE.into()))
    }
}

/// The host's reading of a guest's secret format.
pub(crate) fn secret_format_from_wit(format: &SecretFormat) -> merchant::SecretFormat {
    merchant::SecretFormat {
        prefix: format.prefix.clone(),
        encoding: match format.encoding {
            SecretEncoding::UuidV4 => merchant::SecretEncoding::Uuid,
            SecretEncoding::Hex => merchant::SecretEncoding::Hex,
            SecretEncoding::Alphanumeric => merchant::SecretEncoding::Alphanumeric,
        },
        len: format.bytes as usize,
    }
}

/// The host's reading of a manifest's credential template.
pub(crate) fn credential_spec(template: &CredentialTemplate) -> merchant::CredentialSpec {
    merchant::CredentialSpec {
        kind: template.kind.clone(),
        secret: secret_format_from_wit(&template.secret),
        public_id: template.public_id.as_ref().map(secret_format_from_wit),
    }
}

/// Why a manifest's credential template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadCredentialTemplate {
    #[error("{KIND_RULE}")]
    Kind,
    #[error("kind `{0}` is declared twice")]
    DeclaredTwice(String),
    #[error("kind `{kind}`: {reason}")]
    Weak {
        kind: String,
        reason: merchant::WeakSecretFormat,
    },
}

/// Refuses credential templates the host would not issue: bad kinds, weak
/// formats, or two templates of one kind.
pub(crate) fn check_credential_templates(
    templates: &[CredentialTemplate],
) -> Result<(), BadCredentialTemplate> {
    for (i, template) in templates.iter().enumerate() {
        if !is_valid_kind(&template.kind) {
            return Err(BadCredentialTemplate::Kind);
        }
        if templates[..i].iter().any(|t| t.kind == template.kind) {
            return Err(BadCredentialTemplate::DeclaredTwice(template.kind.clone()));
        }
        let spec = credential_spec(template);
        for format in std::iter::once(&spec.secret).chain(spec.public_id.as_ref()) {
            format
                .validate()
                .map_err(|reason| BadCredentialTemplate::Weak {
                    kind: template.kind.clone(),
                    reason,
                })?;
        }
    }
    Ok(())
}

/// A new secret as `format` asks.
fn generate_secret(format: &SecretFormat) -> Result<String, HostError> {
    let format = secret_format_from_wit(format);
    format
        .validate()
        .map_err(|e| HostError::Invalid(e.to_string()))?;
    Ok(format.generate())
}

fn merchant_error(scope: &CallScope, e: MerchantError) -> HostError {
    match e {
        MerchantError::NotFound(_) => HostError::NotFound,
        MerchantError::InvalidName => {
            HostError::Invalid("merchant name must be 1 to 200 characters".into())
        }
        other => store_failure(scope, &other),
    }
}

/// A database connection for a call about merchant `merchant_id`, which must be the
/// authenticated merchant itself.
async fn own_connection(
    scope: &CallScope,
    merchant_id: &str,
) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, HostError> {
    let storage = scope.storage()?;
    scope.require_self(merchant_id)?;
    storage
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| store_failure(scope, &e))
}

/// The live credential `id` of the authenticated merchant issued by this plugin.
async fn own_credential(scope: &CallScope, id: &str) -> Result<merchant::Credential, HostError> {
    let storage = scope.storage()?;
    let me = scope.merchant()?;
    let mut conn = storage
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| store_failure(scope, &e))?;
    let live = crate::store::merchants::live_credentials(&mut conn, me, Some(scope.plugin_name()))
        .await
        .map_err(|e| store_error(scope, e))?;
    live.into_iter()
        .find(|c| c.id == id)
        .ok_or(HostError::NotFound)
}

async fn issue(
    scope: &CallScope,
    merchant_id: &str,
    kind: &str,
    public_id: Option<String>,
    secret: String,
) -> Result<IssuedCredential, HostError> {
    let storage = scope.storage()?;
    let key = storage.merchants.master_key();
    let id = uuid::Uuid::new_v4().to_string();
    let row = CredentialRow {
        id: id.clone(),
        plugin: Some(scope.plugin_name().to_owned()),
        kind: kind.to_owned(),
        public_id: public_id.clone(),
        lookup_hash: key.lookup_hash(kind, secret.as_bytes()),
        sealed: key.seal(&id, secret.as_bytes()),
    };
    storage
        .store
        .plugin_insert_credential(merchant_id, &row)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => HostError::Conflict(
                "a credential of this kind with this public id or secret exists".into(),
            ),
            other => store_failure(scope, &other),
        })?;
    let credential = Credential {
        id,
        merchant_id: merchant_id.to_owned(),
        kind: kind.to_owned(),
        public_id,
        created_at: crate::store::now_ms(),
    };
    Ok(IssuedCredential { credential, secret })
}

impl Host for PluginState {
    async fn authenticate(
        &mut self,
        kind: String,
        presented_secret: String,
    ) -> HostResult<Credential> {
        let scope = &self.scope;
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        if presented_secret.is_empty() || presented_secret.len() > MAX_PRESENTED || kind.len() > 64
        {
            return guest(Err(HostError::Unauthorized));
        }
        let found = match storage
            .merchants
            .authenticate(scope.plugin_name(), &kind, &presented_secret)
            .await
        {
            Ok(found) => found,
            Err(e) => return guest(Err(merchant_error(scope, e))),
        };
        match found {
            Some((m, c)) if visible(scope, &m) => {
                let credential = credential_to_wit(&c);
                guest(self.scope.become_merchant(&m.id).map(|()| credential))
            }
            _ => guest(Err(HostError::Unauthorized)),
        }
    }

    async fn authenticate_signed(
        &mut self,
        kind: String,
        public_id: String,
        proof: Proof,
    ) -> HostResult<Credential> {
        let scope = &self.scope;
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        if public_id.is_empty() || public_id.len() > MAX_PRESENTED || kind.len() > 64 {
            return guest(Err(HostError::Unauthorized));
        }
        if let Proof::Digest(p) = &proof {
            // Before any lookup: whether the shape is acceptable must not depend on
            // which credentials exist. The secret's length is checked again below.
            if let Err(e) = check_secret_parts(&p.parts, 0) {
                return guest(Err(e));
            }
        }
        let found = crate::store::merchants::find_by_public_id(
            storage.store.pool(),
            scope.plugin_name(),
            &kind,
            &public_id,
        )
        .await;
        let (m, c) = match found {
            Ok(Some((m, c))) if visible(scope, &m) => (m, c),
            Ok(_) => return guest(Err(HostError::Unauthorized)),
            Err(e) => return guest(Err(store_error(scope, e))),
        };
        let secret = match storage.merchants.secret_for_signing(&c.id).await {
            Ok(Some(secret)) => secret,
            Ok(None) => return guest(Err(HostError::Unauthorized)),
            Err(e) => return guest(Err(merchant_error(scope, e))),
        };
        let proven = match &proof {
            Proof::HmacSha256(p) => constant_time_eq(&hmac_sha256(&secret, &p.message), &p.mac),
            Proof::Digest(p) => match digest_parts(p.algorithm, &p.parts, &secret) {
                Ok(digest) => constant_time_eq(&digest, &p.expected),
                Err(e) => return guest(Err(e)),
            },
        };
        if !proven {
            return guest(Err(HostError::Unauthorized));
        }
        let credential = credential_to_wit(&c);
        guest(self.scope.become_merchant(&m.id).map(|()| credential))
    }

    async fn find_credential(&mut self, kind: String, public_id: String) -> HostResult<Credential> {
        let scope = &self.scope;
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        guest(
            match crate::store::merchants::find_by_public_id(
                storage.store.pool(),
                scope.plugin_name(),
                &kind,
                &public_id,
            )
            .await
            {
                Ok(Some((m, c))) if visible(scope, &m) => Ok(credential_to_wit(&c)),
                Ok(_) => Err(HostError::NotFound),
                Err(e) => Err(store_error(scope, e)),
            },
        )
    }

    async fn current(&mut self) -> wasmtime::Result<Option<Merchant>> {
        let scope = &self.scope;
        let (Ok(storage), Some(me)) = (scope.storage(), scope.merchant_id.as_deref()) else {
            return Ok(None);
        };
        let found = async {
            let mut conn = storage.store.pool().acquire().await?;
            merchant_view(scope, &mut conn, me).await
        };
        match found.await {
            Ok(m) => Ok(m),
            Err(e) => {
                // No merchant is the safe answer when storage fails.
                store_failure(scope, &e);
                Ok(None)
            }
        }
    }

    async fn create_merchant(&mut self, merchant: NewMerchant) -> HostResult<Merchant> {
        let scope = &self.scope;
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        if scope.kind != CallKind::Request || scope.merchant_id.is_some() {
            return guest(Err(HostError::Forbidden));
        }
        let profile = match merchant
            .plugin_data
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
        {
            Ok(p) => p.unwrap_or_else(|| serde_json::json!({})),
            Err(e) => {
                return guest(Err(HostError::Invalid(format!(
                    "plugin-data is not JSON: {e}"
                ))));
            }
        };
        let created = storage
            .merchants
            .create(
                &merchant.name,
                Some(scope.plugin_name()),
                profile.clone(),
                &[],
            )
            .await;
        match created {
            Ok(new) => {
                self.wrote();
                self.scope.merchant_id = Some(new.merchant.id.clone());
                guest(Ok(merchant_to_wit(&new.merchant, Some(profile))))
            }
            Err(e) => guest(Err(merchant_error(scope, e))),
        }
    }

    async fn get_merchant(&mut self, id: String) -> HostResult<Merchant> {
        let scope = &self.scope;
        guest(
            async {
                let mut conn = own_connection(scope, &id).await?;
                match merchant_view(scope, &mut conn, &id).await {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(HostError::NotFound),
                    Err(e) => Err(store_error(scope, e)),
                }
            }
            .await,
        )
    }

    async fn update_merchant(
        &mut self,
        id: String,
        update: MerchantUpdate,
    ) -> HostResult<Merchant> {
        let scope = &self.scope;
        let storage = match scope
            .storage()
            .and_then(|s| scope.require_self(&id).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        if let Some(name) = &update.name
            && (name.trim().is_empty() || name.chars().count() > 200)
        {
            return guest(Err(HostError::Invalid(
                "merchant name must be 1 to 200 characters".into(),
            )));
        }
        let profile = match update
            .plugin_data
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
        {
            Ok(p) => p,
            Err(e) => {
                return guest(Err(HostError::Invalid(format!(
                    "plugin-data is not JSON: {e}"
                ))));
            }
        };
        if update.name.is_some() {
            // The name of an operator merchant is the operator's, shared by every plugin.
            let owner = async {
                let mut conn = storage.store.pool().acquire().await?;
                crate::store::merchants::get_merchant(&mut conn, &id).await
            };
            match owner.await {
                Ok(Some(m)) if m.plugin.as_deref() == Some(scope.plugin_name()) => {}
                Ok(Some(_)) => return guest(Err(HostError::Forbidden)),
                Ok(None) => return guest(Err(HostError::NotFound)),
                Err(e) => return guest(Err(store_error(scope, e))),
            }
        }
        let updated = storage
            .store
            .plugin_update_merchant(
                &id,
                scope.plugin_name(),
                update.name.as_deref().map(str::trim),
                profile.as_ref(),
            )
            .await;
        guest(match updated {
            Ok(Some((m, data))) => {
                self.wrote();
                Ok(merchant_to_wit(&m, Some(data)))
            }
            Ok(None) => Err(HostError::NotFound),
            Err(e) => Err(store_error(&self.scope, e)),
        })
    }

    async fn issue_credential(
        &mut self,
        merchant_id: String,
        request: CredentialRequest,
    ) -> HostResult<IssuedCredential> {
        let checked = self
            .scope
            .storage()
            .and_then(|_| self.scope.require_self(&merchant_id))
            .and_then(|()| {
                valid_kind(&request.kind)?;
                if request
                    .public_id
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.len() > 128)
                {
                    return Err(HostError::Invalid(
                        "public id must be 1 to 128 bytes".into(),
                    ));
                }
                generate_secret(&request.format)
            });
        let secret = match checked {
            Ok(secret) => secret,
            Err(e) => return guest(Err(e)),
        };
        let issued = issue(
            &self.scope,
            &merchant_id,
            &request.kind,
            request.public_id,
            secret,
        )
        .await;
        self.after_write(issued)
    }

    async fn rotate_credential(
        &mut self,
        credential_id: String,
        format: SecretFormat,
    ) -> HostResult<IssuedCredential> {
        let current = match own_credential(&self.scope, &credential_id).await {
            Ok(c) => c,
            Err(e) => return guest(Err(e)),
        };
        let secret = match generate_secret(&format) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let storage = scope
            .storage()
            .map_err(|e| wasmtime::format_err!("storage vanished: {e:?}"))?;
        let key = storage.merchants.master_key();
        let replaced = storage
            .store
            .plugin_replace_secret(
                scope.plugin_name(),
                &current.id,
                &key.lookup_hash(&current.kind, secret.as_bytes()),
                &key.seal(&current.id, secret.as_bytes()),
            )
            .await;
        if let Ok(true) = replaced {
            self.wrote();
        }
        let scope = &self.scope;
        guest(match replaced {
            Ok(true) => Ok(IssuedCredential {
                credential: credential_to_wit(&current),
                secret,
            }),
            Ok(false) => Err(HostError::NotFound),
            Err(e) => Err(store_error(scope, e)),
        })
    }

    async fn revoke_credential(&mut self, credential_id: String) -> HostResult<()> {
        let current = match own_credential(&self.scope, &credential_id).await {
            Ok(c) => c,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let storage = scope
            .storage()
            .map_err(|e| wasmtime::format_err!("storage vanished: {e:?}"))?;
        let revoked = storage
            .store
            .plugin_revoke_credential(scope.plugin_name(), &current.id)
            .await;
        guest(match revoked {
            Ok(true) => {
                self.wrote();
                Ok(())
            }
            Ok(false) => Err(HostError::NotFound),
            Err(e) => Err(store_error(&self.scope, e)),
        })
    }

    async fn list_credentials(&mut self, merchant_id: String) -> HostResult<Vec<Credential>> {
        let scope = &self.scope;
        guest(
            async {
                let mut conn = own_connection(scope, &merchant_id).await?;
                crate::store::merchants::live_credentials(
                    &mut conn,
                    &merchant_id,
                    Some(scope.plugin_name()),
                )
                .await
                .map(|list| list.iter().map(credential_to_wit).collect())
                .map_err(|e| store_error(scope, e))
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_follow_the_requested_format() {
        let hex = generate_secret(&SecretFormat {
            prefix: "sk_".into(),
            encoding: SecretEncoding::Hex,
            bytes: 16,
        })
        .unwrap();
        assert!(
            hex.starts_with("sk_")
                && hex.len() == 3 + 32
                && hex[3..].bytes().all(|b| b.is_ascii_hexdigit())
        );
        let alnum = generate_secret(&SecretFormat {
            prefix: "wopay_live_".into(),
            encoding: SecretEncoding::Alphanumeric,
            bytes: 32,
        })
        .unwrap();
        assert_eq!(alnum.len(), 11 + 32);
        let uuid = generate_secret(&SecretFormat {
            prefix: String::new(),
            encoding: SecretEncoding::UuidV4,
            bytes: 0,
        })
        .unwrap();
        assert!(uuid::Uuid::parse_str(&uuid).is_ok_and(|u| u.get_version_num() == 4));
    }

    #[test]
    fn manifest_credential_templates_are_checked_at_load() {
        let template = |kind: &str, bytes: u32| CredentialTemplate {
            kind: kind.into(),
            secret: SecretFormat {
                prefix: String::new(),
                encoding: SecretEncoding::Hex,
                bytes,
            },
            public_id: None,
        };
        assert_eq!(
            check_credential_templates(&[template("bearer", 32)]),
            Ok(())
        );
        let spec = credential_spec(&template("bearer", 32));
        assert_eq!(spec.secret, merchant::SecretFormat::hex(32));
        assert_eq!(
            check_credential_templates(&[template("bearer", 32), template("bearer", 16)]),
            Err(BadCredentialTemplate::DeclaredTwice("bearer".into()))
        );
        assert_eq!(
            check_credential_templates(&[template("bad kind", 32)]),
            Err(BadCredentialTemplate::Kind)
        );
        let weak = check_credential_templates(&[template("weak", 8)]).unwrap_err();
        assert!(
            matches!(&weak, BadCredentialTemplate::Weak { kind, .. } if kind == "weak"),
            "{weak:?}"
        );
        assert!(weak.to_string().contains("secret length"), "{weak}");
    }

    #[test]
    fn weak_or_oversized_secret_formats_are_refused() {
        for bytes in [0, 8, 15, 129] {
            let r = generate_secret(&SecretFormat {
                prefix: String::new(),
                encoding: SecretEncoding::Hex,
                bytes,
            });
            assert!(matches!(r, Err(HostError::Invalid(_))), "{bytes}");
        }
    }
}
