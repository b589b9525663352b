//! The dev wallet: pays an invoice from an unlocked account of the dev node, the way a
//! payer's wallet would, given what the checkout page shows ([`CheckoutView`]):
//!
//! - `contract-reference`: `approve(payment_contract, amount)` on the token, then
//!   `payment_contract.pay(pay_reference, recipient, amount)` (what the checkout page's
//!   browser-wallet flow sends);
//! - otherwise a plain ERC20 `transfer(pay_address, amount)`, or a native transfer;
//! - on the dev TRON node: a TRC20 `transfer` or a TRX transfer to the invoice's address,
//!   through the node's development routes (see [`super::tron_node::control`]).
//!
//! `polypay dev pay` and the checkout page's "Pay with the dev wallet" button both call
//! [`pay`]. Decisions the wallet makes for a development chain:
//!
//! - When the wallet holds too few test tokens it mints the shortfall first (the test
//!   token's `mint` is open), so a long demo never runs dry; [`Payment::minted`] says so.
//! - A *late* payment is mined with a block time one second past the invoice's deadline
//!   (`evm_setNextBlockTimestamp` right before the paying transaction), because lateness
//!   is judged by block time. The dev chain's clock then runs ahead of the wall clock
//!   until the wall clock catches up: invoices whose deadline falls in that gap count as
//!   late from then on. On TRON the paying block gets the first block slot (3 s) past
//!   the deadline.

use alloy::primitives::{Address, U256};

use super::contracts::{self, ContractError};
use super::rpc::{AnvilRpc, Receipt, RpcError, Transaction};
use super::setup::TRON_NETWORK;
use super::tron_node::BLOCK_INTERVAL_MS;
use super::tron_node::control::{ControlError, DevTronClient};
use crate::chain::ChainKind;
use crate::config::Config;
use crate::http::checkout::CheckoutView;
use crate::invoice::{Amount, MatchStrategy};

/// A dev node the wallet pays on.
#[derive(Clone)]
pub enum DevNode {
    /// An EVM dev chain (anvil), paid from the config's dev wallet, an unlocked account.
    Evm { rpc: AnvilRpc, wallet: Address },
    /// The dev TRON node of `polypay dev`.
    Tron(DevTronClient),
}

impl DevNode {
    /// The dev node that carries `network` in `config`: an EVM network (with the config's
    /// dev wallet), or the dev TRON node (`tron-dev`). A development config only.
    pub fn of(config: &Config, network: &str) -> Result<DevNode, WalletError> {
        let unsupported = || WalletError::Unsupported(network.to_string());
        let chain = config
            .chains
            .iter()
            .find(|c| c.name == network)
            .ok_or_else(unsupported)?;
        match chain.kind {
            ChainKind::Evm => Ok(DevNode::Evm {
                rpc: AnvilRpc::new(&chain.rpc_url)?,
                wallet: config.dev_wallet().ok_or_else(unsupported)?,
            }),
            ChainKind::Tron if network == TRON_NETWORK => {
                Ok(DevNode::Tron(DevTronClient::new(&chain.rpc_url)))
            }
            ChainKind::Tron => Err(unsupported()),
        }
    }
}

/// Whether the dev wallet can pay on `network` of `kind`: any EVM network, and the dev
/// TRON node.
pub fn can_pay_on(kind: Option<ChainKind>, network: &str) -> bool {
    match kind {
        Some(ChainKind::Evm) => true,
        Some(ChainKind::Tron) => network == TRON_NETWORK,
        None => false,
    }
}

/// How much to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayAmount {
    /// What is still due.
    Remaining,
    /// This many base units.
    Exact(Amount),
    /// Half of what is due (rounded down), which leaves the invoice underpaid.
    Underpay,
    /// A tenth more than what is due (at least one base unit more).
    Overpay,
}

/// Why the wallet did not pay.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("nothing is due on this invoice any more; give an amount to pay anyway")]
    NothingDue,
    #[error("cannot underpay: only one base unit is due")]
    CannotUnderpay,
    #[error("the amount to pay must be more than zero")]
    ZeroAmount,
    #[error(
        "the invoice is on network `{0}`, which the dev wallet cannot pay (EVM networks of this server and the dev TRON node only)"
    )]
    Unsupported(String),
    #[error("the invoice's {what} `{text}` is not an EVM address")]
    BadAddress { what: &'static str, text: String },
    #[error(
        "the invoice is paid through a payment contract, but network `{0}` has none for its asset"
    )]
    NoPaymentContract(String),
    #[error("the dev wallet {wallet} holds {have} wei, {need} are needed")]
    InsufficientFunds {
        wallet: Address,
        have: U256,
        need: U256,
    },
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Tron(#[from] ControlError),
}

