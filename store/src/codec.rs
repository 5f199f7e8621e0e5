//! On-disk record format of the segment log.
//!
//! ```text
//! header (16 bytes, little-endian):
//!   [0..4)   payload_len u32
//!   [4..8)   header_crc  u32  = crc32c(bytes [0..4) ++ bytes [8..16))
//!   [8..12)  payload_crc u32  = crc32c(payload)
//!   [12]     flags       u8   (bit 0: last event of an append batch)
//!   [13..16) reserved, zero
//! payload (payload_len bytes):
//!   position u64, revision u64, event id u128, recorded_at_ms u64,
//!   stream_len u16, event_type_len u16, data_len u32,
//!   stream bytes (UTF-8), event_type bytes (UTF-8), data bytes
//! ```
//!
//! The header checksum covers the length, so a damaged length is detected before it is used.
//!
//! Each group commit (one write, one fdatasync) begins with a group frame: a header-sized
//! record with flag bit 1 set, whose `payload_len` is the byte length of the records that
//! follow in the group and whose `payload_crc` is their crc32c. Recovery checks a group whole:
//! damage anywhere inside the last group of the log (never acknowledged when the power failed
//! mid-write, e.g. a zeroed range followed by records that did land) is a torn tail; damage in
//! any other group is corruption. Logs written before frames existed have none and are read
//! record by record, as they were written.

use std::sync::Arc;

use crate::{EventId, Position, RecordedEvent, Revision, limits};

/// Bytes of a record header.
pub(crate) const HEADER_LEN: usize = 16;
/// Bytes of the fixed part of a payload.
pub(crate) const PAYLOAD_FIXED_LEN: usize = 48;
/// Flag: this record is the last event of its append batch.
pub(crate) const FLAG_BATCH_END: u8 = 1;
/// Flag: this header frames a group commit (no payload of its own).
pub(crate) const FLAG_GROUP: u8 = 2;
const FLAGS_KNOWN: u8 = FLAG_BATCH_END | FLAG_GROUP;
/// Bytes of a group frame.
pub(crate) const GROUP_FRAME_LEN: usize = HEADER_LEN;
/// Largest payload a valid record can have.
pub(crate) const PAYLOAD_LEN_MAX: usize = PAYLOAD_FIXED_LEN
    + limits::STREAM_NAME_LEN_MAX
    + limits::EVENT_TYPE_LEN_MAX
    + limits::EVENT_DATA_LEN_MAX;

const _: () = assert!(PAYLOAD_LEN_MAX <= u32::MAX as usize);

/// A decoded, checksum-verified record header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) payload_len: usize,
    pub(crate) payload_crc: u32,
    pub(crate) flags: u8,
}

impl Header {
    pub(crate) fn batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    /// A group frame: `payload_len` and `payload_crc` are those of the group's records.
    pub(crate) fn group(&self) -> bool {
        self.flags & FLAG_GROUP != 0
    }
}

/// A decoded payload borrowing from the buffer it was read from.
#[derive(Debug)]
pub(crate) struct PayloadRef<'a> {
    pub(crate) position: Position,
    pub(crate) revision: Revision,
    pub(crate) id: EventId,
    pub(crate) recorded_at_ms: u64,
    pub(crate) stream: &'a str,
    pub(crate) event_type: &'a [u8],
    pub(crate) data: &'a [u8],
}

fn header_crc(header: &[u8]) -> u32 {
    debug_assert_eq!(header.len(), HEADER_LEN);
    crc32c::crc32c_append(crc32c::crc32c(&header[0..4]), &header[8..16])
}

/// Fields of one record to encode.
pub(crate) struct RecordFields<'a> {
    pub(crate) position: Position,
    pub(crate) revision: Revision,
    pub(crate) id: EventId,
    pub(crate) recorded_at_ms: u64,
    pub(crate) stream: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) data: &'a [u8],
    pub(crate) batch_end: bool,
}

/// Length of the encoded record for these field sizes.
pub(crate) fn record_len(stream_len: usize, event_type_len: usize, data_len: usize) -> usize {
    HEADER_LEN + PAYLOAD_FIXED_LEN + stream_len + event_type_len + data_len
}

