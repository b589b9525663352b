//! `two-factor`: TOTP seeds and one-time codes of the plugin's users, over
//! [`crate::two_factor::TwoFactor`], always under the calling plugin's name (subjects and
//! contexts of two plugins never meet). Needs no merchant: the dialect authenticates its
//! users itself.

use super::{HostResult, guest, store_failure};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::two_factor::{
    Channel, FailureCount, Host, Verification,
};
use crate::plugin::state::{CallScope, PluginState};
use crate::two_factor::{self as service, TwoFactor, TwoFactorError};

fn service(scope: &CallScope) -> Result<&TwoFactor, HostError> {
    scope.storage()?;
    scope
        .services
        .inner
        .two_factor
        .as_ref()
        .ok_or_else(|| HostError::Unavailable("two-factor is not configured".into()))
}

fn host_error(scope: &CallScope, e: TwoFactorError) -> HostError {
    match e {
        TwoFactorError::Invalid(m) => HostError::Invalid(m),
        TwoFactorError::NotFound => HostError::NotFound,
        TwoFactorError::Conflict(m) => HostError::Conflict(m),
        TwoFactorError::RateLimited { retry_after_ms, .. } => {
            HostError::RateLimited(retry_after_ms)
        }
        TwoFactorError::Unsupported(m) => HostError::Unsupported(m),
        e @ (TwoFactorError::Corrupt | TwoFactorError::Store(_)) => store_failure(scope, &e),
    }
}

fn verification(v: service::Verification) -> Verification {
    match v {
        service::Verification::Accepted => Verification::Accepted,
        service::Verification::Rejected { remaining } => Verification::Rejected(remaining),
        service::Verification::Exhausted => Verification::Exhausted,
    }
}

impl Host for PluginState {
    async fn enrol_totp(
        &mut self,
        subject: String,
        issuer: String,
        label: String,
    ) -> HostResult<String> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let result = service
            .enrol_totp(scope.plugin_name(), &subject, &issuer, &label)
            .await
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn import_totp(&mut self, subject: String, secret_base32: String) -> HostResult<()> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let result = service
            .import_totp(scope.plugin_name(), &subject, &secret_base32)
            .await
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn has_totp(&mut self, subject: String) -> HostResult<bool> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        guest(
            service
                .has_totp(scope.plugin_name(), &subject)
                .await
                .map_err(|e| host_error(scope, e)),
        )
    }

    async fn remove_totp(&mut self, subject: String) -> HostResult<()> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let result = service
            .remove_totp(scope.plugin_name(), &subject)
            .await
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn verify_totp(
        &mut self,
        subject: String,
        context: String,
        code: String,
    ) -> HostResult<Verification> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let result = service
            .verify_totp(scope.plugin_name(), &subject, &context, &code)
            .await
            .map(verification)
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn send_code(
        &mut self,
        subject: String,
        context: String,
        channel: Channel,
        destination: String,
    ) -> HostResult<String> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let channel = match channel {
            Channel::Mobile => service::Channel::Mobile,
            Channel::Email => service::Channel::Email,
        };
        let result = service
            .send_code(
                scope.plugin_name(),
                &subject,
                &context,
                channel,
                &destination,
            )
            .await
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn verify_code(
        &mut self,
        subject: String,
        context: String,
        challenge_id: String,
        code: String,
    ) -> HostResult<Verification> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let result = service
            .verify_code(
                scope.plugin_name(),
                &subject,
                &context,
                &challenge_id,
                &code,
            )
            .await
            .map(verification)
            .map_err(|e| host_error(scope, e));
        self.after_write(result)
    }

    async fn context_state(
        &mut self,
        subject: String,
        context: String,
    ) -> HostResult<FailureCount> {
        let scope = &self.scope;
        let service = match service(scope) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        guest(
            service
                .context_state(scope.plugin_name(), &subject, &context)
                .await
                .map(|s| FailureCount {
                    failures: s.failures,
                    exhausted: s.exhausted,
                })
                .map_err(|e| host_error(scope, e)),
        )
    }
}
