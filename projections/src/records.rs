//! Binary form of the explorer's big records (transactions and blocks) in its file.
//!
//! JSON made them several times bigger and slower to read (a transfer took ~1.2 KB; 245 MB for
//! 200k transfers). This form stores hashes and addresses as raw bytes and amounts as 16-byte
//! integers. Layout: a version byte, then the fields; integers are little-endian, strings and
//! byte strings a u32 length and the bytes, sequences a u32 count and the items. (The file
//! itself checksums its pages.)

use domain::address::Address;
use domain::block::{Block, BlockSignature};
use domain::hash::Hash32;
use domain::merkle::{Leaf, LeafType};
use domain::money::Amount;
use domain::wallet::wallet_stream;

use crate::explorer::{TxEventView, TxView};
use domain::vesting::Refusal;

/// Version of the record layout.
const VERSION: u8 = 1;
/// Event types stored as one byte (their index; append only, older checkpoints use the indexes).
const KNOWN_TYPES: [&str; 3] = ["Debited.v1", "Credited.v1", "Debited.v2"];
/// Tag of an event stored with its type and stream spelled out.
const EXPLICIT: u8 = 0xFF;

/// Why a record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("explorer record unreadable: {0}")]
pub struct RecordError(String);

/// Encodes a transaction (its block, kept in its own table, is left out).
pub fn encode_tx(tx: &TxView) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.0.push(VERSION);
    w.hash(&tx.tx_hash);
    w.str(&tx.chain_id);
    w.address(&tx.sender);
    w.u64(tx.nonce);
    w.str(&tx.kind);
    w.address(&tx.to);
    w.amount(tx.amount);
    w.option_str(tx.asset.as_deref());
    w.amount(tx.fee);
    w.u64(tx.position);
    w.u64(tx.committed_at_ms);
    match &tx.refused {
        Some(refusal) => {
            w.0.push(1);
            w.str(&refusal.code);
            w.str(&refusal.message);
        }
        None => w.0.push(0),
    }
    w.count(tx.events.len());
    for event in &tx.events {
        // The common case costs one byte: a known type, in the canonical stream of its
        // account on the transaction's chain.
        let canonical = event.stream == wallet_stream(&tx.chain_id, &event.address);
        match (
            KNOWN_TYPES.iter().position(|t| *t == event.event_type),
            canonical,
        ) {
            (Some(kind), true) => w.0.push(kind as u8),
            _ => {
                w.0.push(EXPLICIT);
                w.str(&event.event_type);
                w.str(&event.stream);
            }
        }
        w.u64(event.position);
        w.address(&event.address);
        w.amount(event.amount);
    }
    w.0
}

/// Decodes a transaction written by [`encode_tx`] (without its block).
pub fn decode_tx(bytes: &[u8]) -> Result<TxView, RecordError> {
    let mut r = Reader(bytes);
    r.version()?;
    let tx_hash = r.hash()?;
    let mut tx = TxView {
        tx_hash,
        chain_id: r.string()?,
        sender: r.address()?,
        nonce: r.u64()?,
        kind: r.string()?,
        to: r.address()?,
        amount: r.amount()?,
        asset: r.option_string()?,
        fee: r.amount()?,
        position: r.u64()?,
        committed_at_ms: r.u64()?,
        refused: match r.take(1)?[0] {
            0 => None,
            _ => Some(Refusal {
                code: r.string()?,
                message: r.string()?,
            }),
        },
        events: Vec::new(),
        block_height: None,
        block_index: None,
    };
    for _ in 0..r.count()? {
        let (event_type, stream) = match r.take(1)?[0] {
            EXPLICIT => (r.string()?, Some(r.string()?)),
            kind => {
                let known = KNOWN_TYPES
                    .get(kind as usize)
                    .ok_or_else(|| RecordError("bad event kind".into()))?;
                (known.to_string(), None)
            }
        };
        let (position, address, amount) = (r.u64()?, r.address()?, r.amount()?);
        let stream = stream.unwrap_or_else(|| wallet_stream(&tx.chain_id, &address));
        tx.events.push(TxEventView {
            event_type,
            stream,
            position,
            address,
            amount,
        });
    }
    r.end()?;
    Ok(tx)
}

/// Encodes a block.
pub fn encode_block(block: &Block) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256 + block.leaves.len() * 48));
    w.0.push(VERSION);
    w.block(block);
    w.0
}

