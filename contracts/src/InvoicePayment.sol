// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

interface IERC20 {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title InvoicePayment
/// @notice A payment contract that names the invoice it pays: the payer first
///         approves this contract on `token`, then calls `pay`, which moves
///         the tokens straight to the merchant's `recipient` and emits `Pay`.
///         polypay's `contract-reference` strategy matches an invoice on the
///         event's invoice id, recipient and amount.
contract InvoicePayment {
    /// The ERC20 every payment through this contract is made in.
    IERC20 public immutable token;

    /// Emitted once per successful payment. No parameter is indexed: the
    /// listener reads them all from the log data.
    event Pay(string invoice_id, address recipient, uint256 amount);

    constructor(IERC20 token_) {
        token = token_;
    }

    function pay(string calldata invoice_id, address recipient, uint256 amount) external {
        require(recipient != address(0), "InvoicePayment: zero recipient");
        require(token.transferFrom(msg.sender, recipient, amount), "InvoicePayment: transfer failed");
        emit Pay(invoice_id, recipient, amount);
    }
}
