//! The payload of an outbox event: one versioned type, written by the invoice service and
//! read back by the webhook worker, so the two can never disagree about its shape.
//!
//! # Versions
//!
//! The payload carries `version`. Version 1 is the first; payloads written before the
//! field existed have the same shape and read as version 1. A change that old readers
//! cannot ignore (a renamed or retyped field) bumps [`EventPayload::VERSION`] and keeps
//! reading every older version; an added field is optional (`#[serde(default)]`) and keeps
//! the version. A payload from a newer polypay than this one is refused with
//! [`PayloadError::TooNew`] (the event stays in the outbox, nothing is sent wrongly).

use serde::{Deserialize, Serialize};

use super::{EventKind, Invoice, InvoiceStatus};

/// The outbox kind of a plugin's test callback (WIT `webhooks.send-test`).
pub const TEST_EVENT_KIND: &str = "webhook.test";

/// What an outbox event says: the change and the invoice right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPayload {
    #[serde(default = "first_version")]
    pub version: u32,
    /// `invoice.created`, `invoice.paid`, … ([`EventKind`]), or [`TEST_EVENT_KIND`].
    pub kind: String,
    pub previous_status: Option<InvoiceStatus>,
    /// The invoice as it was right after the change (a sample invoice for test events).
    pub invoice: Invoice,
    /// Where a test callback goes; invoice events go to the invoice's `notify_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn first_version() -> u32 {
    1
}

/// A stored payload this polypay cannot read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("event payload is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("event payload version {found} is newer than this polypay reads ({supported})")]
    TooNew { found: u32, supported: u32 },
}

impl EventPayload {
    /// The version this polypay writes.
    pub const VERSION: u32 = 1;

    /// The payload of an invoice change.
    pub fn change(
        kind: EventKind,
        previous_status: Option<InvoiceStatus>,
        invoice: &Invoice,
    ) -> Self {
        EventPayload {
            version: Self::VERSION,
            kind: kind.as_str().to_string(),
            previous_status,
            invoice: invoice.clone(),
            url: None,
        }
    }

    /// The payload of a test callback to `url` about a sample invoice.
    pub fn test(invoice: Invoice, url: &str) -> Self {
        EventPayload {
            version: Self::VERSION,
            kind: TEST_EVENT_KIND.to_string(),
            previous_status: None,
            invoice,
            url: Some(url.to_string()),
        }
    }

    /// True for a plugin's test callback.
    pub fn is_test(&self) -> bool {
        self.kind == TEST_EVENT_KIND
    }

    /// Where the callback goes: the test URL, or the invoice's notify URL.
    pub fn callback_url(&self) -> Option<&str> {
        if self.is_test() {
            self.url.as_deref()
        } else {
            self.invoice.notify_url.as_deref()
        }
    }

    /// The stored text of this payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event payload always serialises")
    }

    /// Reads a stored payload of this or any older version.
    pub fn from_json(text: &str) -> Result<EventPayload, PayloadError> {
        let payload: EventPayload = serde_json::from_str(text)?;
        if payload.version > Self::VERSION {
            return Err(PayloadError::TooNew {
                found: payload.version,
                supported: Self::VERSION,
            });
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoice::{Allocation, Amount, NewInvoice};

    fn invoice() -> Invoice {
        let new = NewInvoice::new(
            "m1",
            "test",
            "ethereum",
            ("USDT", 6),
            Amount::from(1_500_000u64),
            2_000,
        );
        Invoice::open(
            "inv".into(),
            &new,
            &Allocation::fixed_address(&new, "0xabc", 1),
            1_000,
        )
    }

    #[test]
    fn a_payload_reads_back_as_written() {
        let payload =
            EventPayload::change(EventKind::Paid, Some(InvoiceStatus::Confirming), &invoice());
        let text = payload.to_json();
        assert!(text.contains("\"version\":1"), "{text}");
        assert_eq!(EventPayload::from_json(&text).unwrap(), payload);
    }

    #[test]
    fn a_payload_written_before_versions_reads_as_version_one() {
        // The shape the outbox wrote before the payload had a version or quarantine field.
        let mut invoice = serde_json::to_value(invoice()).unwrap();
        invoice.as_object_mut().unwrap().remove("quarantined_at");
        let old = serde_json::json!({ "kind": "invoice.paid", "previous_status": "confirming", "invoice": invoice });
        let read = EventPayload::from_json(&old.to_string()).unwrap();
        assert_eq!(read.version, 1);
        assert_eq!(read.invoice.amount_due, Amount::from(1_500_000u64));
        assert_eq!(read.previous_status, Some(InvoiceStatus::Confirming));
    }

    #[test]
    fn a_payload_from_a_newer_version_is_refused() {
        let mut payload = EventPayload::change(EventKind::Paid, None, &invoice());
        payload.version = EventPayload::VERSION + 1;
        let err = EventPayload::from_json(&payload.to_json()).unwrap_err();
        assert!(
            matches!(
                err,
                PayloadError::TooNew {
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn test_callbacks_go_to_their_url_and_invoice_events_to_the_notify_url() {
        let mut sample = invoice();
        sample.notify_url = Some("https://shop.example/notify".into());
        let test = EventPayload::test(sample.clone(), "https://shop.example/test");
        assert_eq!(test.callback_url(), Some("https://shop.example/test"));
        let change = EventPayload::change(EventKind::Created, None, &sample);
        assert_eq!(change.callback_url(), Some("https://shop.example/notify"));
    }
}
