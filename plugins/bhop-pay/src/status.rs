//! The host's order lifecycle in the dialect's words: one table.

use polypay_plugin_sdk::ledger::OrderStatus;

/// (code, name, description) of an order, given whether its second factor was exhausted
/// (such an order is cancelled in the ledger and reported as invalidated).
pub fn of(status: OrderStatus, invalidated: bool) -> (u8, &'static str, &'static str) {
    match status {
        OrderStatus::Waiting => (0, "WAIT_FOR_PAYMENT", "待支付"),
        OrderStatus::Completed => (1, "COMPLETED", "已完成"),
        OrderStatus::Processing => (2, "PROCESSING", "支付中"),
        OrderStatus::Expired => (3, "EXPIRED", "已失效"),
        OrderStatus::Cancelled if invalidated => (3, "EXPIRED", "已失效"),
        OrderStatus::Cancelled => (4, "CANCELLED", "已撤销"),
    }
}

/// The host statuses a dialect status code filters on.
pub fn filter(code: &str) -> Option<Vec<OrderStatus>> {
    Some(match code {
        "0" => vec![OrderStatus::Waiting],
        "1" => vec![OrderStatus::Completed],
        "2" => vec![OrderStatus::Processing],
        "3" => vec![OrderStatus::Expired, OrderStatus::Cancelled],
        "4" => vec![OrderStatus::Cancelled],
        _ => return None,
    })
}
