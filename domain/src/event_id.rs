//! Deterministic event ids: the same logical fact always gets the same id, so a retried command
//! is de-duplicated by the event log.

use crate::hash::Hash32;

/// Id of the event that records `tag` for `subject` (e.g. `("credit", tx_hash)`): the first 16
/// bytes of SHA-256(`"aitbc-event:" + tag + ":" + subject`), big-endian.
pub fn event_id(tag: &str, subject: &[u8]) -> u128 {
    let digest = Hash32::digest_parts(&[b"aitbc-event:", tag.as_bytes(), b":", subject]);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.0[..16]);
    u128::from_be_bytes(first)
}