/// Decodes a block written by [`encode_block`].
pub fn decode_block(bytes: &[u8]) -> Result<Block, RecordError> {
    let mut r = Reader(bytes);
    r.version()?;
    let block = r.block()?;
    r.end()?;
    Ok(block)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn count(&mut self, n: usize) {
        self.0.extend_from_slice(
            &u32::try_from(n)
                .expect("fewer than 2^32 items")
                .to_le_bytes(),
        );
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.0.extend_from_slice(bytes);
    }
    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }
    fn hash(&mut self, hash: &Hash32) {
        self.0.extend_from_slice(&hash.0);
    }
    fn address(&mut self, address: &Address) {
        self.0.extend_from_slice(&address.0);
    }
    fn amount(&mut self, amount: Amount) {
        self.0.extend_from_slice(&amount.0.to_le_bytes());
    }
    fn option_str(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.0.push(1);
                self.str(text);
            }
            None => self.0.push(0),
        }
    }
    fn block(&mut self, block: &Block) {
        self.str(&block.chain_id);
        self.u64(block.height);
        self.hash(&block.hash);
        self.hash(&block.prev_hash);
        self.u64(block.timestamp);
        self.u64(u64::from(block.version));
        if block.version == 1 {
            self.count(block.tx_hashes.len());
            for hash in &block.tx_hashes {
                self.hash(hash);
            }
        } else {
            // tx_hashes are the tx leaves' hashes: rebuilt on decode.
            self.count(block.leaves.len());
            for leaf in &block.leaves {
                match leaf.leaf_type {
                    LeafType::Tx => self.0.push(0),
                    LeafType::Receipt => self.0.push(1),
                }
                self.str(&leaf.kind);
                self.hash(&leaf.hash);
            }
        }
        self.hash(&block.merkle_root);
        self.u64(block.from_position);
        self.u64(block.to_position);
        self.str(&block.validator);
        self.str(&block.signature);
        self.count(block.signatures.len());
        for signature in &block.signatures {
            self.str(&signature.validator);
            self.str(&signature.signature);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn version(&mut self) -> Result<(), RecordError> {
        match self.take(1)?[0] {
            VERSION => Ok(()),
            other => Err(RecordError(format!("record version {other}"))),
        }
    }
    fn end(&self) -> Result<(), RecordError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(RecordError("trailing bytes".into())),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn count(&mut self) -> Result<usize, RecordError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        // Every item takes at least one byte: a larger count is damage, not a reason to allocate.
        if n > self.0.len() {
            return Err(RecordError(
                "count larger than the rest of the checkpoint".into(),
            ));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.count()?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, RecordError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| RecordError("invalid UTF-8".into()))
    }
    fn hash(&mut self) -> Result<Hash32, RecordError> {
        Ok(Hash32(self.array()?))
    }
    fn address(&mut self) -> Result<Address, RecordError> {
        Ok(Address(self.array()?))
    }
    fn amount(&mut self) -> Result<Amount, RecordError> {
        Ok(Amount(u128::from_le_bytes(self.array()?)))
    }
    fn option_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(RecordError("bad option tag".into())),
        }
    }
    fn block(&mut self) -> Result<Block, RecordError> {
        let mut block = Block {
            chain_id: self.string()?,
            height: self.u64()?,
            hash: self.hash()?,
            prev_hash: self.hash()?,
            timestamp: self.u64()?,
            version: u32::try_from(self.u64()?)
                .map_err(|_| RecordError("bad block version".into()))?,
            tx_hashes: Vec::new(),
            leaves: Vec::new(),
            merkle_root: Hash32::default(),
            from_position: 0,
            to_position: 0,
            validator: String::new(),
            signature: String::new(),
            signatures: Vec::new(),
        };
        let count = self.count()?;
        if block.version == 1 {
            for _ in 0..count {
                block.tx_hashes.push(self.hash()?);
            }
        } else {
            for _ in 0..count {
                let leaf_type = match self.take(1)?[0] {
                    0 => LeafType::Tx,
                    1 => LeafType::Receipt,
                    _ => return Err(RecordError("bad leaf type".into())),
                };
                let leaf = Leaf {
                    leaf_type,
                    kind: self.string()?,
                    hash: self.hash()?,
                };
                if leaf.leaf_type == LeafType::Tx {
                    block.tx_hashes.push(leaf.hash);
                }
                block.leaves.push(leaf);
            }
        }
        block.merkle_root = self.hash()?;
        block.from_position = self.u64()?;
        block.to_position = self.u64()?;
        block.validator = self.string()?;
        block.signature = self.string()?;
        for _ in 0..self.count()? {
            block.signatures.push(BlockSignature {
                validator: self.string()?,
                signature: self.string()?,
            });
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> TxView {
        let address = Address([3; 20]);
        let event = |event_type: &str, stream: String| TxEventView {
            event_type: event_type.into(),
            stream,
            position: 9,
            address,
            amount: Amount(4),
        };
        TxView {
            tx_hash: Hash32::digest(b"t"),
            chain_id: "c".into(),
            sender: address,
            nonce: 1,
            kind: "claim_vested".into(),
            to: address,
            amount: Amount(4),
            asset: Some("USDX".into()),
            fee: Amount(0),
            position: 8,
            committed_at_ms: 1_800_000_000_000,
            refused: Some(Refusal {
                code: "nothing_to_claim".into(),
                message: "0 vested".into(),
            }),
            events: vec![
                event("Debited.v1", wallet_stream("c", &address)),
                event("Credited.v1", "elsewhere".into()),
                event("Future.v2", wallet_stream("c", &address)),
            ],
            block_height: None,
            block_index: None,
        }
    }

    #[test]
    fn events_of_unknown_types_or_streams_round_trip_spelled_out() {
        assert_eq!(decode_tx(&encode_tx(&tx())), Ok(tx()));
    }

    #[test]
    fn damage_is_detected_not_trusted() {
        let bytes = encode_tx(&tx());
        assert!(decode_tx(&bytes[..bytes.len() - 1]).is_err(), "truncation");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_tx(&longer).is_err(), "trailing bytes");
        let mut other_version = bytes;
        other_version[0] = VERSION + 1;
        assert!(decode_tx(&other_version).is_err(), "another layout");
        assert!(decode_block(b"{\"json\": true}").is_err());
    }
}