impl PayAmount {
    /// The base units to send when `remaining` is due.
    pub fn resolve(self, remaining: Amount) -> Result<Amount, WalletError> {
        let due = remaining.as_u256();
        match self {
            PayAmount::Exact(amount) if amount.is_zero() => Err(WalletError::ZeroAmount),
            PayAmount::Exact(amount) => Ok(amount),
            _ if due.is_zero() => Err(WalletError::NothingDue),
            PayAmount::Remaining => Ok(remaining),
            PayAmount::Underpay if due < U256::from(2) => Err(WalletError::CannotUnderpay),
            PayAmount::Underpay => Ok(Amount::from(due / U256::from(2))),
            PayAmount::Overpay => {
                let extra = (due / U256::from(10)).max(U256::from(1));
                Ok(remaining.saturating_add(Amount::from(extra)))
            }
        }
    }
}

/// What a payment request asks of the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayRequest {
    pub amount: PayAmount,
    /// Mine the payment with a block time after the invoice's deadline.
    pub late: bool,
}

impl Default for PayRequest {
    fn default() -> Self {
        PayRequest {
            amount: PayAmount::Remaining,
            late: false,
        }
    }
}

/// A transaction the wallet sent, mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its id as the chain's explorers print it (`0x…` on EVM, 64 hex digits on TRON).
    pub tx: String,
    pub block: u64,
}

impl From<&Receipt> for Sent {
    fn from(receipt: &Receipt) -> Sent {
        Sent {
            tx: format!("{:#x}", receipt.tx_hash),
            block: receipt.block_number,
        }
    }
}

/// A payment the wallet made.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Base units sent.
    pub amount: Amount,
    /// The token approval that preceded a payment-contract call.
    pub approval: Option<Sent>,
    /// The paying transaction.
    pub payment: Sent,
    /// The paying block's timestamp, Unix seconds.
    pub block_timestamp: u64,
    /// Test tokens minted to the wallet first, because it held too few.
    pub minted: Option<Amount>,
}

/// The first block timestamp (Unix seconds) that is past a deadline in Unix ms.
pub fn late_timestamp(expires_at_ms: i64) -> u64 {
    u64::try_from(expires_at_ms.max(0) / 1000).unwrap_or(0) + 1
}

/// Pays the invoice `view` on `node`.
pub async fn pay(
    node: &DevNode,
    view: &CheckoutView,
    request: PayRequest,
) -> Result<Payment, WalletError> {
    match node {
        DevNode::Evm { rpc, wallet } => pay_evm(rpc, *wallet, view, request).await,
        DevNode::Tron(client) => pay_tron(client, view, request).await,
    }
}

/// Pays on the dev TRON node: TRC20 `transfer` or TRX to the invoice's address, mined at
/// once. The node does not simulate balances, so nothing is minted.
async fn pay_tron(
    client: &DevTronClient,
    view: &CheckoutView,
    request: PayRequest,
) -> Result<Payment, WalletError> {
    if !can_pay_on(view.chain_kind, &view.network) || view.chain_kind != Some(ChainKind::Tron) {
        return Err(WalletError::Unsupported(view.network.clone()));
    }
    let amount = request.amount.resolve(view.amount_remaining)?;
    // The first block slot strictly after the deadline.
    let late_ms = (view.expires_at.max(0) / BLOCK_INTERVAL_MS + 1) * BLOCK_INTERVAL_MS;
    let sent = client
        .transfer(
            &view.pay_address,
            amount.as_u256(),
            view.token_address.as_deref(),
            request.late.then_some(late_ms),
        )
        .await?;
    Ok(Payment {
        amount,
        approval: None,
        payment: Sent {
            tx: sent.txid,
            block: sent.block,
        },
        block_timestamp: u64::try_from(sent.timestamp / 1000).unwrap_or(0),
        minted: None,
    })
}

