//! Merchant management: self-registration, the merchant's own record, key regeneration
//! and payment statistics. The merchant's `email` and `webhook_url` (and when it was last
//! updated) are this plugin's data on the host's merchant record.

use crate::envelope::{self, ok, rfc3339};
use crate::{Body, KEY_KIND, SECRET_KIND, Settings, is_email, is_url};
use polypay_plugin_sdk::merchants::{
    CredentialRequest, Merchant, MerchantUpdate, NewMerchant, SecretFormat,
};
use polypay_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// This plugin's data on a merchant.
#[derive(Serialize, Deserialize, Default)]
pub struct Profile {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub updated_at: Option<i64>,
}

impl Profile {
    pub fn of(merchant: &Merchant) -> Profile {
        serde_json::from_str(&merchant.plugin_data).unwrap_or_default()
    }
}

fn view(merchant: &Merchant) -> serde_json::Value {
    let profile = Profile::of(merchant);
    serde_json::json!({
        "id": merchant.id,
        "name": merchant.name,
        "email": profile.email,
        "webhook_url": profile.webhook_url,
        "status": "active",
        "created_at": rfc3339(merchant.created_at),
        "updated_at": rfc3339(profile.updated_at.unwrap_or(merchant.created_at)),
    })
}

/// `name`: 1 to 200 characters, not blank.
fn check_name(name: &str) -> Result<(), Response> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(envelope::bad_request(
            "name must be 1 to 200 characters long",
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), Response> {
    if is_email(email) {
        Ok(())
    } else {
        Err(envelope::bad_request("email is not a valid email address"))
    }
}

fn check_webhook_url(url: &str) -> Result<(), Response> {
    if is_url(url) {
        Ok(())
    } else {
        Err(envelope::bad_request("webhook_url must be an http(s) URL"))
    }
}

fn issue(merchant_id: &str, kind: &str, format: SecretFormat) -> Result<String, Response> {
    merchants::issue_credential(
        merchant_id,
        &CredentialRequest {
            kind: kind.into(),
            public_id: None,
            format,
        },
    )
    .map(|issued| issued.secret)
    .map_err(|e| envelope::host_failure("merchants.issue-credential", e))
}

/// `POST /api/v1/merchants`: open registration; the keys are shown this once.
pub fn register(req: &Request, settings: &Settings) -> Result<Response, Response> {
    if !settings.registration_open {
        return Err(envelope::error(403, "Merchant registration is closed"));
    }
    let body = Body::parse(req)?;
    let name = body.required_string("name")?;
    check_name(name)?;
    let email = body.required_string("email")?;
    check_email(email)?;
    let webhook_url = body.string("webhook_url")?;
    if let Some(url) = webhook_url {
        check_webhook_url(url)?;
    }
    let profile = Profile {
        email: Some(email.into()),
        webhook_url: webhook_url.map(str::to_owned),
        updated_at: None,
    };
    let merchant = merchants::create_merchant(&NewMerchant {
        name: name.into(),
        plugin_data: serde_json::to_string(&profile).ok(),
    })
    .map_err(|e| match e {
        HostError::Invalid(why) => envelope::bad_request(&why),
        other => envelope::host_failure("merchants.create-merchant", other),
    })?;
    let api_key = issue(&merchant.id, KEY_KIND, crate::key_format())?;
    let api_secret = issue(&merchant.id, SECRET_KIND, crate::secret_format())?;
    Ok(ok(
        201,
        &serde_json::json!({
            "merchant_id": merchant.id,
            "name": merchant.name,
            "email": email,
            "api_key": api_key,
            "api_secret": api_secret,
            "created_at": rfc3339(merchant.created_at),
        }),
    ))
}

/// The authenticated merchant, which must be the one the path names (403 otherwise).
fn own_merchant(req: &Request, settings: &Settings) -> Result<Merchant, Response> {
    let merchant = crate::authenticate(req, settings)?;
    if req.param("id") != Some(merchant.id.as_str()) {
        return Err(envelope::forbidden());
    }
    Ok(merchant)
}

/// `GET /api/v1/merchants/{id}`.
pub fn get(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let merchant = own_merchant(req, settings)?;
    Ok(ok(200, &view(&merchant)))
}

/// `PUT /api/v1/merchants/{id}`: any of `name`, `email`, `webhook_url`.
pub fn update(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let merchant = own_merchant(req, settings)?;
    let body = Body::parse(req)?;
    let name = body.string("name")?;
    let email = body.string("email")?;
    let webhook_url = body.string("webhook_url")?;
    if name.is_none() && email.is_none() && webhook_url.is_none() {
        return Err(envelope::bad_request(
            "Nothing to update: give name, email or webhook_url",
        ));
    }
    if let Some(name) = name {
        check_name(name)?;
    }
    if let Some(email) = email {
        check_email(email)?;
    }
    if let Some(url) = webhook_url {
        check_webhook_url(url)?;
    }
    let mut profile = Profile::of(&merchant);
    if let Some(email) = email {
        profile.email = Some(email.into());
    }
    if let Some(url) = webhook_url {
        profile.webhook_url = Some(url.into());
    }
    profile.updated_at = Some(clock::now());
    let updated = merchants::update_merchant(
        &merchant.id,
        &MerchantUpdate {
            name: name.map(str::to_owned),
            plugin_data: serde_json::to_string(&profile).ok(),
        },
    )
    .map_err(|e| match e {
        HostError::Invalid(why) => envelope::bad_request(&why),
        HostError::Forbidden => envelope::error(403, "The name of this merchant is fixed"),
        other => envelope::host_failure("merchants.update-merchant", other),
    })?;
    Ok(ok(200, &view(&updated)))
}

/// `POST /api/v1/merchants/{id}/regenerate-keys`: both keys replaced; the old ones stop
/// working at once.
pub fn regenerate_keys(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let merchant = own_merchant(req, settings)?;
    let credentials = merchants::list_credentials(&merchant.id)
        .map_err(|e| envelope::host_failure("merchants.list-credentials", e))?;
    let renewed = |kind: &str, format: SecretFormat| -> Result<String, Response> {
        let mut secret = None;
        for credential in credentials.iter().filter(|c| c.kind == kind) {
            let issued = merchants::rotate_credential(&credential.id, &format)
                .map_err(|e| envelope::host_failure("merchants.rotate-credential", e))?;
            secret = Some(issued.secret);
        }
        match secret {
            Some(secret) => Ok(secret),
            None => issue(&merchant.id, kind, format),
        }
    };
    let api_key = renewed(KEY_KIND, crate::key_format())?;
    let api_secret = renewed(SECRET_KIND, crate::secret_format())?;
    Ok(ok(
        200,
        &serde_json::json!({
            "api_key": api_key,
            "api_secret": api_secret,
            "generated_at": rfc3339(clock::now()),
        }),
    ))
}

/// A percentage with two decimals, for a report (not money).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

/// `GET /api/v1/merchants/{id}/stats`.
pub fn stats(req: &Request, settings: &Settings) -> Result<Response, Response> {
    own_merchant(req, settings)?;
    let stats = invoices::stats(&invoices::any())
        .map_err(|e| envelope::host_failure("invoices.stats", e))?;
    let volume = stats
        .volumes
        .iter()
        .filter(|v| v.chain == settings.network && v.asset == settings.volume_asset)
        .map(|v| v.amount_paid_decimal.clone())
        .next()
        .unwrap_or_else(|| "0".into());
    let failed = stats.expired + stats.cancelled;
    Ok(ok(
        200,
        &serde_json::json!({
            "total_payments": stats.total,
            "completed_payments": stats.paid,
            "pending_payments": stats.pending + stats.confirming,
            "failed_payments": failed,
            "total_volume": volume,
            "success_rate": percent(stats.paid, stats.total),
        }),
    ))
}
