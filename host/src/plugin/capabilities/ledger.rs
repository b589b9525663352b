//! `ledger`: custodial users, balances, deposits and orders, scoped to the calling plugin.

use super::{HostResult, guest};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::ledger::*;
use crate::plugin::state::PluginState;

fn todo<T>(what: &str) -> HostResult<T> {
    guest(Err(HostError::Unsupported(format!("ledger.{what} is not available yet"))))
}

impl Host for PluginState {
    async fn create_user(&mut self, _user: NewUser) -> HostResult<User> {
        todo("create-user")
    }
    async fn get_user(&mut self, _id: String) -> HostResult<User> {
        todo("get-user")
    }
    async fn update_user(&mut self, _id: String, _update: UserUpdate) -> HostResult<User> {
        todo("update-user")
    }
    async fn merchant_user(&mut self, _merchant_id: String) -> HostResult<User> {
        todo("merchant-user")
    }
    async fn balances(&mut self, _user_id: String) -> HostResult<Vec<Balance>> {
        todo("balances")
    }
    async fn deposit_address(&mut self, _user_id: String, _chain: String) -> HostResult<String> {
        todo("deposit-address")
    }
    async fn deposits(&mut self, _user_id: String, _limit: u32) -> HostResult<Vec<Deposit>> {
        todo("deposits")
    }
    async fn create_order(&mut self, _order: NewOrder) -> HostResult<Order> {
        todo("create-order")
    }
    async fn get_order(&mut self, _id: String) -> HostResult<Order> {
        todo("get-order")
    }
    async fn find_order(&mut self, _payee: String, _client_order_id: String) -> HostResult<Order> {
        todo("find-order")
    }
    async fn list_orders(&mut self, _filter: OrderFilter, _limit: u32) -> HostResult<Vec<Order>> {
        todo("list-orders")
    }
    async fn pay(&mut self, _order_id: String) -> HostResult<Order> {
        todo("pay")
    }
    async fn settle(&mut self, _order_id: String, _items: Vec<ItemAmount>) -> HostResult<Order> {
        todo("settle")
    }
    async fn unlock(&mut self, _order_id: String, _items: Vec<ItemAmount>) -> HostResult<Order> {
        todo("unlock")
    }
    async fn refund(&mut self, _order_id: String, _items: Vec<ItemAmount>) -> HostResult<Order> {
        todo("refund")
    }
    async fn cancel(&mut self, _order_id: String) -> HostResult<Order> {
        todo("cancel")
    }
}