/// Pays the invoice `view` from `wallet`, an unlocked account of the node `rpc`.
async fn pay_evm(
    rpc: &AnvilRpc,
    wallet: Address,
    view: &CheckoutView,
    request: PayRequest,
) -> Result<Payment, WalletError> {
    if view.chain_kind != Some(ChainKind::Evm) || view.chain_id.is_none() {
        return Err(WalletError::Unsupported(view.network.clone()));
    }
    let amount = request.amount.resolve(view.amount_remaining)?;
    let value = amount.as_u256();
    let to = address("address to pay", &view.pay_address)?;
    let token = view
        .token_address
        .as_deref()
        .map(|t| address("token", t))
        .transpose()?;

    // Funds, as a wallet checks them before signing anything.
    let mut minted = None;
    match token {
        Some(token) => {
            let balance = contracts::token_balance(rpc, token, wallet).await?;
            if balance < value {
                let shortfall = value - balance;
                contracts::mint(rpc, token, wallet, wallet, shortfall).await?;
                minted = Some(Amount::from(shortfall));
            }
        }
        None => {
            let balance = rpc.balance(wallet).await?;
            if balance < value {
                return Err(WalletError::InsufficientFunds {
                    wallet,
                    have: balance,
                    need: value,
                });
            }
        }
    }

    let mut approval = None;
    let payment = match (view.strategy, token) {
        (MatchStrategy::ContractReference, Some(token)) => {
            let contract = view
                .payment_contract
                .as_deref()
                .ok_or_else(|| WalletError::NoPaymentContract(view.network.clone()))?;
            let contract = address("payment contract", contract)?;
            approval = Some(contracts::approve(rpc, token, wallet, contract, value).await?);
            time_travel(rpc, view, request).await?;
            contracts::pay(rpc, contract, wallet, &view.pay_reference, to, value).await?
        }
        (MatchStrategy::ContractReference, None) => {
            return Err(WalletError::NoPaymentContract(view.network.clone()));
        }
        (_, Some(token)) => {
            time_travel(rpc, view, request).await?;
            contracts::transfer_token(rpc, token, wallet, to, value).await?
        }
        (_, None) => {
            time_travel(rpc, view, request).await?;
            let receipt = rpc
                .send(Transaction {
                    from: wallet,
                    to: Some(to),
                    value,
                    ..Transaction::default()
                })
                .await?;
            if !receipt.success {
                return Err(ContractError::Reverted {
                    what: "the transfer".into(),
                    tx: receipt.tx_hash,
                }
                .into());
            }
            receipt
        }
    };
    let block_timestamp = rpc.block_timestamp(payment.block_number).await?;
    Ok(Payment {
        amount,
        approval: approval.as_ref().map(Sent::from),
        payment: Sent::from(&payment),
        block_timestamp,
        minted,
    })
}

/// For a late payment: the next block is mined one second past the deadline (unless the
/// chain's clock is already there).
async fn time_travel(
    rpc: &AnvilRpc,
    view: &CheckoutView,
    request: PayRequest,
) -> Result<(), RpcError> {
    if !request.late {
        return Ok(());
    }
    let wanted = late_timestamp(view.expires_at);
    let head = rpc.block_number().await?;
    if rpc.block_timestamp(head).await? < wanted {
        rpc.set_next_block_timestamp(wanted).await?;
    }
    Ok(())
}

fn address(what: &'static str, text: &str) -> Result<Address, WalletError> {
    crate::chain::evm::parse_address(text).map_err(|_| WalletError::BadAddress {
        what,
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(n: u64) -> Amount {
        Amount::from(n)
    }

    #[test]
    fn remaining_pays_what_is_due_and_refuses_when_nothing_is() {
        assert_eq!(
            PayAmount::Remaining.resolve(units(10_000_000)).unwrap(),
            units(10_000_000)
        );
        assert!(matches!(
            PayAmount::Remaining.resolve(Amount::ZERO),
            Err(WalletError::NothingDue)
        ));
    }

    #[test]
    fn underpay_pays_half_and_never_zero() {
        assert_eq!(
            PayAmount::Underpay.resolve(units(10_000_001)).unwrap(),
            units(5_000_000)
        );
        assert_eq!(PayAmount::Underpay.resolve(units(2)).unwrap(), units(1));
        assert!(matches!(
            PayAmount::Underpay.resolve(units(1)),
            Err(WalletError::CannotUnderpay)
        ));
    }

    #[test]
    fn overpay_adds_a_tenth_and_at_least_one_base_unit() {
        assert_eq!(
            PayAmount::Overpay.resolve(units(10_000_000)).unwrap(),
            units(11_000_000)
        );
        assert_eq!(PayAmount::Overpay.resolve(units(5)).unwrap(), units(6));
    }

    #[test]
    fn an_exact_amount_is_paid_even_when_nothing_is_due_but_never_zero() {
        assert_eq!(
            PayAmount::Exact(units(7)).resolve(Amount::ZERO).unwrap(),
            units(7)
        );
        assert!(matches!(
            PayAmount::Exact(Amount::ZERO).resolve(units(7)),
            Err(WalletError::ZeroAmount)
        ));
    }

    #[test]
    fn late_timestamp_is_strictly_after_the_deadline() {
        // A block at second s is at s * 1000 ms; the deadline instant itself is late, so
        // strictly after is the safe side of both readings.
        assert_eq!(late_timestamp(1_700_000_000_000), 1_700_000_001);
        assert_eq!(late_timestamp(1_700_000_000_999), 1_700_000_001);
        assert!(late_timestamp(1_700_000_000_500) * 1000 > 1_700_000_000_500);
    }
}
