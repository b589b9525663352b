//! The contracts of `contracts/` on a local node: the test token (`TestToken`, 6 decimals,
//! open `mint`) and the payment contract of the `contract-reference` strategy
//! (`InvoicePayment`, `pay(invoice_id, recipient, amount)` emitting `Pay`).
//!
//! The compiled artifacts are embedded in the binary, so `polypay dev` and the tests need
//! no Solidity compiler (see `contracts/README.md` to regenerate them).

use alloy::primitives::{Address, U256};
use alloy::sol_types::{SolCall, SolValue};
use serde_json::Value;

use super::rpc::{AnvilRpc, Receipt, RpcError, Transaction};

alloy::sol! {
    function mint(address to, uint256 value) external;
    function transfer(address to, uint256 value) external returns (bool);
    function approve(address spender, uint256 value) external returns (bool);
    function pay(string invoice_id, address recipient, uint256 amount) external;
    function balanceOf(address owner) external view returns (uint256);
}

/// `contracts/artifacts/TestToken.json`.
pub const TEST_TOKEN_ARTIFACT: &str = include_str!("../../../contracts/artifacts/TestToken.json");
/// `contracts/artifacts/InvoicePayment.json`.
pub const INVOICE_PAYMENT_ARTIFACT: &str =
    include_str!("../../../contracts/artifacts/InvoicePayment.json");

/// The test token's name and symbol as deployed.
pub const TOKEN_NAME: &str = "Test USD";
pub const TOKEN_SYMBOL: &str = "USDT";
/// The test token's decimals (fixed in its source).
pub const TOKEN_DECIMALS: u8 = 6;

/// Why a contract operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the artifact {0} is not valid: {1}")]
    Artifact(&'static str, String),
    #[error("{what} reverted (transaction {tx})")]
    Reverted {
        what: String,
        tx: alloy::primitives::B256,
    },
    #[error("{what}: the node returned no contract address")]
    NoAddress { what: String },
}

/// The token and payment contract deployed on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contracts {
    pub token: Address,
    pub payment_contract: Address,
}

impl Contracts {
    /// Deploys the test token, then the payment contract for it, from `deployer`.
    pub async fn deploy(rpc: &AnvilRpc, deployer: Address) -> Result<Contracts, ContractError> {
        let token = deploy(
            rpc,
            deployer,
            TEST_TOKEN_ARTIFACT,
            (TOKEN_NAME.to_string(), TOKEN_SYMBOL.to_string()).abi_encode_params(),
        )
        .await?;
        let payment_contract =
            deploy(rpc, deployer, INVOICE_PAYMENT_ARTIFACT, token.abi_encode()).await?;
        Ok(Contracts {
            token,
            payment_contract,
        })
    }

