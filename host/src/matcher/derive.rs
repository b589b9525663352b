//! Addresses for the `derived-address` strategy: BIP32 public derivation from a merchant's
//! extended public key. The server never holds a private key: an extended *private* key
//! is refused, not silently reduced to its public half.
//!
//! Address `i` is the non-hardened child `i` of the given key, so the merchant supplies the
//! key of the external chain of its account (for a BIP44 Ethereum wallet the key at
//! `m/44'/60'/0'/0`, whose children are the wallet's receiving addresses). Each invoice
//! takes the next index; an invoice that expires unpaid leaves its index unused, so the
//! merchant's wallet must scan past gaps (raise its gap limit) to see every payment.
//!
//! TRON uses the same secp256k1 keys and the same keccak-256 address hash: a TRON address
//! is `0x41` followed by the EVM address's 20 bytes, in base58check. A TRON merchant
//! supplies the key at `m/44'/195'/0'/0` (TRON's BIP44 coin type 195).

use alloy::primitives::Address;
use bip32::{ChildNumber, ExtendedKey, XPub};
use sha2::{Digest, Sha256};

use crate::chain::tron::TronAddress;

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

/// The TRON address of non-hardened child `index` of `xpub`.
pub fn derive_tron_address(xpub: &XPub, index: u32) -> Result<TronAddress, DerivationError> {
    derive_evm_address(xpub, index).map(|a| TronAddress::from_evm(a.into_array()))
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

    /// BIP39 seed of a mnemonic with an empty passphrase: PBKDF2-HMAC-SHA512, 2048 rounds,
    /// salt "mnemonic", one 64-byte block.
    fn bip39_seed(mnemonic: &str) -> [u8; 64] {
        use hmac::{Hmac, Mac};
        let prf = || Hmac::<sha2::Sha512>::new_from_slice(mnemonic.as_bytes()).unwrap();
        let mut mac = prf();
        mac.update(b"mnemonic\0\0\0\x01");
        let mut u: [u8; 64] = mac.finalize().into_bytes().into();
        let mut seed = u;
        for _ in 1..2048 {
            let mut mac = prf();
            mac.update(&u);
            u = mac.finalize().into_bytes().into();
            seed.iter_mut().zip(u).for_each(|(s, b)| *s ^= b);
        }
        seed
    }

    /// The key at m/44'/195'/0'/0 of Trezor's test mnemonic ("all" twelve times).
    const TRON_XPUB: &str = "xpub6ELZXDeBLpoCg4dSVZAmcmjhRyTo4fy7fyCeKz4ntuMybyjyFanpmnq3M5195DetSS1vf9MTAJpoGXpABNBmjjxeFRa425JHuDgP3LW5Pcf";

    #[test]
    fn tron_addresses_match_trezor_test_vectors() {
        // trezor-firmware common/tests/fixtures/tron/get_address.json: mnemonic "all" ×12,
        // paths m/44'/195'/0'/0/0..2.
        let mnemonic = "all all all all all all all all all all all all";
        let mut key = bip32::XPrv::new(bip39_seed(mnemonic)).unwrap();
        for (index, hardened) in [(44, true), (195, true), (0, true), (0, false)] {
            key = key
                .derive_child(ChildNumber::new(index, hardened).unwrap())
                .unwrap();
        }
        let xpub_text = key
            .public_key()
            .to_extended_key(bip32::Prefix::XPUB)
            .to_string();
        assert_eq!(xpub_text, TRON_XPUB);
        let xpub = parse_xpub(&xpub_text).unwrap();
        let expected = [
            "TY72iA3SBtrds3QLYsS7LwYfkzXwAXCRWT",
            "TFz2CJn9CJb8C4i1Gke3jmZX2fRMJxniH2",
            "TQSw9qVAigRwfgPdf7aW4wxbG9tFitexg2",
        ];
        for (i, address) in expected.iter().enumerate() {
            assert_eq!(
                derive_tron_address(&xpub, i as u32).unwrap().to_string(),
                *address
            );
        }
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
