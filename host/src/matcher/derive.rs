//! Addresses for the `derived-address` strategy: BIP32 public derivation from a merchant's
//! extended public key. The server never holds a private key: an extended *private* key
//! is refused, not silently reduced to its public half.
//!
//! Address `i` is the non-hardened child `i` of the given key, so the merchant supplies the
//! key of the external chain of its account (for a BIP44 Ethereum wallet the key at
//! `m/44'/60'/0'/0`, whose children are the wallet's receiving addresses). Each invoice
//! takes the next index; an invoice that expires unpaid leaves its index unused, so the
//! merchant's wallet must scan past gaps (raise its gap limit) to see every payment.

use alloy::primitives::Address;
use bip32::{ChildNumber, ExtendedKey, XPub};
use sha2::{Digest, Sha256};

/// Why an extended public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerivationError {
    #[error("not an extended public key (xpub/tpub…)")]
    Malformed,
    #[error("an extended private key was given; polypay takes only extended public keys")]
    PrivateKey,
    #[error("child index {0} cannot be derived")]
    Index(u32),
}

/// Parses an extended public key (`xpub…`, `tpub…`, or another SLIP-132 public prefix).
pub fn parse_xpub(text: &str) -> Result<XPub, DerivationError> {
    let key: ExtendedKey = text
        .trim()
        .parse()
        .map_err(|_| DerivationError::Malformed)?;
    if !key.prefix.is_public() {
        return Err(if key.prefix.is_private() {
            DerivationError::PrivateKey
        } else {
            DerivationError::Malformed
        });
    }
    XPub::try_from(key).map_err(|_| DerivationError::Malformed)
}

/// The EVM address of non-hardened child `index` of `xpub`.
pub fn derive_evm_address(xpub: &XPub, index: u32) -> Result<Address, DerivationError> {
    let child_number = ChildNumber::new(index, false).map_err(|_| DerivationError::Index(index))?;
    let child = xpub
        .derive_child(child_number)
        .map_err(|_| DerivationError::Index(index))?;
    let point = child.public_key().to_encoded_point(false);
    // Uncompressed SEC1: 0x04 || x || y; the address hashes x || y.
    Ok(Address::from_raw_public_key(&point.as_bytes()[1..]))
}

/// The id under which an extended public key's derivation counter is stored: SHA-256 of
/// its text, hex. Stable for one key, and does not reveal it.
pub fn xpub_id(text: &str) -> String {
    hex::encode(Sha256::digest(text.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // BIP32 test vector 1, chain m/0H/1 (depth 2), public and private.
    const XPUB: &str = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ";
    const XPRV: &str = "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs";

    #[test]
    fn addresses_match_a_standard_wallet() {
        // The external-chain key (m/44'/60'/0'/0) of the well-known development mnemonic
        // "test test … junk", whose first addresses every Ethereum wallet (and anvil)
        // derives as below; the xpub was exported with an independent implementation.
        let xpub = parse_xpub(
            "xpub6DyUKdwoLWmUJ4Tn9Bbsdtx7B5Ws18mEN19e5HT52ikE53FiUheSQXrZUNPovqfyKmw4579A1Mm3GXXKM39N64uooBfJ4tNAzFsEbodRTx4",
        )
        .unwrap();
        let expected = [
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        ];
        for (i, address) in expected.iter().enumerate() {
            assert_eq!(
                derive_evm_address(&xpub, i as u32)
                    .unwrap()
                    .to_checksum(None),
                *address
            );
        }
    }

    #[test]
    fn derivation_matches_the_private_key_path() {
        // The address of child i of the xpub equals the address of the private child i.
        let xpub = parse_xpub(XPUB).unwrap();
        let xprv: bip32::XPrv = XPRV.parse().unwrap();
        for i in [0u32, 1, 7, 1_000_000] {
            let private = xprv
                .derive_child(ChildNumber::new(i, false).unwrap())
                .unwrap();
            let point = private.public_key().public_key().to_encoded_point(false);
            let expected = Address::from_raw_public_key(&point.as_bytes()[1..]);
            assert_eq!(derive_evm_address(&xpub, i).unwrap(), expected, "child {i}");
        }
        assert_ne!(
            derive_evm_address(&xpub, 0).unwrap(),
            derive_evm_address(&xpub, 1).unwrap()
        );
    }

    #[test]
    fn private_keys_and_garbage_are_refused() {
        assert_eq!(parse_xpub(XPRV).unwrap_err(), DerivationError::PrivateKey);
        assert_eq!(
            parse_xpub("xpub123").unwrap_err(),
            DerivationError::Malformed
        );
        assert!(derive_evm_address(&parse_xpub(XPUB).unwrap(), 1 << 31).is_err());
    }

    #[test]
    fn xpub_id_is_stable_and_hides_the_key() {
        assert_eq!(xpub_id(XPUB), xpub_id(&format!(" {XPUB}\n")));
        assert_eq!(xpub_id(XPUB).len(), 64);
        assert!(!xpub_id(XPUB).contains("xpub"));
    }
}
