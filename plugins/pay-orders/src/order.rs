//! The order object: the seed's `result`, rendered from the host's invoice and the
//! dialect's fields kept on it (`plugin-data`). The same object is the callback body.
//!
//! Status mapping (host lifecycle → the seed's numbers), in one place:
//!
//! | host | `pay_status` | `status` |
//! |------|--------------|----------|
//! | pending / confirming, payer has not said it paid | 1 unpaid | 1 open |
//! | pending / confirming, after `submitted` | 2 submitted | 1 open |
//! | paid (also paid late) | 3 finished | 2 done |
//! | expired / cancelled | 4 timed out | 1 open |
//!
//! `callback_status`: 1 while the callback is pending (or there is none), 2 once the
//! merchant answered `ok`, 3 after the last try failed. `callback_times` is the number of
//! attempts made, `callback_at` the time of the last one. Times are rendered the way a
//! Laravel model serializes them: `2024-05-01T12:00:00.000000Z` (UTC).

use polypay_plugin_sdk::invoices::{DeliveryState, Invoice};
use polypay_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// What the dialect keeps on the invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    pub title: String,
    pub remark: String,
    pub fee: u64,
    pub currency: u8,
    pub pay_currency: u8,
    pub app_id: String,
    pub callback_url: String,
    pub redirect_url: String,
    /// Base units of one hundredth of the pay asset ("10000" for a 6-decimal token).
    pub pay_unit: String,
    /// The quote the amount came from (fiat per whole asset unit) and when.
    pub rate: String,
    pub quoted_at: i64,
}

impl OrderData {
    pub fn of(invoice: &Invoice) -> OrderData {
        serde_json::from_str(&invoice.plugin_data).unwrap_or_default()
    }
}

/// The seed's `result`, field for field, in the seed's order and JSON types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: String,
    pub title: String,
    pub remark: String,
    pub fee: u64,
    pub currency: u8,
    pub pay_fee: u64,
    pub pay_currency: u8,
    pub pay_account: String,
    pub receipt_account: String,
    pub callback_url: String,
    pub redirect_url: String,
    pub pay_status: u8,
    pub status: u8,
    pub callback_status: u8,
    pub callback_at: Option<String>,
    pub callback_times: u32,
    pub pay_finish_at: Option<String>,
    pub pay_refresh_at: Option<String>,
    pub pay_submit_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub app_id: String,
    pub tv_url: String,
}

pub fn pay_status(invoice: &Invoice) -> u8 {
    match invoice.status {
        InvoiceStatus::Paid => 3,
        InvoiceStatus::Expired | InvoiceStatus::Cancelled => 4,
        InvoiceStatus::Pending | InvoiceStatus::Confirming if invoice.submitted_at.is_some() => 2,
        InvoiceStatus::Pending | InvoiceStatus::Confirming => 1,
    }
}

pub fn callback_status(invoice: &Invoice) -> u8 {
    match invoice.webhook.state {
        DeliveryState::Delivered => 2,
        DeliveryState::Failed => 3,
        DeliveryState::None | DeliveryState::Pending => 1,
    }
}

/// `ceil(amount / unit)`: the amount in hundredths of the pay currency, rounded up.
pub fn hundredths(amount: &str, unit: &str) -> u64 {
    let (Ok(amount), Ok(unit)) = (amount.parse::<u128>(), unit.parse::<u128>()) else {
        return 0;
    };
    if unit == 0 {
        return 0;
    }
    u64::try_from(amount.div_ceil(unit)).unwrap_or(u64::MAX)
}

impl Order {
    pub fn of(invoice: &Invoice) -> Order {
        let data = OrderData::of(invoice);
        Order {
            id: invoice.merchant_order_id.clone().unwrap_or_default(),
            title: data.title,
            remark: data.remark,
            fee: data.fee,
            currency: data.currency,
            pay_fee: hundredths(&invoice.amount_due, &data.pay_unit),
            pay_currency: data.pay_currency,
            // The payer's address once a payment is seen; the seed shows "" before.
            pay_account: invoice.payer_address.clone().unwrap_or_default(),
            receipt_account: invoice.pay_to.clone(),
            callback_url: data.callback_url,
            redirect_url: data.redirect_url,
            pay_status: pay_status(invoice),
            status: if invoice.status == InvoiceStatus::Paid {
                2
            } else {
                1
            },
            callback_status: callback_status(invoice),
            callback_at: invoice.webhook.last_attempt_at.map(datetime),
            callback_times: invoice.webhook.attempts,
            pay_finish_at: invoice.paid_at.map(datetime),
            // The last re-quote; the first quote is made with the order.
            pay_refresh_at: invoice
                .fiat_quote
                .as_ref()
                .filter(|q| q.quoted_at > invoice.created_at)
                .map(|q| datetime(q.quoted_at)),
            pay_submit_at: invoice.submitted_at.map(datetime),
            created_at: datetime(invoice.created_at),
            updated_at: datetime(invoice.updated_at),
            deleted_at: None,
            app_id: data.app_id,
            tv_url: invoice.payment_page_url.clone(),
        }
    }
}

/// `2024-05-01T12:00:00.000000Z` for a Unix time in milliseconds.
pub fn datetime(ms: i64) -> String {
    let t = polypay_plugin_sdk::time::Civil::of_unix_ms(ms);
    format!("{}T{}.{:06}Z", t.date(), t.time(), t.millis * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_laravel_iso_strings() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(datetime(1_714_564_800_123), "2024-05-01T12:00:00.123000Z");
        assert_eq!(datetime(951_782_400_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn pay_fee_is_rounded_up_to_hundredths() {
        assert_eq!(hundredths("20000000", "10000"), 2000);
        assert_eq!(hundredths("20000001", "10000"), 2001);
        assert_eq!(hundredths("6619338397127538", "10000000000000000"), 1);
        assert_eq!(hundredths("junk", "10000"), 0);
    }
}
