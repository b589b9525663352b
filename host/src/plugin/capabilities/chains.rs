//! `chains`: the configured networks and their listeners' progress.

use super::{HostResult, guest, store_error};
use crate::chain::ChainKind;
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::chains::{
    AssetInfo, ChainStatus, Host, NetworkInfo, PaymentContract,
};
use crate::plugin::state::PluginState;

impl Host for PluginState {
    async fn networks(&mut self) -> wasmtime::Result<Vec<NetworkInfo>> {
        Ok(self
            .scope
            .services
            .inner
            .chains
            .iter()
            .map(|c| NetworkInfo {
                name: c.name.clone(),
                family: match c.kind {
                    ChainKind::Evm => "evm".into(),
                    ChainKind::Tron => "tron".into(),
                },
                chain_id: c.chain_id,
                required_confirmations: c.confirmations,
                assets: c
                    .assets
                    .iter()
                    .map(|a| AssetInfo {
                        symbol: a.symbol.clone(),
                        decimals: a.decimals,
                        contract: a.contract.clone(),
                    })
                    .collect(),
                payment_contracts: c
                    .payment_contracts
                    .iter()
                    .map(|p| PaymentContract {
                        asset: p.asset.clone(),
                        address: p.address.clone(),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn status(&mut self, network: String) -> HostResult<ChainStatus> {
        let scope = &self.scope;
        let Some(chain) = scope
            .services
            .inner
            .chains
            .iter()
            .find(|c| c.name == network)
        else {
            return guest(Err(HostError::NotFound));
        };
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let cursor = match storage.store.chain_cursor(&chain.name).await {
            Ok(c) => c,
            Err(e) => return guest(Err(store_error(scope, e))),
        };
        let head = cursor
            .as_ref()
            .and_then(|c| c.head_block)
            .and_then(|b| u64::try_from(b).ok());
        let processed = cursor
            .as_ref()
            .and_then(|c| c.processed_block)
            .and_then(|b| u64::try_from(b).ok());
        guest(Ok(ChainStatus {
            name: chain.name.clone(),
            chain_id: chain.chain_id,
            head_block: head,
            processed_block: processed,
            gas_price: cursor.and_then(|c| c.gas_price).map(|wei| wei.to_string()),
            syncing: match (head, processed) {
                (Some(h), Some(p)) => h > p,
                _ => true,
            },
            required_confirmations: chain.confirmations,
            updated_at: cursor.map(|c| c.updated_at),
        }))
    }
}