    /// Whether both contracts have code on the node (a node that lost its state has none).
    pub async fn are_deployed(&self, rpc: &AnvilRpc) -> Result<bool, RpcError> {
        for address in [self.token, self.payment_contract] {
            let code = rpc
                .call("eth_getCode", serde_json::json!([address, "latest"]))
                .await?;
            if code.as_str().is_none_or(|c| c == "0x") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Mints test tokens (base units) to `to`, sent by `from`.
    pub async fn mint(
        &self,
        rpc: &AnvilRpc,
        from: Address,
        to: Address,
        amount: U256,
    ) -> Result<Receipt, ContractError> {
        mint(rpc, self.token, from, to, amount).await
    }

    /// The test-token balance of `owner`.
    pub async fn token_balance(&self, rpc: &AnvilRpc, owner: Address) -> Result<U256, RpcError> {
        token_balance(rpc, self.token, owner).await
    }

    /// An ERC20 transfer of the test token.
    pub async fn transfer_token(
        &self,
        rpc: &AnvilRpc,
        from: Address,
        to: Address,
        amount: U256,
    ) -> Result<Receipt, ContractError> {
        transfer_token(rpc, self.token, from, to, amount).await
    }

    /// Approves the payment contract for `amount` and pays through it:
    /// `Pay(reference, recipient, amount)`. Returns the approval's and the payment's receipts.
    pub async fn pay_through_contract(
        &self,
        rpc: &AnvilRpc,
        from: Address,
        reference: &str,
        recipient: Address,
        amount: U256,
    ) -> Result<(Receipt, Receipt), ContractError> {
        let approval = approve(rpc, self.token, from, self.payment_contract, amount).await?;
        let payment = pay(
            rpc,
            self.payment_contract,
            from,
            reference,
            recipient,
            amount,
        )
        .await?;
        Ok((approval, payment))
    }
}

/// Deploys `artifact` (one of this module's constants) with ABI-encoded constructor
/// arguments, from `deployer`.
pub async fn deploy(
    rpc: &AnvilRpc,
    deployer: Address,
    artifact: &'static str,
    constructor_args: Vec<u8>,
) -> Result<Address, ContractError> {
    let json: Value = serde_json::from_str(artifact)
        .map_err(|e| ContractError::Artifact("contracts/artifacts", e.to_string()))?;
    let name = json["contractName"]
        .as_str()
        .unwrap_or("contract")
        .to_string();
    let bytecode = json["bytecode"]
        .as_str()
        .ok_or_else(|| ContractError::Artifact("contracts/artifacts", "no bytecode".into()))?;
    let mut code = alloy::hex::decode(bytecode)
        .map_err(|e| ContractError::Artifact("contracts/artifacts", e.to_string()))?;
    code.extend(constructor_args);
    let what = format!("deploying {name}");
    let receipt = rpc
        .send(Transaction {
            from: deployer,
            input: code.into(),
            ..Transaction::default()
        })
        .await?;
    let receipt = succeeded(receipt, &what)?;
    receipt
        .contract_address
        .ok_or(ContractError::NoAddress { what })
}

/// `token.mint(to, amount)` from `from` (the test token's open mint).
pub async fn mint(
    rpc: &AnvilRpc,
    token: Address,
    from: Address,
    to: Address,
    amount: U256,
) -> Result<Receipt, ContractError> {
    let input = mintCall { to, value: amount }.abi_encode();
    call(rpc, from, token, input, "minting test tokens").await
}

/// `token.balanceOf(owner)`.
pub async fn token_balance(
    rpc: &AnvilRpc,
    token: Address,
    owner: Address,
) -> Result<U256, RpcError> {
    let bytes = rpc
        .view(token, balanceOfCall { owner }.abi_encode())
        .await?;
    Ok(U256::from_be_slice(&bytes))
}

/// `token.transfer(to, amount)` from `from`.
pub async fn transfer_token(
    rpc: &AnvilRpc,
    token: Address,
    from: Address,
    to: Address,
    amount: U256,
) -> Result<Receipt, ContractError> {
    let input = transferCall { to, value: amount }.abi_encode();
    call(rpc, from, token, input, "the token transfer").await
}

/// `token.approve(spender, amount)` from `from`.
pub async fn approve(
    rpc: &AnvilRpc,
    token: Address,
    from: Address,
    spender: Address,
    amount: U256,
) -> Result<Receipt, ContractError> {
    let input = approveCall {
        spender,
        value: amount,
    }
    .abi_encode();
    call(rpc, from, token, input, "the token approval").await
}

/// `payment_contract.pay(reference, recipient, amount)` from `from` (approved before).
pub async fn pay(
    rpc: &AnvilRpc,
    payment_contract: Address,
    from: Address,
    reference: &str,
    recipient: Address,
    amount: U256,
) -> Result<Receipt, ContractError> {
    let input = payCall {
        invoice_id: reference.to_string(),
        recipient,
        amount,
    }
    .abi_encode();
    call(
        rpc,
        from,
        payment_contract,
        input,
        "the payment contract call",
    )
    .await
}

/// A contract call that must succeed.
async fn call(
    rpc: &AnvilRpc,
    from: Address,
    to: Address,
    input: Vec<u8>,
    what: &str,
) -> Result<Receipt, ContractError> {
    let receipt = rpc
        .send(Transaction {
            from,
            to: Some(to),
            input: input.into(),
            ..Transaction::default()
        })
        .await?;
    succeeded(receipt, what)
}

fn succeeded(receipt: Receipt, what: &str) -> Result<Receipt, ContractError> {
    if receipt.success {
        Ok(receipt)
    } else {
        Err(ContractError::Reverted {
            what: what.to_string(),
            tx: receipt.tx_hash,
        })
    }
}