/// Appends one encoded record to `buf`; returns its length in bytes.
pub(crate) fn encode_record(buf: &mut Vec<u8>, r: &RecordFields<'_>) -> usize {
    // Limits were checked on append: these hold for every record we write.
    assert!(r.stream.len() <= limits::STREAM_NAME_LEN_MAX);
    assert!(r.event_type.len() <= limits::EVENT_TYPE_LEN_MAX);
    assert!(r.data.len() <= limits::EVENT_DATA_LEN_MAX);
    let start = buf.len();
    let payload_len = PAYLOAD_FIXED_LEN + r.stream.len() + r.event_type.len() + r.data.len();
    buf.reserve(HEADER_LEN + payload_len);
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    buf.extend_from_slice(&r.position.to_le_bytes());
    buf.extend_from_slice(&r.revision.to_le_bytes());
    buf.extend_from_slice(&r.id.0.to_le_bytes());
    buf.extend_from_slice(&r.recorded_at_ms.to_le_bytes());
    buf.extend_from_slice(&(r.stream.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(r.event_type.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
    buf.extend_from_slice(r.stream.as_bytes());
    buf.extend_from_slice(r.event_type.as_bytes());
    buf.extend_from_slice(r.data);
    let payload_crc = crc32c::crc32c(&buf[start + HEADER_LEN..]);
    let header = &mut buf[start..start + HEADER_LEN];
    header[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    header[12] = if r.batch_end { FLAG_BATCH_END } else { 0 };
    let crc = header_crc(header);
    header[4..8].copy_from_slice(&crc.to_le_bytes());
    let len = buf.len() - start;
    assert_eq!(len, HEADER_LEN + payload_len);
    len
}

/// Starts a group in the empty `buf`: room for its frame, which [`seal_group`] fills.
pub(crate) fn begin_group(buf: &mut Vec<u8>) {
    assert!(buf.is_empty(), "a group starts an empty buffer");
    buf.extend_from_slice(&[0u8; GROUP_FRAME_LEN]);
}

/// Fills the frame of the group `buf` holds (its records after the frame).
pub(crate) fn seal_group(buf: &mut [u8]) {
    let records_len = buf.len() - GROUP_FRAME_LEN;
    let records_crc = crc32c::crc32c(&buf[GROUP_FRAME_LEN..]);
    let frame = &mut buf[..GROUP_FRAME_LEN];
    frame[0..4].copy_from_slice(&(records_len as u32).to_le_bytes());
    frame[8..12].copy_from_slice(&records_crc.to_le_bytes());
    frame[12] = FLAG_GROUP;
    frame[13..16].copy_from_slice(&[0, 0, 0]);
    let crc = header_crc(frame);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes and verifies a header; `Err` says why it is unreadable.
/// Whether a readable group frame starts anywhere in `bytes`. Recovery asks it only where a
/// frame failed to decode, so the byte-by-byte search costs nothing on a healthy log.
pub(crate) fn group_frame_within(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(HEADER_LEN - 1))
        .any(|at| decode_header(&bytes[at..]).is_ok_and(|h| h.group()))
}

pub(crate) fn decode_header(b: &[u8]) -> Result<Header, &'static str> {
    if b.len() < HEADER_LEN {
        return Err("incomplete header");
    }
    let b = &b[..HEADER_LEN];
    if u32_at(b, 4) != header_crc(b) {
        return Err("header checksum mismatch");
    }
    let payload_len = u32_at(b, 0) as usize;
    let flags = b[12];
    if flags & !FLAGS_KNOWN != 0 || b[13..16] != [0, 0, 0] || flags == FLAGS_KNOWN {
        return Err("unknown header flags");
    }
    let range = match flags & FLAG_GROUP != 0 {
        true => HEADER_LEN + PAYLOAD_FIXED_LEN..=u32::MAX as usize,
        false => PAYLOAD_FIXED_LEN..=PAYLOAD_LEN_MAX,
    };
    if !range.contains(&payload_len) {
        return Err("payload length out of range");
    }
    Ok(Header {
        payload_len,
        payload_crc: u32_at(b, 8),
        flags,
    })
}

/// Whether `payload` matches the header's checksum.
pub(crate) fn payload_crc_ok(header: &Header, payload: &[u8]) -> bool {
    crc32c::crc32c(payload) == header.payload_crc
}

/// Decodes a checksum-verified payload.
pub(crate) fn decode_payload(p: &[u8]) -> Result<PayloadRef<'_>, &'static str> {
    if p.len() < PAYLOAD_FIXED_LEN {
        return Err("payload shorter than its fixed part");
    }
    let stream_len = u16::from_le_bytes([p[40], p[41]]) as usize;
    let event_type_len = u16::from_le_bytes([p[42], p[43]]) as usize;
    let data_len = u32_at(p, 44) as usize;
    if PAYLOAD_FIXED_LEN + stream_len + event_type_len + data_len != p.len() {
        return Err("payload field lengths do not add up");
    }
    let stream_end = PAYLOAD_FIXED_LEN + stream_len;
    let type_end = stream_end + event_type_len;
    let stream = std::str::from_utf8(&p[PAYLOAD_FIXED_LEN..stream_end])
        .map_err(|_| "stream name is not UTF-8")?;
    Ok(PayloadRef {
        position: u64_at(p, 0),
        revision: u64_at(p, 8),
        id: EventId(u128::from_le_bytes(p[16..32].try_into().expect("16 bytes"))),
        recorded_at_ms: u64_at(p, 32),
        stream,
        event_type: &p[stream_end..type_end],
        data: &p[type_end..],
    })
}

impl PayloadRef<'_> {
    /// Length of the encoded payload.
    pub(crate) fn payload_len(&self) -> usize {
        PAYLOAD_FIXED_LEN + self.stream.len() + self.event_type.len() + self.data.len()
    }

    /// Builds an owned event; `stream` may be an interned name equal to `self.stream`.
    pub(crate) fn to_event(
        &self,
        stream: Option<&Arc<str>>,
    ) -> Result<RecordedEvent, &'static str> {
        let event_type =
            std::str::from_utf8(self.event_type).map_err(|_| "event type is not UTF-8")?;
        let stream = match stream {
            Some(s) if &**s == self.stream => Arc::clone(s),
            _ => Arc::from(self.stream),
        };
        Ok(RecordedEvent {
            position: self.position,
            stream,
            revision: self.revision,
            id: self.id,
            event_type: event_type.to_owned(),
            data: self.data.to_vec(),
            recorded_at_ms: self.recorded_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let mut buf = Vec::new();
        let len = encode_record(
            &mut buf,
            &RecordFields {
                position: 7,
                revision: 3,
                id: EventId(0xdead_beef_u128 << 64 | 42),
                recorded_at_ms: 1_700_000_000_000,
                stream: "account-1",
                event_type: "Debited",
                data: b"{\"amount\":5}",
                batch_end: true,
            },
        );
        assert_eq!(len, buf.len());
        assert_eq!(len, record_len(9, 7, 12));
        let h = decode_header(&buf).expect("header");
        assert!(h.batch_end());
        let payload = &buf[HEADER_LEN..];
        assert!(payload_crc_ok(&h, payload));
        let p = decode_payload(payload).expect("payload");
        assert_eq!(p.position, 7);
        assert_eq!(p.revision, 3);
        assert_eq!(p.stream, "account-1");
        assert_eq!(p.event_type, b"Debited");
        assert_eq!(p.data, b"{\"amount\":5}");
    }

    #[test]
    fn damaged_length_is_detected_by_the_header_checksum() {
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            &RecordFields {
                position: 0,
                revision: 0,
                id: EventId(1),
                recorded_at_ms: 0,
                stream: "s",
                event_type: "T",
                data: b"x",
                batch_end: false,
            },
        );
        buf[1] ^= 0x01;
        assert_eq!(decode_header(&buf).unwrap_err(), "header checksum mismatch");
        assert!(decode_header(&[0u8; HEADER_LEN]).is_err());
    }
}
