//! TRON addresses: the one place that converts between their forms.
//!
//! A TRON account address is 21 bytes: the network prefix `0x41` followed by the same 20
//! bytes an EVM address holds (the keccak-256 tail of the secp256k1 public key). It is
//! written three ways:
//!
//! - **base58check** (`TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t`): what users, configs, plugins
//!   and polypay's database see. This is [`TronAddress`]'s `Display` and the only form
//!   [`TronAddress::parse`] accepts, so a typo is caught by the checksum instead of paid to;
//! - **hex with the prefix** (`41a614f803b6fd780986a42c78ec9c7f77e6ded13c`): java-tron's
//!   HTTP API without `visible=true` (transaction owners and recipients, contract
//!   addresses, witnesses);
//! - **20-byte EVM form**: TVM event logs (`log[].address`, and the addresses inside
//!   `topics`), which drop the prefix.

use std::fmt;
use std::str::FromStr;

/// The network prefix of every TRON mainnet and testnet (Shasta, Nile) address.
pub const ADDRESS_PREFIX: u8 = 0x41;

/// A TRON account or contract address: `0x41` + 20 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TronAddress([u8; 21]);

/// Why a text is not a TRON address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is not a base58check TRON address (T…, 34 characters)")]
    NotBase58(String),
    #[error("`{0}` has a wrong base58check checksum")]
    Checksum(String),
    #[error("`{0}` is not a TRON address: its version byte is not 0x41")]
    Prefix(String),
    #[error("`{0}` is not a 21-byte hex TRON address (41…)")]
    NotHex(String),
}

impl TronAddress {
    /// Parses the base58check form, the only form accepted from people and plugins.
    pub fn parse(text: &str) -> Result<TronAddress, AddressError> {
        let mut buffer = [0u8; 32];
        let decoded = bs58::decode(text)
            .with_check(None)
            .onto(&mut buffer[..])
            .map_err(|e| match e {
                bs58::decode::Error::InvalidChecksum { .. } => {
                    AddressError::Checksum(text.to_string())
                }
                _ => AddressError::NotBase58(text.to_string()),
            })?;
        // `onto` with a check keeps the payload (version byte included), not the checksum.
        if decoded != 21 {
            return Err(AddressError::NotBase58(text.to_string()));
        }
        if buffer[0] != ADDRESS_PREFIX {
            return Err(AddressError::Prefix(text.to_string()));
        }
        let mut bytes = [0u8; 21];
        bytes.copy_from_slice(&buffer[..21]);
        Ok(TronAddress(bytes))
    }

    /// Parses the hex form java-tron answers with (`41` + 40 hex digits, any case).
    pub fn from_hex(text: &str) -> Result<TronAddress, AddressError> {
        let error = || AddressError::NotHex(text.to_string());
        let mut bytes = [0u8; 21];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| error())?;
        if bytes[0] != ADDRESS_PREFIX {
            return Err(AddressError::Prefix(text.to_string()));
        }
        Ok(TronAddress(bytes))
    }

    /// The address whose last 20 bytes are `evm` (an EVM address, a TVM log's address, or
    /// the tail of a 32-byte log topic).
    pub fn from_evm(evm: [u8; 20]) -> TronAddress {
        let mut bytes = [ADDRESS_PREFIX; 21];
        bytes[1..].copy_from_slice(&evm);
        TronAddress(bytes)
    }

    /// The 20-byte EVM form (what TVM logs carry).
    pub fn evm_bytes(&self) -> [u8; 20] {
        let mut evm = [0u8; 20];
        evm.copy_from_slice(&self.0[1..]);
        evm
    }

    /// All 21 bytes, prefix first.
    pub fn as_bytes(&self) -> &[u8; 21] {
        &self.0
    }

    /// The base58check form (`T…`).
    pub fn to_base58(&self) -> String {
        bs58::encode(&self.0).with_check().into_string()
    }

    /// The hex form java-tron uses (`41…`, lowercase).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TronAddress({})", self.to_base58())
    }
}

impl FromStr for TronAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<TronAddress, AddressError> {
        TronAddress::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs recorded in java-tron's documentation: the same accounts in a `visible=true`
    /// answer (base58) and in the hex answer / `raw_data_hex` of the same transaction.
    const RECORDED: [(&str, &str); 4] = [
        (
            "TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM",
            "41ce8a0cf0c16d48bcf22825f6053248df653c89ca",
        ),
        (
            "TUznHJfHe6gdYY7gvWmf6bNZHuPHDZtowf",
            "41d0b69631440f0a494bb51f7eee68ff5c593c00f0",
        ),
        (
            "TPswDDCAWhJAZGdHPidFg5nEf8TkNToDX1",
            "4198927ffb9f554dc4a453c64b2e553a02d6df514b",
        ),
        // USDT-TRC20 on mainnet.
        (
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
            "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
        ),
    ];

    #[test]
    fn base58_and_hex_forms_convert_both_ways() {
        for (base58, hex_form) in RECORDED {
            let a = TronAddress::parse(base58).unwrap();
            assert_eq!(a.to_hex(), hex_form);
            assert_eq!(a.to_base58(), base58);
            assert_eq!(a.to_string(), base58);
            assert_eq!(TronAddress::from_hex(hex_form).unwrap(), a);
            assert_eq!(TronAddress::from_hex(&hex_form.to_uppercase()).unwrap(), a);
            assert_eq!(TronAddress::from_evm(a.evm_bytes()), a);
        }
    }

    #[test]
    fn a_typo_or_another_network_is_refused() {
        // One character changed: the checksum catches it.
        assert!(matches!(
            TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"),
            Err(AddressError::Checksum(_))
        ));
        // A Bitcoin address is valid base58check, with another version byte.
        assert!(matches!(
            TronAddress::parse("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
            Err(AddressError::Prefix(_))
        ));
        for bad in [
            "",
            "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c",
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6",
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t ",
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj0t",
        ] {
            assert!(TronAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(TronAddress::from_hex("a614f803b6fd780986a42c78ec9c7f77e6ded13c").is_err());
        assert!(TronAddress::from_hex("42a614f803b6fd780986a42c78ec9c7f77e6ded13c").is_err());
        assert!(TronAddress::from_hex("41a614f803b6fd780986a42c78ec9c7f77e6ded13").is_err());
    }
}
