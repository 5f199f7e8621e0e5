//! Account addresses: `ait1` + lowercase hex of the first 20 bytes of SHA-256(public key).
//! Module accounts (treasury, faucet-less pools, escrows) hash a documented label instead of a
//! key, so no private key can exist for them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::Hash32;

/// Prefix of every address.
pub const ADDRESS_PREFIX: &str = "ait1";

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// Address of an Ed25519 public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> Address {
        let digest = Hash32::digest(public_key);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    /// Reserved address of a module account: the first 20 bytes of
    /// SHA-256(`"aitbc-module:" + label`). Labels are documented in ARCHITECTURE.md
    /// (`treasury/<chain>` for a chain's DAO treasury).
    pub fn module(label: &str) -> Address {
        let digest = Hash32::digest_parts(&[b"aitbc-module:", label.as_bytes()]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    /// The DAO treasury of `chain_id`, where fees go.
    pub fn treasury(chain_id: &str) -> Address {
        Address::module(&format!("treasury/{chain_id}"))
    }
}

impl Address {
    /// `ait1` and the lowercase hex, written into `buf`.
    fn text_in<'b>(&self, buf: &'b mut [u8; 44]) -> &'b str {
        buf[..4].copy_from_slice(ADDRESS_PREFIX.as_bytes());
        hex::encode_to_slice(self.0, &mut buf[4..]).expect("40 hex digits for 20 bytes");
        std::str::from_utf8(buf).expect("the prefix and hex digits are ASCII")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text_in(&mut [0; 44]))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address must be \"ait1\" followed by 40 lowercase hex characters")]
pub struct BadAddress;

impl FromStr for Address {
    type Err = BadAddress;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix(ADDRESS_PREFIX).ok_or(BadAddress)?;
        if hex_part.len() != 40 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(BadAddress);
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| BadAddress)?;
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text_in(&mut [0; 44]))
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_prefix_and_first_20_bytes_of_sha256_of_key() {
        let key = [1u8; 32];
        let digest = Hash32::digest(&key);
        let expected = format!("ait1{}", hex::encode(&digest.0[..20]));
        assert_eq!(Address::from_public_key(&key).to_string(), expected);
        assert_eq!(
            expected.parse::<Address>().unwrap(),
            Address::from_public_key(&key)
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ait1",
            "ait2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ait1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "ait1zz",
            "ait1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn treasuries_differ_per_chain() {
        assert_ne!(Address::treasury("a"), Address::treasury("b"));
    }
}
